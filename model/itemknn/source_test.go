package itemknn

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
)

// TestScoreItemsMatchesCandidates: scoring a given list (with q.Only, and
// without it) gives each listed item exactly the score Candidates gives it,
// leaves nothing in the accumulator and keeps what dst held.
func TestScoreItemsMatchesCandidates(t *testing.T) {
	const users, items = 20, 60
	s := NewSource(Config{Window: 6, Neighbors: 15, QueryItems: 8, Decay: 0.8})
	var hist history.Store
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		u, it := int32(rng.IntN(users)), int32(rng.IntN(items))
		w := float32(1 + rng.IntN(3))
		s.m.Apply(it, w, hist.User(u))
		hist.Append(u, history.Entry{Item: it, Weight: w})
	}
	s.Flush()
	acc := make([]float32, items)
	newQuery := func(u int32) *model.Query {
		return &model.Query{User: u, History: hist.User(u), Want: items, Acc: acc, Mark: make([]uint32, items), Stamp: 1, Blocked: make([]bool, items), Category: -1}
	}
	for u := range int32(users) {
		all := map[int32]float32{}
		for _, c := range s.Candidates(newQuery(u), nil) {
			all[c.Item] = c.Score
		}
		list := []int32{int32(rng.IntN(items)), int32(rng.IntN(items)), int32(rng.IntN(items))}
		list = slices.Compact(slices.Sorted(slices.Values(list)))
		for _, only := range []bool{true, false} {
			q := newQuery(u)
			if only {
				q.Only = true
				for _, it := range list {
					q.Mark[it] = q.Stamp
				}
			}
			prefix := []model.Candidate{{Item: -1, Score: 9}}
			got := s.ScoreItems(q, list, slices.Clone(prefix))
			if got[0] != prefix[0] {
				t.Fatalf("user %d: dst's first %v overwritten", u, got[0])
			}
			scored := map[int32]float32{}
			for _, c := range got[1:] {
				scored[c.Item] = c.Score
			}
			for _, it := range list {
				if scored[it] != all[it] {
					t.Fatalf("user %d, only %v: item %d scored %v, Candidates %v", u, only, it, scored[it], all[it])
				}
			}
			if len(scored) != len(got)-1 {
				t.Fatalf("user %d: an item answered twice: %v", u, got)
			}
			for it, a := range acc {
				if a != 0 {
					t.Fatalf("user %d, only %v: acc[%d] left %v", u, only, it, a)
				}
			}
		}
	}
}
