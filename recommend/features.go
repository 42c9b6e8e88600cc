package recommend

import (
	"math"
	"slices"
	"time"

	"github.com/streamrec/streamrec/model"
)

// The learned ranker's features (docs/ARCHITECTURE.md, "Features"): what
// the engine knows of one (user, candidate) pair at the moment of a
// request, computed from state the models already hold. A feature vector
// has FeatureNames' columns, in this order:
//
//   - per source (Sources' order), its score scaled as the blend scales it
//     (0: the source did not bring the candidate);
//   - per source, "<source>.rank": 1/(1+r) for the candidate's rank r in
//     that source's list (0: not brought);
//   - per model that is a model.Featurer, its columns ("trending.events",
//     "trending.popularity");
//   - "item.age": log1p of the hours since the item's first event;
//   - "item.category_affinity": the largest share, over the item's
//     categories, of the user's latest 50 events on items of that category;
//   - "user.events": log1p of the events the user ever had;
//   - "user.gap": log1p of the hours since the user's latest event (log1p
//     of a million hours for a user with none);
//   - "user.session_events": the events of the user's current session;
//   - "context.hour" and "context.weekday": the request's hour of day (0-23)
//     and weekday (0 Sunday) in UTC, on the events' clock or Request.At;
//   - "blend": the candidate's blended score under the ranker's row.
//
// A source the ranker's row weighs 0 is not asked, so its two columns are 0.

// userCols and itemCols are the engine's own columns; the last column of
// every vector is baseFeature.
var (
	itemCols = []string{"item.age", "item.category_affinity"}
)

// userCols are the user's and the context's columns (Example.User).
var userCols = [...]string{"user.events", "user.gap", "user.session_events", "context.hour", "context.weekday"}

const (
	baseFeature = "blend"
	// recentEvents is how many of the user's latest events category
	// affinity counts.
	recentEvents = 50
	noGapHours   = 1e6
)

// featurer is a model that describes candidates, and where its columns go.
type featurer struct {
	f    model.Featurer
	cols int
}

// initFeatures names the columns, once the sources and featurers are known.
func (e *Engine) initFeatures() {
	k := len(e.sources)
	names := make([]string, 0, 2*k+len(itemCols)+len(userCols)+1)
	for _, s := range e.sources {
		names = append(names, s.name)
	}
	for _, s := range e.sources {
		names = append(names, s.name+".rank")
	}
	for _, m := range e.models {
		if f, ok := m.(model.Featurer); ok {
			cols := f.Features()
			for _, c := range cols {
				names = append(names, m.Name()+"."+c)
			}
			e.featurers = append(e.featurers, featurer{f, len(cols)})
		}
	}
	names = append(names, itemCols...)
	e.itemCols = len(names) - 2*k
	names = append(names, userCols[:]...)
	names = append(names, baseFeature)
	e.featNames = names
}

// FeatureNames names the columns of a feature vector (see the list above).
func (e *Engine) FeatureNames() []string { return slices.Clone(e.featNames) }

// ItemColumns is how many columns of a vector describe the item (after
// the sources' scores and ranks): Example.Item's row length.
func (e *Engine) ItemColumns() int { return e.itemCols }

// now is the moment a request is asked: at, or the events' clock.
func (e *Engine) now(at float64) float64 {
	if at > 0 {
		return at
	}
	return float64(e.clock)
}

// describeUser fills the user's and the context's columns.
func (e *Engine) describeUser(q *model.Query, at float64, dst []float32) {
	now := e.now(at)
	gap := noGapHours
	if g := e.gapOf(q.History, at); !math.IsInf(g, 1) {
		gap = g / 3600
	}
	t := time.Unix(int64(now), 0).UTC()
	dst[0] = float32(math.Log1p(float64(q.Start) + float64(len(q.History))))
	dst[1] = float32(math.Log1p(gap))
	dst[2] = float32(len(q.History) - q.Session)
	dst[3] = float32(t.Hour())
	dst[4] = float32(t.Weekday())
}

// describeItems fills the item columns of each of items: item i's at
// dst[i*stride:]. cats is scratch for the user's recent categories.
func (e *Engine) describeItems(q *model.Query, items []int32, dst []float32, stride int, at float64, cats []int32) []int32 {
	off := 0
	for _, f := range e.featurers {
		f.f.Describe(q, items, dst[off:], stride)
		off += f.cols
	}
	// The user's recent categories, sorted, one entry per event and category.
	recent := q.History[max(0, len(q.History)-recentEvents):]
	cats = cats[:0]
	for _, h := range recent {
		if int(h.Item) < len(e.itemCats) {
			cats = append(cats, e.itemCats[h.Item]...)
		}
	}
	slices.Sort(cats)
	now := e.now(at)
	for i, it := range items {
		row := dst[i*stride+off:]
		age := 0.0
		if int(it) < len(e.first) && e.first[it] > 0 {
			age = max(now-float64(e.first[it]), 0) / 3600
		}
		row[0] = float32(math.Log1p(age))
		best := 0
		if len(cats) > 0 && int(it) < len(e.itemCats) {
			for _, c := range e.itemCats[it] {
				lo, _ := slices.BinarySearch(cats, c)
				hi, _ := slices.BinarySearch(cats, c+1)
				best = max(best, hi-lo)
			}
		}
		if len(recent) > 0 {
			row[1] = float32(best) / float32(len(recent))
		} else {
			row[1] = 0
		}
	}
	return cats
}

// rerank reorders the blend's best candidates by the installed ranker's
// forest: s.final holds the merged candidates with their blended scores;
// the best pool of them get base + forest(features) and the n best of
// those stay in s.final. s.pool and s.feat keep the rows, for explain.
func (e *Engine) rerank(s *scratch, n int) {
	r := e.ranker
	s.final = model.Top(s.final, max(n, r.Pool))
	m := len(s.final)
	F := len(e.featNames)
	k := len(e.sources)
	s.pool = s.pool[:0]
	for i, c := range s.final {
		s.pool = append(s.pool, c.Item)
		s.rowOf[c.Item] = int32(i + 1)
	}
	s.feat = slices.Grow(s.feat[:0], m*F)[:m*F]
	clear(s.feat)
	for i, list := range s.lists[:k] {
		if len(list) == 0 || s.w[i] <= 0 {
			continue
		}
		sc := e.scale(i, list)
		rank := 0
		prev := float32(-1)
		for p, c := range list {
			v := sc.candidate(c.Score)
			if v != prev {
				rank, prev = p, v
			}
			if row := s.rowOf[c.Item]; row > 0 {
				x := s.feat[int(row-1)*F:]
				x[i] = v
				x[k+i] = 1 / float32(1+rank)
			}
		}
	}
	if m > 0 {
		s.cats = e.describeItems(&s.q, s.pool, s.feat[2*k:], F, s.at, s.cats)
		u := s.feat[2*k+e.itemCols : 2*k+e.itemCols+len(userCols)]
		e.describeUser(&s.q, s.at, u)
		for i := 1; i < m; i++ {
			copy(s.feat[i*F+2*k+e.itemCols:], u)
		}
	}
	for i := range s.final {
		s.feat[(i+1)*F-1] = s.final[i].Score
	}
	s.pred = slices.Grow(s.pred[:0], m)[:m]
	e.forest.PredictRows(s.feat, F, s.pred)
	for i := range s.final {
		c := &s.final[i]
		c.Score += s.pred[i]
		s.rowOf[c.Item] = 0
	}
	s.final = model.Top(s.final, n)
}

// Row is the feature vector of one of x's candidates, in FeatureNames'
// order, as the engine computes it when serving under a ranker row of
// weights w: what a ranker trains on.
//
// Rows returns the pool: up to pool candidates (indices into x.Items) that
// a source weighted in w brought, best first by their blended score (the
// lower item id first on equal ones), and their vectors, row-major, in
// dst. The ranks of each source are recomputed from x's scores: the number
// of candidates it scored higher.
func (x *Example) Rows(w []float32, pool int, dst []float32, idx []int) ([]int, []float32) {
	n := len(x.Items)
	if n == 0 {
		return idx[:0], dst[:0]
	}
	k := len(x.Scores) / n
	fi := len(x.Item) / n
	F := 2*k + fi + len(x.User) + 1
	base := make([]float32, n)
	idx = idx[:0]
	for i := range n {
		var v float32
		for j, c := range x.Scores[i*k : (i+1)*k] {
			if w[j] > 0 {
				v += w[j] * c
			}
		}
		base[i] = v
		if v > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		return model.Compare(model.Candidate{Item: x.Items[a], Score: base[a]}, model.Candidate{Item: x.Items[b], Score: base[b]})
	})
	idx = idx[:min(len(idx), pool)]
	dst = slices.Grow(dst[:0], len(idx)*F)[:len(idx)*F]
	clear(dst)
	// Each weighted source's ranks: how many candidates it scored higher.
	order := make([]int, 0, n)
	rank := make([]float32, n)
	for j := range k {
		if w[j] <= 0 {
			continue
		}
		order = order[:0]
		for i := range n {
			if x.Scores[i*k+j] > 0 {
				order = append(order, i)
			}
		}
		slices.SortStableFunc(order, func(a, b int) int {
			sa, sb := x.Scores[a*k+j], x.Scores[b*k+j]
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return 0
		})
		r := 0
		for p, i := range order {
			if p > 0 && x.Scores[i*k+j] != x.Scores[order[p-1]*k+j] {
				r = p
			}
			rank[i] = 1 / float32(1+r)
		}
		for row, i := range idx {
			if x.Scores[i*k+j] > 0 {
				dst[row*F+j] = x.Scores[i*k+j]
				dst[row*F+k+j] = rank[i]
			}
		}
	}
	for row, i := range idx {
		v := dst[row*F : (row+1)*F]
		copy(v[2*k:], x.Item[i*fi:(i+1)*fi])
		copy(v[2*k+fi:], x.User[:])
		v[F-1] = base[i]
	}
	return idx, dst
}

// FeatureEffect is one feature's part of a learned ranker's adjustment to
// an item's score (explain=true).
type FeatureEffect struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"`
	Effect  float64 `json:"effect"`
}

// featureEffects are the features of item's row that moved its score most
// (at most three, largest first by size).
func (e *Engine) featureEffects(s *scratch, item int32) []FeatureEffect {
	r := e.ranker
	if r == nil || r.Forest == nil || s.w == nil || len(s.pool) == 0 {
		return nil
	}
	row := slices.Index(s.pool, item)
	F := len(e.featNames)
	if row < 0 || (row+1)*F > len(s.feat) {
		return nil
	}
	x := s.feat[row*F : (row+1)*F]
	parts := make([]float32, F)
	r.Forest.Contributions(x, parts)
	var out []FeatureEffect
	for j, p := range parts {
		if p != 0 {
			out = append(out, FeatureEffect{Feature: e.featNames[j], Value: float64(x[j]), Effect: float64(p)})
		}
	}
	slices.SortStableFunc(out, func(a, b FeatureEffect) int {
		switch {
		case math.Abs(a.Effect) > math.Abs(b.Effect):
			return -1
		case math.Abs(a.Effect) < math.Abs(b.Effect):
			return 1
		}
		return 0
	})
	return out[:min(len(out), 3)]
}
