package itemknn

import (
	"fmt"
	"slices"

	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/snapshot"
)

// Name is the source name of item-kNN.
const Name = "item_knn"

// Source is item-kNN behind the engine's model seam: it learns from every
// event and answers the neighbours of the user's recent items.
type Source struct {
	m *Model
}

// NewSource returns an empty item-kNN source.
func NewSource(cfg Config) *Source { return &Source{m: New(cfg)} }

// Model is the model behind the source.
func (s *Source) Model() *Model { return s.m }

// DefaultWeight implements model.Weighted.
func (s *Source) DefaultWeight() float32 { return 1 }

// Name implements model.Model.
func (s *Source) Name() string { return Name }

// Apply implements model.Model.
func (s *Source) Apply(x *model.Interaction) { s.m.Apply(x.Item, x.Entry.Weight, x.History) }

// Evict implements model.Evicter.
func (s *Source) Evict(x *model.Interaction) { s.m.Evict(x.Entry, x.History) }

// Flush implements model.Flusher.
func (s *Source) Flush() { s.m.Flush() }

// Fingerprint implements model.Snapshotter. Refresh is left out: it decides
// only when cached neighbour lists, which snapshots do not hold, recompute.
func (s *Source) Fingerprint() string {
	c := s.m.Config()
	c.Refresh = 0
	return fmt.Sprintf("%+v", c)
}

// Encode implements model.Snapshotter.
func (s *Source) Encode(e *snapshot.Encoder) { s.m.Encode(e) }

// Decode implements model.Snapshotter.
func (s *Source) Decode(d *snapshot.Decoder) { s.m.Decode(d) }

// Items is the number of item slots the model holds.
func (s *Source) Items() int { return s.m.Items() }

// Bytes implements model.Sized.
func (s *Source) Bytes() int64 { return s.m.Bytes() }

// Stats implements model.Statser.
func (s *Source) Stats() any {
	return struct {
		Pairs int `json:"pairs"`
	}{s.m.Pairs()}
}

// Candidates implements model.Source: every item scored by the neighbours
// of the user's recent items, the best q.Want.
func (s *Source) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if len(q.History) == 0 {
		return dst
	}
	q.Touched = s.m.Score(q.History, q.Acc, q.Touched[:0])
	dst = model.TopTouched(q, q.Acc, q.Touched, dst)
	for _, it := range q.Touched {
		q.Acc[it] = 0
	}
	return dst
}

// ScoreItems implements model.Scorer: what Candidates would score each of
// items, accumulated only for the items q lets through (with q.Only, the
// list being ranked), so that ranking a short list reads the neighbour
// lists but builds no candidate list. Without q.Only it answers through
// Candidates.
func (s *Source) ScoreItems(q *model.Query, items []int32, dst []model.Candidate) []model.Candidate {
	if len(q.History) == 0 {
		return dst
	}
	if !q.Only {
		want := q.Want
		q.Want = s.m.Items()
		base := len(dst)
		dst = s.Candidates(q, dst)
		q.Want = want
		kept := slices.DeleteFunc(dst[base:], func(c model.Candidate) bool { return !slices.Contains(items, c.Item) })
		return dst[:base+len(kept)]
	}
	acc, m := q.Acc, s.m
	for hItem, w := range m.query(q.History) {
		nb, sims := m.Neighbors(hItem)
		for x, j := range nb {
			if !q.Skip(j) {
				acc[j] += w * sims[x]
			}
		}
	}
	for _, it := range items {
		if int(it) >= len(acc) {
			continue
		}
		if sc := acc[it]; sc > 0 {
			dst = append(dst, model.Candidate{Item: it, Score: sc})
		}
		acc[it] = 0
	}
	return dst
}

// Because implements model.Explainer: the user's recent items whose
// neighbourhood holds item, by their contribution.
func (s *Source) Because(q *model.Query, item int32, dst []int32) []int32 {
	type part struct {
		item int32
		v    float32
	}
	var parts []part
	for hItem, w := range s.m.query(q.History) {
		if w <= 0 {
			continue
		}
		items, sims := s.m.Neighbors(hItem)
		if x := slices.Index(items, item); x >= 0 {
			parts = append(parts, part{hItem, w * sims[x]})
		}
	}
	slices.SortStableFunc(parts, func(a, b part) int {
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return 0
	})
	for _, p := range parts {
		if !slices.Contains(dst, p.item) {
			dst = append(dst, p.item)
		}
	}
	return dst
}

// SimilarKind implements model.Similar.
func (s *Source) SimilarKind() string { return model.Behaviour }

// Neighbours implements model.Similar: the item's stored neighbours by
// cosine similarity.
func (s *Source) Neighbours(q *model.Query, item int32, dst []model.Candidate) []model.Candidate {
	if int(item) >= s.m.Items() {
		return dst
	}
	items, sims := s.m.Neighbors(item)
	base := len(dst)
	for x, j := range items {
		if !q.Skip(j) {
			dst = append(dst, model.Candidate{Item: j, Score: sims[x]})
		}
	}
	return dst[:base+len(model.Top(dst[base:], q.Want))]
}

// Similarity implements model.Similar: the cosine of a and b when b is
// among a's stored neighbours (or a among b's), else 0.
func (s *Source) Similarity(a, b int32) float32 {
	if a == b {
		return 1
	}
	if int(a) >= s.m.Items() || int(b) >= s.m.Items() {
		return 0
	}
	items, sims := s.m.Neighbors(a)
	if x := slices.Index(items, b); x >= 0 {
		return sims[x]
	}
	items, sims = s.m.Neighbors(b)
	if x := slices.Index(items, a); x >= 0 {
		return sims[x]
	}
	return 0
}
