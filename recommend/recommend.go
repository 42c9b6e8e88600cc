package recommend

import (
	"slices"
	"sort"
	"time"

	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/model/mf"
)

func cmpCand(a, b cand) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.item - b.item)
}

// Scored is one recommended item.
type Scored struct {
	Item   string  `json:"item_id"`
	Score  float64 `json:"score"`
	Source string  `json:"source"`
}

// Request asks for recommendations.
type Request struct {
	User     string
	N        int
	Category string // only items of this category, when set
	// Source restricts the answer to one source (SourceItemKNN, SourceMF or
	// SourceTrending), for evaluating each model alone; empty blends them.
	Source string
	Trace  *Trace // filled with per-source timings when not nil
}

// Trace says where one request's time went.
type Trace struct {
	ItemKNN    time.Duration // scoring the neighbours of the user's items
	MF         time.Duration // fold-in (when stale) and retrieval
	Trending   time.Duration // the trending candidates
	Candidates int           // item-kNN candidates scored
}

type scratch struct {
	acc     []float32
	touched []int32
	mark    []uint32 // mark[item] == stamp: excluded for this request
	stamp   uint32
	cand    []cand
	knn     []cand
	mf      []mf.Scored
	tr      []cand
	blend   []float32 // per item: blended score
	best    []float32 // per item: the largest weighted part
	src     []uint8   // per item: the source of that part
	merged  []int32
	final   []cand
}

type cand struct {
	item  int32
	score float32
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
		s.stamp = 0
	}
	s.stamp++
	if s.stamp == 0 { // wrapped: clear old marks
		clear(s.mark)
		s.stamp = 1
	}
	return s
}

// catFilter returns the category id to filter on: -1 for none, and false if
// the category is unknown (nothing can match).
func (e *Engine) catFilter(name string) (int32, bool) {
	if name == "" {
		return -1, true
	}
	c, ok := e.cats.Lookup(name)
	return c, ok
}

// eligible says whether item may be shown: not deleted, not hidden, in the
// category when one is asked for.
func (e *Engine) eligible(it int32, cat int32) bool {
	m := &e.meta[it]
	if m.deleted || m.hidden {
		return false
	}
	return cat < 0 || contains(m.cats, cat)
}

// weights is the blend for a request: the configured one, or one source
// alone when the request names it.
func (e *Engine) weights(source string) Blend {
	switch source {
	case SourceItemKNN:
		return Blend{ItemKNN: 1}
	case SourceMF:
		return Blend{MF: 1}
	case SourceTrending:
		return Blend{Trending: 1}
	}
	return e.blend
}

// perSource is how many candidates mf and trending each bring to a blend of
// n: enough that the blend can reorder, not so many that it costs.
func perSource(n int) int { return max(3*n, 50) }

// Recommend returns up to req.N items for the user, best first. Candidates
// come from each source with a weight: neighbours of the user's recent
// items (item_knn), the user's vector against the item vectors (mf, once a
// model is trained) and the trending items; each source's scores are scaled
// to [0, 1] for this user and the weighted sum ranks them. Items the user
// consumed, hidden and deleted items never appear. An unknown user gets
// trending items (cold start).
func (e *Engine) Recommend(req Request) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if req.N <= 0 {
		return nil
	}
	cat, ok := e.catFilter(req.Category)
	if !ok {
		return []Scored{}
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	w := e.weights(req.Source)
	e.gather(s, req.User, req.N, cat, w, req.Trace)
	return e.answer(s, req.Source, w, req.N)
}

// RecommendEach answers one user for several sources at once (each as
// Recommend with that Source would, "" for the blend), gathering every
// source's candidates once: what an offline evaluation of all models needs.
func (e *Engine) RecommendEach(user string, n int, sources []string) [][]Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.getScratch()
	defer e.scratch.Put(s)
	var need Blend
	for _, src := range sources {
		w := e.weights(src)
		need.ItemKNN, need.MF, need.Trending = max(need.ItemKNN, w.ItemKNN), max(need.MF, w.MF), max(need.Trending, w.Trending)
	}
	e.gather(s, user, n, -1, need, nil)
	out := make([][]Scored, len(sources))
	for i, src := range sources {
		out[i] = e.answer(s, src, e.weights(src), n)
	}
	return out
}

// gather fills s with the candidates of each source w weighs, for user.
func (e *Engine) gather(s *scratch, user string, n int, cat int32, w Blend, trace *Trace) {
	var hist []history.Entry // an unknown user has none: trending only
	u, known := e.users.Lookup(user)
	if known {
		hist = e.hist.User(u)
	}
	excluded := 0
	for _, h := range hist {
		if e.consumed[h.Type] {
			s.mark[h.Item] = s.stamp
			excluded++
		}
	}
	skip := func(it int32) bool { return s.mark[it] == s.stamp || !e.eligible(it, cat) }
	timed := trace != nil
	var sink Trace
	if !timed {
		trace = &sink
	}
	var start time.Time
	lap := func(d *time.Duration) {
		if timed {
			now := time.Now()
			*d, start = now.Sub(start), now
		}
	}
	if timed {
		start = time.Now()
	}

	// item_knn: every item scored by the neighbours of the user's items.
	s.knn = s.knn[:0]
	if w.ItemKNN > 0 {
		s.touched = e.knn.Score(hist, s.acc, s.touched[:0])
		for _, it := range s.touched {
			sc := s.acc[it]
			s.acc[it] = 0
			if sc > 0 && !skip(it) {
				s.knn = append(s.knn, cand{it, sc})
			}
		}
		trace.Candidates = len(s.touched)
	}
	lap(&trace.ItemKNN)

	// mf: the user's vector, folded in first if they acted since.
	s.mf = s.mf[:0]
	if w.MF > 0 && known {
		s.mf = e.mf.UserCandidates(u, hist, e.hist.Start(u), perSource(n), excluded, cat, e.catEpoch, skip, s.mf)
	}
	lap(&trace.MF)

	// trending: the most popular eligible items right now.
	s.tr = s.tr[:0]
	if w.Trending > 0 {
		s.tr = e.trendingCands(s.tr, perSource(n), cat, skip)
	}
	lap(&trace.Trending)
}

// answer turns the gathered candidates into the answer for source ("" for
// the blend by w); the candidate lists are left as they were, for the next
// answer.
func (e *Engine) answer(s *scratch, source string, w Blend, n int) []Scored {
	out := make([]Scored, 0, n)
	switch source {
	case SourceItemKNN:
		s.cand = append(s.cand[:0], s.knn...)
		for _, c := range topN(s.cand, n) {
			out = append(out, Scored{Item: e.items.Name(c.item), Score: float64(c.score), Source: SourceItemKNN})
		}
		return out
	case SourceMF:
		for _, c := range s.mf[:min(n, len(s.mf))] {
			out = append(out, Scored{Item: e.items.Name(c.Item), Score: float64(c.Score), Source: SourceMF})
		}
		return out
	case SourceTrending:
		for _, c := range s.tr[:min(n, len(s.tr))] {
			out = append(out, Scored{Item: e.items.Name(c.item), Score: e.trend.Score(c.item), Source: SourceTrending})
		}
		return out
	}
	return e.merge(s, w, n, out)
}

var sourceNames = [...]string{SourceItemKNN, SourceMF, SourceTrending}

// merge blends the three candidate lists in s into out.
func (e *Engine) merge(s *scratch, w Blend, n int, out []Scored) []Scored {
	s.merged = s.merged[:0]
	add := func(it int32, v float32, src uint8) {
		if s.blend[it] == 0 && s.best[it] == 0 {
			s.merged = append(s.merged, it)
		}
		s.blend[it] += v
		if v > s.best[it] {
			s.best[it], s.src[it] = v, src
		}
	}
	// Of item-kNN's candidates only its own top n and those the other
	// sources also bring can matter: any other one scores below n items of
	// that top n. s.acc (all zero between requests) flags the latter.
	for _, c := range s.mf {
		s.acc[c.Item] = 1
	}
	for _, c := range s.tr {
		s.acc[c.item] = 1
	}
	if len(s.knn) > 0 {
		s.cand = append(s.cand[:0], s.knn...)
		knnTop := topN(s.cand, n)
		hi, last := knnTop[0].score, knnTop[len(knnTop)-1]
		for _, c := range s.knn {
			if s.acc[c.item] != 0 || cmpCand(c, last) <= 0 {
				add(c.item, w.ItemKNN*c.score/hi, 0)
			}
		}
	}
	for _, c := range s.mf {
		s.acc[c.Item] = 0
	}
	for _, c := range s.tr {
		s.acc[c.item] = 0
	}
	if len(s.mf) > 0 {
		hi, lo := s.mf[0].Score, s.mf[len(s.mf)-1].Score
		for _, c := range s.mf {
			v := float32(1)
			if hi > lo {
				v = (c.Score - lo) / (hi - lo)
			}
			add(c.Item, w.MF*v+1e-9, 1) // +ε: the last one still counts as a candidate
		}
	}
	if len(s.tr) > 0 {
		hi := s.tr[0].score
		for _, c := range s.tr {
			v := float32(0)
			if hi > 0 {
				v = c.score / hi
			}
			add(c.item, w.Trending*v+1e-9, 2)
		}
	}
	s.final = s.final[:0]
	for _, it := range s.merged {
		s.final = append(s.final, cand{it, s.blend[it]})
	}
	for _, c := range topN(s.final, n) {
		out = append(out, Scored{Item: e.items.Name(c.item), Score: float64(c.score), Source: sourceNames[s.src[c.item]]})
	}
	for _, it := range s.merged {
		s.blend[it], s.best[it] = 0, 0
	}
	return out
}

// trendingCands appends up to n trending items that skip does not reject,
// best first, with their raw (undecayed-to-now) scores.
func (e *Engine) trendingCands(out []cand, n int, cat int32, skip func(int32) bool) []cand {
	if cat < 0 {
		for _, it := range e.trend.Top() {
			if len(out) >= n {
				break
			}
			if !skip(it) {
				out = append(out, cand{it, float32(e.trend.Raw(it))})
			}
		}
		return out
	}
	base := len(out)
	for _, it := range e.members[cat] {
		if skip(it) {
			continue
		}
		if sc := e.trend.Raw(it); sc > 0 {
			out = append(out, cand{it, float32(sc)})
		}
	}
	return out[:base+len(topN(out[base:], n))]
}

// Trending returns the n most popular items right now (time-decayed),
// optionally within a category.
func (e *Engine) Trending(n int, category string) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	cat, ok := e.catFilter(category)
	if !ok || n <= 0 {
		return []Scored{}
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	s.tr = e.trendingCands(s.tr[:0], n, cat, func(it int32) bool { return !e.eligible(it, cat) })
	return e.answer(s, SourceTrending, Blend{}, n)
}

// Similar returns up to n items most similar to item (item-kNN neighbours),
// never hidden or deleted ones.
func (e *Engine) Similar(item string, n int) ([]Scored, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.items.Lookup(item)
	if !ok {
		return nil, ErrUnknownItem
	}
	out := make([]Scored, 0, n)
	items, sims := e.knn.SortedNeighbors(it)
	for x, j := range items {
		if len(out) >= n {
			break
		}
		if !e.eligible(j, -1) {
			continue
		}
		out = append(out, Scored{Item: e.items.Name(j), Score: float64(sims[x]), Source: SourceItemKNN})
	}
	return out, nil
}

// topN sorts the best n candidates to the front and returns them. Ties go to
// the lower item id so results are deterministic.
func topN(c []cand, n int) []cand {
	if len(c) <= n {
		slices.SortFunc(c, cmpCand)
		return c
	}
	// Partial selection in place: c[:n] is kept sorted and holds the best
	// seen so far.
	best := c[:n]
	slices.SortFunc(best, cmpCand)
	less := func(a, b cand) bool { return cmpCand(a, b) < 0 }
	for _, x := range c[n:] {
		if !less(x, best[n-1]) {
			continue
		}
		pos := sort.Search(n, func(i int) bool { return less(x, best[i]) })
		copy(best[pos+1:], best[pos:n-1])
		best[pos] = x
	}
	return best
}
