package recommend

import (
	"github.com/cespare/xxhash/v2"

	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/streamrec/streamrec/lambdamart"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
)

// Ranker weighs the blend for each request by what is known of the user at
// that moment: the time since their latest event (on the events' clock)
// picks a bucket, and the bucket holds a weight per source. One user in the
// middle of a session and another back after a month are asked different
// questions — what comes next, what they will want over the coming weeks —
// and the sources that answer each best differ. A Ranker is learned from
// the log (package ranker) and installed with SetRanker; without one the
// configured blend weighs every request.
type Ranker struct {
	// Sources names the weight columns.
	Sources []string `json:"sources"`
	// Gaps are the buckets' upper bounds in seconds, ascending: bucket i
	// holds the gaps below Gaps[i]; the last bucket the rest, and users
	// with no history.
	Gaps []float64 `json:"gaps"`
	// Weights holds len(Gaps)+1 rows, one weight per source of Sources.
	Weights [][]float32 `json:"weights"`
	// Forest, when set, reranks the blend's best Pool candidates: each
	// gets its blended score plus the forest's output on its feature
	// vector (features.go), whose columns Features names and must be the
	// engine's (Engine.FeatureNames).
	Forest   *lambdamart.Forest `json:"forest,omitempty"`
	Features []string           `json:"features,omitempty"`
	Pool     int                `json:"pool,omitempty"`
}

// maxPool bounds a ranker's rerank pool.
const maxPool = 1000

// WeightsFor is r's weight rows with one column per source of sources, in
// their order (r's columns matched by name; a source r does not name
// weighs 0).
func (r *Ranker) WeightsFor(sources []string) [][]float32 {
	rows := make([][]float32, len(r.Weights))
	for b, row := range r.Weights {
		rows[b] = make([]float32, len(sources))
		for j, name := range sources {
			if c := slices.Index(r.Sources, name); c >= 0 {
				rows[b][j] = row[c]
			}
		}
	}
	return rows
}

// Bucket is the bucket of a gap in seconds (+Inf: no history).
func (r *Ranker) Bucket(gap float64) int {
	// The first bound above the gap: a gap equal to a bound belongs above it.
	return sort.Search(len(r.Gaps), func(i int) bool { return r.Gaps[i] > gap })
}

// Validate checks the shape and the weights (finite, not negative, a row
// not all zero).
func (r *Ranker) Validate() error {
	if r == nil {
		return errors.New("ranker: none")
	}
	if len(r.Sources) == 0 {
		return errors.New("ranker: no sources")
	}
	if !slices.IsSorted(r.Gaps) {
		return errors.New("ranker: gaps must ascend")
	}
	for _, g := range r.Gaps {
		if math.IsNaN(g) || g <= 0 {
			return fmt.Errorf("ranker: gap %v must be positive", g)
		}
	}
	if len(r.Weights) != len(r.Gaps)+1 {
		return fmt.Errorf("ranker: %d weight rows for %d gaps, want %d", len(r.Weights), len(r.Gaps), len(r.Gaps)+1)
	}
	for b, row := range r.Weights {
		if len(row) != len(r.Sources) {
			return fmt.Errorf("ranker: bucket %d has %d weights for %d sources", b, len(row), len(r.Sources))
		}
		any := false
		for _, w := range row {
			if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) || w < 0 {
				return fmt.Errorf("ranker: bucket %d: weight %v must be finite and not negative", b, w)
			}
			any = any || w > 0
		}
		if !any {
			return fmt.Errorf("ranker: bucket %d weighs every source 0", b)
		}
	}
	if r.Forest == nil {
		if len(r.Features) > 0 || r.Pool != 0 {
			return errors.New("ranker: features or pool without a forest")
		}
		return nil
	}
	if err := r.Forest.Validate(); err != nil {
		return fmt.Errorf("ranker: %w", err)
	}
	if len(r.Features) != r.Forest.F {
		return fmt.Errorf("ranker: %d feature names for a forest of %d features", len(r.Features), r.Forest.F)
	}
	if r.Pool < 1 || r.Pool > maxPool {
		return fmt.Errorf("ranker: pool %d must be in [1, %d]", r.Pool, maxPool)
	}
	return nil
}

// SetRanker installs r (nil: back to the configured blend) for the next
// request. A source r does not name weighs 0 under it; a name no source of
// the engine has is an error.
func (e *Engine) SetRanker(r *Ranker) error {
	if r == nil {
		e.lockWrite()
		e.ranker, e.rankW, e.rankerHash, e.forest = nil, nil, 0, nil
		e.mu.Unlock()
		return nil
	}
	if err := r.Validate(); err != nil {
		return err
	}
	for _, name := range r.Sources {
		if e.sourceIndex(name) < 0 {
			return fmt.Errorf("ranker: the engine has no source %q", name)
		}
	}
	if r.Forest != nil && !slices.Equal(r.Features, e.featNames) {
		return fmt.Errorf("ranker: its features %v are not the engine's %v", r.Features, e.featNames)
	}
	rows := r.WeightsFor(e.Sources())
	h := xxhash.Sum64String(fmt.Sprintf("%v|%v|%v", r.Sources, r.Gaps, r.Weights))
	var forest *lambdamart.Compiled
	if r.Forest != nil {
		forest = r.Forest.Compile()
		b, err := json.Marshal(r.Forest)
		if err != nil {
			return fmt.Errorf("ranker: %w", err)
		}
		h ^= xxhash.Sum64(b) + uint64(r.Pool)
	}
	e.lockWrite()
	e.ranker, e.rankW, e.rankerHash, e.forest = r, rows, h, forest
	e.mu.Unlock()
	return nil
}

// Ranker is the installed ranker, nil when the configured blend weighs
// every request. The caller must not change it.
func (e *Engine) Ranker() *Ranker {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.ranker
}

// userGap is the time, in seconds, from the query user's latest event to
// at (0: the events' clock, the latest event time applied); +Inf without
// one.
func (e *Engine) userGap(q *model.Query, at float64) float64 {
	return e.gapOf(q.History, at)
}

// gapOf is the time from the latest entry of hist to at (0: the events'
// clock); +Inf for an empty history.
func (e *Engine) gapOf(hist []history.Entry, at float64) float64 {
	if len(hist) == 0 {
		return math.Inf(1)
	}
	return max(e.now(at)-hist[len(hist)-1].Seconds(), 0)
}

// weights is the blend's weight per source for the query asked at at (see
// userGap): the ranker's bucket, or the configured weights.
func (e *Engine) weights(q *model.Query, at float64) []float32 {
	if e.rankW == nil {
		return e.blendW
	}
	return e.rankW[e.ranker.Bucket(e.userGap(q, at))]
}

// Example is what the engine knew of a user at one moment, as a ranker
// learns from it: the candidates every source brought (each source's best
// perSource(n), consumed items left out) and each source's score for each,
// scaled to [0, 1] as the blend scales it (0 when the source did not bring
// it).
type Example struct {
	Gap    float64   // seconds since the user's latest event; +Inf: none
	Items  []int32   // the candidates, dense item ids (see ItemIndex)
	Scores []float32 // len(Items) rows of one score per source (Sources' order)
	// Item holds len(Items) rows of the item columns (ItemColumns), User
	// the user's and context's: with Scores, what Rows makes the learned
	// ranker's feature vectors of.
	Item []float32
	User [len(userCols)]float32
}

// Score is candidate i's scaled score from source j.
func (x *Example) Score(i, j, sources int) float32 { return x.Scores[i*sources+j] }

// Example gathers the candidates of every source for user, as a blended
// request for n items asked at at (see Request.At) would.
func (e *Engine) Example(user string, n int, at float64) Example {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.getScratch()
	defer e.scratch.Put(s)
	var x Example
	e.query(s, user, "", n, perSource(n))
	x.Gap = e.userGap(&s.q, at)
	e.excludeConsumed(&s.q)
	e.gather(s, -2, nil)
	k := len(e.sources)
	row := map[int32]int{}
	for i, list := range s.lists[:k] {
		sc := e.scale(i, list)
		for _, c := range list {
			r, ok := row[c.Item]
			if !ok {
				r = len(x.Items)
				row[c.Item] = r
				x.Items = append(x.Items, c.Item)
				x.Scores = append(x.Scores, make([]float32, k)...)
			}
			x.Scores[r*k+i] = sc.candidate(c.Score)
		}
	}
	e.describe(s, &x, at)
	return x
}

// describe fills x's item and user columns.
func (e *Engine) describe(s *scratch, x *Example, at float64) {
	x.Item = make([]float32, len(x.Items)*e.itemCols)
	s.cats = e.describeItems(&s.q, x.Items, x.Item, e.itemCols, at, s.cats)
	e.describeUser(&s.q, at, x.User[:])
}

// ExampleOf is what every source scores each of items (a list the
// application showed user) at at, scaled as the blend scales it over that
// list: Example for ranking a given list. Items the engine has never seen
// are left out; the others are all in, scored 0 by a source that could not
// score them.
func (e *Engine) ExampleOf(user string, items []string, at float64) Example {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.getScratch()
	defer e.scratch.Put(s)
	var x Example
	e.query(s, user, "", len(items), len(items))
	x.Gap = e.userGap(&s.q, at)
	q := &s.q
	q.Only, q.Filtered = true, true
	s.ids = s.ids[:0]
	row := map[int32]int{}
	k := len(e.sources)
	for _, id := range items {
		if it, ok := e.items.Lookup(id); ok && q.Mark[it] != q.Stamp {
			q.Mark[it] = q.Stamp
			s.ids = append(s.ids, it)
			row[it] = len(x.Items)
			x.Items = append(x.Items, it)
			x.Scores = append(x.Scores, make([]float32, k)...)
		}
	}
	if len(x.Items) == 0 {
		return x
	}
	e.gather(s, -2, nil)
	for i, list := range s.lists[:k] {
		sc := e.scale(i, list)
		for _, c := range list {
			if r, ok := row[c.Item]; ok {
				x.Scores[r*k+i] = sc.candidate(c.Score)
			}
		}
	}
	e.describe(s, &x, at)
	return x
}

// ItemIndex is the dense id of an item, as Example names candidates.
func (e *Engine) ItemIndex(id string) (int32, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.items.Lookup(id)
}

// UserGap is the time in seconds from user's latest event to t (seconds);
// +Inf for a user with no history, NaN for one the engine does not know.
func (e *Engine) UserGap(user string, t float64) float64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	u, ok := e.users.Lookup(user)
	if !ok {
		return math.NaN()
	}
	return e.gapOf(e.hist.User(u), t)
}
