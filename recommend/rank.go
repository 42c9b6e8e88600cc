package recommend

import (
	"errors"
	"fmt"

	"github.com/streamrec/streamrec/model"
)

// RankRequest asks for a list the client holds (a feed, a search result
// page) in the user's order.
type RankRequest struct {
	User    string
	Items   []string // distinct item ids
	Explain bool
	// Blend and NoRanker are as in Request.
	Blend    map[string]float32
	NoRanker bool
	Trace    *Trace
}

// Rank answers exactly req.Items, best first for the user, scored by the
// blend over that list: each source scores the items it can (a
// model.Scorer directly, any other through Candidates limited to the list),
// its scores are scaled to [0, 1] by its best on the list, and the weighted
// sum ranks them (consumed, hidden and deleted items included: the list is
// the client's). Items no source can score (ids never
// seen, or items nothing knows anything of yet) follow, in the order given,
// with score 0 and ColdStart set.
func (e *Engine) Rank(req RankRequest) []Scored {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := len(req.Items)
	if n == 0 {
		return []Scored{}
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	e.query(s, req.User, "", n, n)
	e.override(s, req.Blend, req.NoRanker)
	q := &s.q
	q.Only, q.Filtered = true, true
	s.ids = s.ids[:0]
	for _, id := range req.Items {
		if it, ok := e.items.Lookup(id); ok && q.Mark[it] != q.Stamp {
			q.Mark[it] = q.Stamp
			s.ids = append(s.ids, it)
		}
	}
	if len(s.ids) > 0 {
		e.gather(s, -1, req.Trace)
	} else {
		for i := range s.lists[:len(e.sources)] {
			s.lists[i] = s.lists[i][:0]
		}
	}
	e.rank(s, -1, n)
	out := make([]Scored, 0, n)
	for _, c := range s.final {
		sc := Scored{Item: e.items.Name(c.Item), Score: float64(c.Score), Source: e.sources[s.src[c.Item]].name}
		if req.Explain {
			e.explain(s, &sc, c.Item, -1)
		}
		out = append(out, sc)
		q.Mark[c.Item] = 0 // answered
	}
	seen := make(map[string]bool, n-len(out))
	for _, id := range req.Items {
		if it, ok := e.items.Lookup(id); ok && q.Mark[it] != q.Stamp {
			continue // answered above
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, Scored{Item: id, Score: 0, Source: "", ColdStart: true})
		}
	}
	return out
}

// ErrUnknownSimilarity is returned for a similarity kind no source has.
var ErrUnknownSimilarity = errors.New("unknown similarity")

// Similar returns up to n items most similar to item, never hidden or
// deleted ones: by the sources of that similarity kind (model.Behaviour,
// model.Content), or, with by empty, every similarity source blended (each
// scaled to [0, 1], then summed).
func (e *Engine) Similar(item string, n int, by string) ([]Scored, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.items.Lookup(item)
	if !ok {
		return nil, ErrUnknownItem
	}
	var use []model.Similar
	for _, x := range e.similar {
		if by == "" || x.SimilarKind() == by {
			use = append(use, x)
		}
	}
	if len(use) == 0 {
		return nil, fmt.Errorf("%w %q", ErrUnknownSimilarity, by)
	}
	if n <= 0 {
		return []Scored{}, nil
	}
	s := e.getScratch()
	defer e.scratch.Put(s)
	e.query(s, "", "", n, n)
	q := &s.q
	q.Mark[it] = q.Stamp
	s.merged = s.merged[:0]
	for k, x := range use {
		list := x.Neighbours(q, it, s.final[:0])
		hi := float32(0)
		if len(list) > 0 {
			hi = list[0].Score
		}
		for _, c := range list {
			v := c.Score // one kind: its own similarity
			if len(use) > 1 && hi > 0 {
				v /= hi
			}
			v += 1e-9
			if s.blend[c.Item] == 0 {
				s.merged = append(s.merged, c.Item)
			}
			s.blend[c.Item] += v
			if v > s.best[c.Item] {
				s.best[c.Item], s.src[c.Item] = v, uint8(k)
			}
		}
		s.final = list[:0]
	}
	s.final = s.final[:0]
	for _, x := range s.merged {
		s.final = append(s.final, model.Candidate{Item: x, Score: s.blend[x]})
		s.blend[x], s.best[x] = 0, 0
	}
	out := make([]Scored, 0, n)
	for _, c := range model.Top(s.final, n) {
		name := ""
		if m, ok := use[s.src[c.Item]].(model.Model); ok {
			name = m.Name()
		}
		out = append(out, Scored{Item: e.items.Name(c.Item), Score: float64(c.Score), Source: name})
	}
	return out, nil
}
