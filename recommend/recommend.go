package recommend

import (
	"math"
	"slices"
	"time"

	"github.com/streamrec/streamrec/model"
)

// Scored is one recommended (or ranked) item.
type Scored struct {
	Item   string  `json:"item_id"`
	Score  float64 `json:"score"`
	Source string  `json:"source"`
	// ColdStart marks an item no source could score (ranking a list: an id
	// never seen, or one nothing knows anything of yet).
	ColdStart bool `json:"cold_start,omitempty"`
	// Because and Parts explain the item (Request.Explain): the user's own
	// items that led to it, strongest first, and each source's weighted,
	// scaled part of the score.
	Because []string `json:"because,omitempty"`
	Parts   []Part   `json:"contributions,omitempty"`
	// Features are the features that moved the item most under a learned
	// ranker's trees (Request.Explain), largest effect first.
	Features []FeatureEffect `json:"features,omitempty"`
}

// Part is one source's share of a blended score.
type Part struct {
	Source string  `json:"source"`
	Score  float64 `json:"score"`
}

// Request asks for recommendations.
type Request struct {
	User     string
	N        int
	Category string // only items of this category, when set
	// Source restricts the answer to one source (by name), for evaluating
	// each model alone; empty blends them.
	Source string
	// Exclude lists items the answer must not hold.
	Exclude []string
	// Diversity in [0, 1] trades relevance for variety by maximal marginal
	// relevance over item-to-item similarity: 0 (the default) ranks by
	// relevance alone.
	Diversity float64
	// MaxPerCategory, when positive, caps the items of any one category.
	MaxPerCategory int
	// Explain adds Because and Parts to every item.
	Explain bool
	// At is when the request is asked, in unix seconds, for the ranker's
	// time since the user's latest event; 0 (the server's case) is the
	// events' clock, the latest event time applied. Offline evaluation
	// sets it to ask a user at the moment of an event held out.
	At float64
	// Blend, when set, weighs the sources by these weights (by source
	// name; a source it does not name weighs 0) instead of the ranker's or
	// the configured ones: an experiment's variant.
	Blend map[string]float32
	// NoRanker blends by the configured weights even when a learned ranker
	// is installed.
	NoRanker bool
	Trace    *Trace // filled with per-source timings when not nil
}

// Trace says where one request's time went, per source.
type Trace struct {
	Sources []SourceTrace
	buf     [8]SourceTrace
}

// SourceTrace is one source's part of a request.
type SourceTrace struct {
	Name       string
	Took       time.Duration
	Candidates int // candidates it brought
}

type scratch struct {
	key     []byte // the request's answer key
	q       model.Query
	acc     []float32
	touched []int32
	mark    []uint32
	stamp   uint32
	lists   [][]model.Candidate // per source
	blend   []float32           // per item: blended score
	best    []float32           // per item: the largest weighted part
	src     []uint8             // per item: the source of that part
	merged  []int32
	final   []model.Candidate
	ids     []int32
	because []int32
	w       []float32 // the request's blend weights, by source index
	over    []float32 // a request's own weights (Request.Blend), by source index
	at      float64   // when the request is asked, unix seconds (0: the events' clock)
	// ranked is set when s.w is the installed ranker's row, whose trees
	// then rerank the blend (features.go: pool, rowOf, feat, cats).
	ranked bool
	pool   []int32
	rowOf  []int32 // per item: its row in feat + 1 (0: none); all zero between requests
	feat   []float32
	pred   []float32
	cats   []int32
}

func (e *Engine) getScratch() *scratch {
	s, _ := e.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	n := e.items.Len()
	if len(s.acc) < n {
		size := n + n/4 + 16
		s.acc = make([]float32, size)
		s.mark = make([]uint32, size)
		s.blend = make([]float32, size)
		s.best = make([]float32, size)
		s.src = make([]uint8, size)
		s.rowOf = make([]int32, size)
		s.stamp = 0
	}
	e.nextStamp(s)
	s.at = 0
	s.ranked = false
	s.pool = s.pool[:0]
	for len(s.lists) < len(e.sources) {
		s.lists = append(s.lists, nil)
	}
	return s
}

// nextStamp starts a new set of marks.
func (e *Engine) nextStamp(s *scratch) {
	s.stamp++
	if s.stamp == 0 { // wrapped: clear old marks
		clear(s.mark)
		s.stamp = 1
	}
}

// query fills s.q for user; false when the category is unknown (nothing can
// match).
func (e *Engine) query(s *scratch, user string, category string, n, want int) bool {
	q := &s.q
	*q = model.Query{User: -1, N: n, Want: want, Now: float64(e.clock), Category: -1, Epoch: e.catEpoch,
		Items: e.items.Len(), Acc: s.acc, Touched: s.touched[:0], Mark: s.mark, Stamp: s.stamp, Blocked: e.blocked, Cats: e.itemCats}
	s.w = e.blendW
	if category != "" {
		c, ok := e.cats.Lookup(category)
		if !ok {
			return false
		}
		q.Category, q.InCategory = c, e.members[c]
	}
	if u, ok := e.users.Lookup(user); ok {
		q.User = u
		q.History = e.hist.User(u)
		q.Start = e.hist.Start(u)
		q.Session = e.sessionIndex(u, q.Start)
	}
	s.w = e.weights(q, s.at)
	s.ranked = e.rankW != nil
	return true
}

// override puts a request's own weights in place of the ranker's or the
// configured ones: blend by source name, or the configured blend when
// noRanker is set.
func (e *Engine) override(s *scratch, blend map[string]float32, noRanker bool) {
	switch {
	case blend != nil:
		s.ranked = false
		s.over = s.over[:0]
		for _, src := range e.sources {
			s.over = append(s.over, max(blend[src.name], 0))
		}
		s.w = s.over
	case noRanker:
		s.ranked = false
		s.w = e.blendW
	}
}

// excludeConsumed marks the user's consumed items excluded.
func (e *Engine) excludeConsumed(q *model.Query) {
	for _, h := range q.History {
		if e.consumed[h.Type] && q.Mark[h.Item] != q.Stamp {
			q.Mark[h.Item] = q.Stamp
			q.Excluded++
		}
	}
}

// exclude marks the items a request excludes.
func (e *Engine) exclude(q *model.Query, items []string) {
	for _, id := range items {
		if it, ok := e.items.Lookup(id); ok && q.Mark[it] != q.Stamp {
			q.Mark[it] = q.Stamp
			q.Excluded++
			q.Filtered = true
		}
	}
}

// sourceIndex is the index of the source named, -1 for none.
func (e *Engine) sourceIndex(name string) int {
	for i, s := range e.sources {
		if s.name == name {
			return i
		}
	}
	return -1
}

// perSource is how many candidates each source brings to a blend of n:
// enough that the blend can reorder, not so many that it costs.
func perSource(n int) int { return max(3*n, 50) }

// Recommend returns up to req.N items for the user, best first. Candidates
// come from each source with a weight; each source's scores are scaled to
// [0, 1] for this user and the weighted sum ranks them. Items the user
// consumed, excluded, hidden and deleted items never appear. An unknown
// user gets what the sources that know no user bring (trending: cold
// start). With req.Source set, that source answers alone (nil if there is
// no such source). With Config.Answers set, the same request asked again
// before any write gets the answer kept from the first asking (answers.go),
// and req.Trace stays empty: no source was asked.
func (e *Engine) Recommend(req Request) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if req.N <= 0 {
		return nil
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	if e.answers != nil {
		s.key = answerKey(s.key[:0], &req)
		if items, ok := e.answers.get(e.epoch, s.key); ok {
			return items
		}
		items := e.recommend(s, req)
		e.answers.put(e.epoch, s.key, items)
		return items
	}
	return e.recommend(s, req)
}

// recommend is Recommend's answer computed, under the read lock.
func (e *Engine) recommend(s *scratch, req Request) []Scored {
	s.at = req.At
	one := -1
	if req.Source != "" {
		if one = e.sourceIndex(req.Source); one < 0 {
			return nil
		}
	}
	pool := req.N
	if req.Diversity > 0 || req.MaxPerCategory > 0 {
		pool = perSource(req.N) // room to choose from
	}
	want := pool
	if one < 0 {
		want = perSource(pool)
	}
	if !e.query(s, req.User, req.Category, req.N, want) {
		return []Scored{}
	}
	e.override(s, req.Blend, req.NoRanker)
	e.excludeConsumed(&s.q)
	e.exclude(&s.q, req.Exclude)
	e.gather(s, one, req.Trace)
	e.rank(s, one, pool)
	return e.respond(s, one, req)
}

// RecommendEach answers one user for several sources at once (each as
// Recommend with that Source would, "" for the blend), gathering every
// source's candidates once: what an offline evaluation of all models needs.
func (e *Engine) RecommendEach(user string, n int, sources []string) [][]Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.getScratch()
	defer e.scratch.Put(s)
	want := n
	for _, src := range sources {
		if src == "" {
			want = perSource(n)
		}
	}
	e.query(s, user, "", n, want)
	e.excludeConsumed(&s.q)
	e.gather(s, -2, nil) // every source: one the blend leaves out may be asked alone
	out := make([][]Scored, len(sources))
	for i, src := range sources {
		one := -1
		if src != "" {
			if one = e.sourceIndex(src); one < 0 {
				continue
			}
		}
		e.rank(s, one, n)
		out[i] = e.respond(s, one, Request{N: n})
	}
	return out
}

// gather fills s.lists with the candidates of each source the answer
// weighs (only source one when one ≥ 0; every source when one is -2). When
// ranking a given list (q.Only), a model.Scorer scores s.ids directly.
func (e *Engine) gather(s *scratch, one int, trace *Trace) {
	q := &s.q
	if trace != nil {
		trace.Sources = trace.buf[:0]
	}
	for i := range e.sources {
		src := &e.sources[i]
		s.lists[i] = s.lists[i][:0]
		if one >= 0 && i != one || one == -1 && s.w[i] <= 0 {
			continue
		}
		var start time.Time
		if trace != nil {
			start = time.Now()
		}
		if q.Only && src.scorer != nil { // ranking a given list: score it directly
			s.lists[i] = model.Top(src.scorer.ScoreItems(q, s.ids, s.lists[i]), q.Want)
		} else {
			s.lists[i] = src.src.Candidates(q, s.lists[i])
		}
		if trace != nil {
			trace.Sources = append(trace.Sources, SourceTrace{Name: src.name, Took: time.Since(start), Candidates: len(s.lists[i])})
		}
	}
	s.touched = q.Touched
}

// RecommendBlends answers one user as Recommend would under each of the
// blends (weights by source name; a source a blend leaves out weighs 0),
// gathering every source's candidates once: what tuning the blend by
// replay needs.
func (e *Engine) RecommendBlends(user string, n int, blends []map[string]float32) [][]Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.getScratch()
	defer e.scratch.Put(s)
	e.query(s, user, "", n, perSource(n))
	e.excludeConsumed(&s.q)
	e.gather(s, -2, nil)
	out := make([][]Scored, len(blends))
	w := make([]float32, len(e.sources))
	for i, b := range blends {
		for j, src := range e.sources {
			w[j] = b[src.name]
		}
		e.rankWeights(s, n, w)
		out[i] = e.respond(s, -1, Request{N: n})
	}
	return out
}

// rank puts the best n candidates, by the blend (or source one alone),
// into s.final; s.src names each one's source.
func (e *Engine) rank(s *scratch, one int, n int) {
	s.final = s.final[:0]
	if one >= 0 {
		for _, c := range s.lists[one][:min(n, len(s.lists[one]))] {
			s.final = append(s.final, c)
			s.src[c.Item] = uint8(one)
		}
		return
	}
	e.rankWeights(s, n, nil)
}

// rankWeights is rank of the blend by weights w per source (nil: the
// request's, s.w: the ranker's bucket or the configured blend).
func (e *Engine) rankWeights(s *scratch, n int, weights []float32) {
	s.final = s.final[:0]
	s.merged = s.merged[:0]
	own := weights == nil // the request's weights: the ranker's trees may rerank
	if weights == nil {
		weights = s.w
	}
	for i, list := range s.lists {
		w := weights[i]
		if len(list) == 0 || w <= 0 {
			continue
		}
		sc := e.scale(i, list)
		for _, c := range list {
			// Weighted with its ε, exactly as an Example's scores are
			// (Example.Rows, the ranker's fit), so training and serving
			// rank alike.
			v := w * sc.candidate(c.Score)
			it := c.Item
			if s.blend[it] == 0 && s.best[it] == 0 {
				s.merged = append(s.merged, it)
			}
			s.blend[it] += v
			if v > s.best[it] {
				s.best[it], s.src[it] = v, uint8(i)
			}
		}
	}
	for _, it := range s.merged {
		s.final = append(s.final, model.Candidate{Item: it, Score: s.blend[it]})
		s.blend[it], s.best[it] = 0, 0
	}
	if own && s.ranked && e.ranker.Forest != nil {
		e.rerank(s, n)
		return
	}
	s.final = model.Top(s.final, n)
}

// scaling maps a source's scores to [0, 1]: (score − lo)·scale, clamped
// at 0.
type scaling struct{ scale, lo float32 }

// unit is score on the [0, 1] scale.
func (s scaling) unit(score float32) float32 { return min(max(score-s.lo, 0)*s.scale, 1) }

// candidate is unit plus ε, what a candidate the source brought carries
// in the blend, in an Example and in the ranker's features: the last one
// still counts (above 0, the value of one the source did not bring).
func (s scaling) candidate(score float32) float32 { return s.unit(score) + 1e-9 }

// scale is how source i's list (best first) maps to [0, 1].
func (e *Engine) scale(i int, list []model.Candidate) scaling {
	if len(list) == 0 {
		return scaling{}
	}
	hi := list[0].Score
	if e.sources[i].norm == model.NormMinMax {
		lo := list[len(list)-1].Score
		if hi > lo {
			return scaling{1 / (hi - lo), lo}
		}
		return scaling{0, lo} // all alike: each counts its ε
	}
	if hi > 0 {
		return scaling{1 / hi, 0}
	}
	return scaling{}
}

// respond turns s.final into the answer: diversified and capped per
// category when asked, explained when asked.
func (e *Engine) respond(s *scratch, one int, req Request) []Scored {
	final := s.final
	if req.Diversity > 0 || req.MaxPerCategory > 0 {
		final = e.diversify(s, final, req)
	}
	final = final[:min(len(final), req.N)]
	out := make([]Scored, 0, len(final))
	for _, c := range final {
		sc := Scored{Item: e.items.Name(c.Item), Score: float64(c.Score), Source: e.sources[s.src[c.Item]].name}
		if req.Explain {
			e.explain(s, &sc, c.Item, one)
		}
		out = append(out, sc)
	}
	return out
}

// diversify reorders the candidates by maximal marginal relevance,
// (1−λ)·relevance − λ·(largest similarity to an item already chosen), and
// leaves out items of a category that already has req.MaxPerCategory.
func (e *Engine) diversify(s *scratch, c []model.Candidate, req Request) []model.Candidate {
	lambda := float32(min(max(req.Diversity, 0), 1))
	var sim model.Similar
	if len(e.similar) > 0 && lambda > 0 {
		sim = e.similar[0]
	}
	hi, lo := float32(0), float32(0)
	if len(c) > 0 {
		hi, lo = c[0].Score, c[len(c)-1].Score
	}
	rel := func(x model.Candidate) float32 {
		if lo < 0 { // a ranker's trees may score below 0: min-max instead
			if hi > lo {
				return (x.Score - lo) / (hi - lo)
			}
			return 0
		}
		if hi > 0 {
			return x.Score / hi
		}
		return 0
	}
	perCat := map[int32]int{}
	full := func(it int32) bool {
		if req.MaxPerCategory <= 0 {
			return false
		}
		for _, cat := range e.itemCats[it] {
			if perCat[cat] >= req.MaxPerCategory {
				return true
			}
		}
		return false
	}
	out := make([]model.Candidate, 0, req.N)
	left := slices.Clone(c)
	maxSim := make([]float32, len(left))
	for len(out) < req.N && len(left) > 0 {
		bi, bv := -1, float32(math.Inf(-1))
		for i, x := range left {
			if full(x.Item) {
				continue
			}
			v := rel(x)
			if sim != nil {
				v = (1-lambda)*v - lambda*maxSim[i]
			}
			if v > bv {
				bi, bv = i, v
			}
		}
		if bi < 0 {
			break
		}
		pick := left[bi]
		out = append(out, pick)
		for _, cat := range e.itemCats[pick.Item] {
			perCat[cat]++
		}
		left = slices.Delete(left, bi, bi+1)
		maxSim = slices.Delete(maxSim, bi, bi+1)
		if sim != nil {
			for i, x := range left {
				maxSim[i] = max(maxSim[i], sim.Similarity(pick.Item, x.Item))
			}
		}
	}
	return out
}

// explain fills the item's Because (from the sources that can say, the
// user's items that led to it) and Parts (each source's weighted share).
func (e *Engine) explain(s *scratch, sc *Scored, it int32, one int) {
	s.because = s.because[:0]
	for i, list := range s.lists {
		if one >= 0 && i != one || len(list) == 0 {
			continue
		}
		w := s.w[i]
		if one >= 0 {
			w = 1
		}
		sc0 := e.scale(i, list)
		for _, c := range list {
			if c.Item == it {
				sc.Parts = append(sc.Parts, Part{Source: e.sources[i].name, Score: float64(w * sc0.unit(c.Score))})
				if x := e.sources[i].explain; x != nil {
					s.because = x.Because(&s.q, it, s.because)
				}
				break
			}
		}
	}
	if one < 0 && s.ranked {
		sc.Features = e.featureEffects(s, it)
	}
	seen := map[int32]bool{}
	for _, b := range s.because {
		if !seen[b] && len(sc.Because) < 5 {
			seen[b] = true
			sc.Because = append(sc.Because, e.items.Name(b))
		}
	}
}

// Trending returns the n most popular items right now, optionally within a
// category: the blend of the sources that know no user.
func (e *Engine) Trending(n int, category string) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if n <= 0 {
		return []Scored{}
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	if !e.query(s, "", category, n, n) {
		return []Scored{}
	}
	one := -1
	for i, src := range e.sources {
		if src.popular {
			one = i
			break
		}
	}
	if one < 0 {
		return []Scored{}
	}
	e.gather(s, one, nil)
	e.rank(s, one, n)
	return e.respond(s, one, Request{N: n})
}
