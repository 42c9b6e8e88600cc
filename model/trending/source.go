package trending

import (
	"fmt"
	"math"

	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/snapshot"
)

// Name is the source name of trending.
const Name = "trending"

// Source is trending behind the engine's model seam: the most popular items
// right now, the same for every user (cold start).
type Source struct {
	m *Model
}

// NewSource returns an empty trending source.
func NewSource(cfg Config) *Source { return &Source{m: New(cfg)} }

// Model is the model behind the source.
func (s *Source) Model() *Model { return s.m }

// DefaultWeight implements model.Weighted.
func (s *Source) DefaultWeight() float32 { return 0.05 }

// Name implements model.Model.
func (s *Source) Name() string { return Name }

// Apply implements model.Model.
func (s *Source) Apply(x *model.Interaction) { s.m.Apply(x.Item, x.Entry.Weight, x.Entry.Seconds()) }

// Evict implements model.Evicter.
func (s *Source) Evict(x *model.Interaction) { s.m.Remove(x.Item, x.Entry.Weight, x.Entry.Seconds()) }

// Fingerprint implements model.Snapshotter.
func (s *Source) Fingerprint() string { return fmt.Sprintf("%+v", s.m.Config()) }

// Encode implements model.Snapshotter.
func (s *Source) Encode(e *snapshot.Encoder) { s.m.Encode(e) }

// Decode implements model.Snapshotter.
func (s *Source) Decode(d *snapshot.Decoder) { s.m.Decode(d) }

// Items is the number of item slots the model holds.
func (s *Source) Items() int { return s.m.Items() }

// Bytes implements model.Sized.
func (s *Source) Bytes() int64 { return s.m.Bytes() }

// Popular implements model.Popular: trending answers users it knows
// nothing of.
func (s *Source) Popular() {}

// Candidates implements model.Source: the most popular items that q.Skip
// does not reject, scored by their decayed weight now.
func (s *Source) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	base := len(dst)
	if q.Category < 0 {
		for _, it := range s.m.Top() {
			if len(dst)-base >= q.Want {
				break
			}
			if !q.Skip(it) {
				dst = append(dst, model.Candidate{Item: it, Score: float32(s.m.Score(it))})
			}
		}
		return dst
	}
	for _, it := range q.InCategory {
		if q.Skip(it) {
			continue
		}
		if sc := s.m.Score(it); sc > 0 {
			dst = append(dst, model.Candidate{Item: it, Score: float32(sc)})
		}
	}
	return dst[:base+len(model.Top(dst[base:], q.Want))]
}

// ScoreItems implements model.Scorer: each item's decayed weight now.
func (s *Source) ScoreItems(q *model.Query, items []int32, dst []model.Candidate) []model.Candidate {
	for _, it := range items {
		if sc := s.m.Score(it); sc > 0 {
			dst = append(dst, model.Candidate{Item: it, Score: float32(sc)})
		}
	}
	return dst
}

// Features implements model.Featurer: the item's events kept (log1p) and
// its decayed popularity now (log1p of the decayed weight).
func (s *Source) Features() []string { return []string{"events", "popularity"} }

// Describe implements model.Featurer.
func (s *Source) Describe(q *model.Query, items []int32, dst []float32, stride int) {
	m := s.m
	f := m.Decay()
	for i, it := range items {
		var n uint32
		var sc float64
		if int(it) < len(m.score) {
			n, sc = m.count[it], m.Raw(it)*f
		}
		dst[i*stride] = float32(math.Log1p(float64(n)))
		dst[i*stride+1] = float32(math.Log1p(max(sc, 0)))
	}
}
