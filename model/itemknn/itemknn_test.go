package itemknn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/streamrec/streamrec/model/history"
)

// TestCosineAgainstBruteForce feeds random weighted histories and checks the
// incremental similarities against cosine computed from scratch over the
// same window pairs.
func TestCosineAgainstBruteForce(t *testing.T) {
	const users, items, events, window = 30, 25, 600, 5
	m := New(Config{Window: window, Neighbors: items, QueryItems: 10, Decay: 1})
	var hist history.Store
	rng := rand.New(rand.NewPCG(1, 2))
	co := map[[2]int32]float64{}
	norm := map[int32]float64{}
	for range events {
		u := int32(rng.IntN(users))
		it := int32(rng.IntN(items))
		w := float32(1 + rng.IntN(3))
		prev := hist.User(u)
		m.Apply(it, w, prev)
		norm[it] += float64(w * w)
		start := max(0, len(prev)-window)
		for _, h := range prev[start:] {
			if h.Item != it {
				co[[2]int32{it, h.Item}] += float64(w * h.Weight)
				co[[2]int32{h.Item, it}] += float64(w * h.Weight)
			}
		}
		hist.Append(u, history.Entry{Item: it, Weight: w})
		if rng.IntN(10) == 0 {
			m.Flush()
		}
	}
	m.Flush()
	for i := int32(0); i < items; i++ {
		got := map[int32]float32{}
		ns, sims := m.Neighbors(i)
		for x, j := range ns {
			got[j] = sims[x]
		}
		for j := int32(0); j < items; j++ {
			c := co[[2]int32{i, j}]
			if c == 0 {
				if _, ok := got[j]; ok {
					t.Fatalf("items %d,%d never co-occurred but are neighbours", i, j)
				}
				continue
			}
			want := c / math.Sqrt(norm[i]*norm[j])
			if math.Abs(float64(got[j])-want) > 1e-4 {
				t.Fatalf("sim(%d,%d) = %v, want %v", i, j, got[j], want)
			}
		}
	}
}

func TestNeighborsBoundedAndSorted(t *testing.T) {
	m := New(Config{Window: 50, Neighbors: 3, QueryItems: 10, Decay: 1})
	var hist history.Store
	// item 0 co-occurs with items 1..6, item k with k users.
	for k := int32(1); k <= 6; k++ {
		for u := int32(0); u < k; u++ {
			m.Apply(0, 1, hist.User(u*10+k))
			hist.Append(u*10+k, history.Entry{Item: 0, Weight: 1})
			m.Apply(k, 1, hist.User(u*10+k))
			hist.Append(u*10+k, history.Entry{Item: k, Weight: 1})
		}
	}
	m.Flush()
	items, sims := m.SortedNeighbors(0)
	if len(items) != 3 {
		t.Fatalf("kept %d neighbours, want 3", len(items))
	}
	for x := 1; x < len(sims); x++ {
		if sims[x] > sims[x-1] {
			t.Fatalf("not sorted: %v", sims)
		}
	}
	if items[0] != 6 {
		t.Fatalf("best neighbour %d, want 6 (most co-occurrences relative to its count)", items[0])
	}
}

func TestNeighborsReflectNewEvents(t *testing.T) {
	m := New(DefaultConfig())
	var hist history.Store
	apply := func(u, it int32) {
		m.Apply(it, 1, hist.User(u))
		hist.Append(u, history.Entry{Item: it, Weight: 1})
		m.Flush()
	}
	apply(0, 1)
	apply(0, 2)
	if items, _ := m.Neighbors(1); len(items) != 1 || items[0] != 2 {
		t.Fatalf("neighbours of 1: %v", items)
	}
	apply(0, 3) // the cached list of 1 is now stale and must be recomputed
	if items, _ := m.Neighbors(1); len(items) != 2 {
		t.Fatalf("neighbours of 1 after a new event: %v", items)
	}
}

func TestRowGrows(t *testing.T) {
	var r row
	for k := int32(0); k < 1000; k++ {
		if !r.add(k, float32(k)) {
			t.Fatalf("key %d reported as present", k)
		}
	}
	for k := int32(0); k < 1000; k++ {
		r.add(k, 1)
		if got := r.get(k); got != float32(k)+1 {
			t.Fatalf("get(%d) = %v", k, got)
		}
	}
	if r.get(5000) != 0 || r.n != 1000 {
		t.Fatalf("n = %d", r.n)
	}
}

// TestParallelFlushIsDeterministic: the sharded flush gives exactly the
// sequential result.
func TestParallelFlushIsDeterministic(t *testing.T) {
	build := func(shards int) *Model {
		m := New(DefaultConfig())
		m.shards = shards
		var hist history.Store
		rng := rand.New(rand.NewPCG(7, 8))
		for b := range 5 {
			for range 3000 {
				u := int32(rng.IntN(200))
				it := int32(rng.IntN(300))
				m.Apply(it, float32(1+b), hist.User(u))
				hist.Append(u, history.Entry{Item: it, Weight: float32(1 + b)})
			}
			m.Flush()
		}
		return m
	}
	seq, par := build(1), build(3)
	if seq.Pairs() != par.Pairs() || seq.Pairs() == 0 {
		t.Fatalf("pairs: sequential %d, parallel %d", seq.Pairs(), par.Pairs())
	}
	for i := int32(0); i < 300; i++ {
		a, as := seq.SortedNeighbors(i)
		b, bs := par.SortedNeighbors(i)
		if len(a) != len(b) {
			t.Fatalf("item %d: %d vs %d neighbours", i, len(a), len(b))
		}
		for x := range a {
			if a[x] != b[x] || as[x] != bs[x] {
				t.Fatalf("item %d neighbour %d: %d/%v vs %d/%v", i, x, a[x], as[x], b[x], bs[x])
			}
		}
	}
}

// get returns the count of k (a test helper: the model only scans rows).
func (r *row) get(k int32) float32 {
	if len(r.slots) == 0 {
		return 0
	}
	mask := uint32(len(r.slots) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		switch r.slots[i].key {
		case k:
			return r.slots[i].val
		case -1:
			return 0
		}
	}
}
