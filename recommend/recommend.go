package recommend

import (
	"slices"
	"sort"
	"time"

	"github.com/streamrec/streamrec/model/history"
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
	// Source restricts the answer to one source (SourceItemKNN or
	// SourceTrending), for evaluating each model alone; empty blends them.
	Source string
	Trace  *Trace // filled with per-source timings when not nil
}

// Trace says where one request's time went.
type Trace struct {
	ItemKNN    time.Duration // scoring the neighbours of the user's items
	Trending   time.Duration // the trending backfill
	Candidates int           // item-kNN candidates scored
}

type scratch struct {
	acc     []float32
	touched []int32
	mark    []uint32 // mark[item] == stamp: excluded for this request
	stamp   uint32
	cand    []cand
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
		s.acc = make([]float32, n+n/4+16)
		s.mark = make([]uint32, len(s.acc))
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

// Recommend returns up to req.N items for the user, best first: neighbours of
// the user's recent items (item_knn), backfilled with trending items. Items
// the user consumed, hidden and deleted items never appear. An unknown user
// gets trending items (cold start).
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
	out := make([]Scored, 0, req.N)

	var hist []history.Entry // an unknown user has none: trending only
	if u, ok := e.users.Lookup(req.User); ok {
		hist = e.hist.User(u)
	}
	for _, h := range hist {
		if e.consumed[h.Type] {
			s.mark[h.Item] = s.stamp
		}
	}
	var start time.Time
	if req.Trace != nil {
		start = time.Now()
	}
	s.touched = s.touched[:0]
	if req.Source != SourceTrending {
		s.touched = e.knn.Score(hist, s.acc, s.touched)
	}
	s.cand = s.cand[:0]
	for _, it := range s.touched {
		sc := s.acc[it]
		s.acc[it] = 0
		if sc <= 0 || s.mark[it] == s.stamp || !e.eligible(it, cat) {
			continue
		}
		s.cand = append(s.cand, cand{it, sc})
	}
	top := topN(s.cand, req.N)
	for _, c := range top {
		s.mark[c.item] = s.stamp
		out = append(out, Scored{Item: e.items.Name(c.item), Score: float64(c.score), Source: SourceItemKNN})
	}
	if req.Trace != nil {
		mid := time.Now()
		req.Trace.ItemKNN, req.Trace.Candidates = mid.Sub(start), len(s.touched)
		start = mid
	}
	if len(out) < req.N && req.Source != SourceItemKNN {
		out = e.appendTrending(out, req.N, cat, s)
	}
	if req.Trace != nil {
		req.Trace.Trending = time.Since(start)
	}
	return out
}

// appendTrending backfills out with trending items not marked in s.
func (e *Engine) appendTrending(out []Scored, n int, cat int32, s *scratch) []Scored {
	if cat < 0 {
		for _, it := range e.trend.Top() {
			if len(out) >= n {
				return out
			}
			if s.mark[it] == s.stamp || !e.eligible(it, cat) {
				continue
			}
			s.mark[it] = s.stamp
			out = append(out, Scored{Item: e.items.Name(it), Score: e.trend.Score(it), Source: SourceTrending})
		}
		return out
	}
	s.cand = s.cand[:0]
	for _, it := range e.members[cat] {
		if s.mark[it] == s.stamp || !e.eligible(it, cat) {
			continue
		}
		if sc := e.trend.Raw(it); sc > 0 {
			s.cand = append(s.cand, cand{it, float32(sc)})
		}
	}
	for _, c := range topN(s.cand, n-len(out)) {
		s.mark[c.item] = s.stamp
		out = append(out, Scored{Item: e.items.Name(c.item), Score: e.trend.Score(c.item), Source: SourceTrending})
	}
	return out
}

// Trending returns the n most popular items right now (time-decayed),
// optionally within a category.
func (e *Engine) Trending(n int, category string) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Scored, 0, n)
	cat, ok := e.catFilter(category)
	if !ok || n <= 0 {
		return out
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	return e.appendTrending(out, n, cat, s)
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
