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
		if !r.add(k, uint64(k)) {
			t.Fatalf("key %d reported as present", k)
		}
	}
	for k := int32(0); k < 1000; k++ {
		r.add(k, 1)
		if got := r.get(k); got != uint64(k)+1 {
			t.Fatalf("get(%d) = %v", k, got)
		}
	}
	if r.get(5000) != 0 || r.n != 1000 {
		t.Fatalf("n = %d", r.n)
	}
}

// TestRowDeletesAndShrinks: subtracting every count removes keys one by one
// (later keys of a probe run stay reachable), the table halves as it
// empties, and an empty row holds nothing.
func TestRowDeletesAndShrinks(t *testing.T) {
	var r row
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[int32]uint64{}
	for range 3000 {
		k := int32(rng.IntN(600))
		v := uint64(1 + rng.IntN(5))
		r.add(k, v)
		want[k] += v
	}
	peak := len(r.slots)
	keys := make([]int32, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for x, k := range keys {
		if r.sub(k, want[k]-1) {
			t.Fatalf("key %d gone with one unit left", k)
		}
		if !r.sub(k, 1) {
			t.Fatalf("key %d not gone at zero", k)
		}
		delete(want, k)
		if r.n != len(want) {
			t.Fatalf("n = %d, want %d", r.n, len(want))
		}
		if x%50 == 0 {
			for k2, v := range want {
				if got := r.get(k2); got != v {
					t.Fatalf("after deleting %d keys: get(%d) = %d, want %d", x+1, k2, got, v)
				}
			}
			if len(r.slots) > 8 && r.n*4 < len(r.slots) {
				t.Fatalf("%d keys in %d slots: not shrunk", r.n, len(r.slots))
			}
		}
	}
	if r.slots != nil || r.n != 0 || peak < 1024 {
		t.Fatalf("empty row holds %d slots (peak %d)", len(r.slots), peak)
	}
	if r.sub(1, 1) {
		t.Fatal("sub on an empty row reported a deletion")
	}
}

// TestRowCountsPast32Bits: a count above 2^32 units keeps its high bits and
// comes back down exactly.
func TestRowCountsPast32Bits(t *testing.T) {
	var r row
	r.add(7, 1<<31)
	r.add(7, 1<<31)
	r.add(7, 5)
	r.add(9, 3)
	if got := r.get(7); got != 1<<32+5 || r.hi == nil {
		t.Fatalf("count %d", got)
	}
	if r.sub(7, 10) || r.get(7) != 1<<32-5 || r.hi != nil {
		t.Fatalf("after sub: %d, hi %v", r.get(7), r.hi)
	}
	if !r.sub(7, 1<<32-5) || r.get(7) != 0 || r.get(9) != 3 {
		t.Fatal("the key did not go at zero")
	}
}

// TestEvictForgets: a model that applied a history and then evicted its
// oldest entries equals, exactly, a model built from the kept entries only.
func TestEvictForgets(t *testing.T) {
	const users, items, events, window = 40, 30, 3000, 4
	cfg := Config{Window: window, Neighbors: items, QueryItems: 10, Decay: 1}
	for _, keep := range []int{1, 3, 7, 25} {
		m := New(cfg)
		var hist history.Store
		rng := rand.New(rand.NewPCG(uint64(keep), 9))
		var log []struct {
			u int32
			e history.Entry
		}
		for range events {
			u := int32(rng.IntN(users))
			e := history.Entry{Item: int32(rng.IntN(items)), Weight: []float32{1, 2, 0.37, -4, 0, 3}[rng.IntN(6)]}
			for len(hist.User(u)) >= keep {
				h := hist.User(u)
				m.Evict(h[0], h[1:])
				hist.EvictOldest(u)
			}
			m.Apply(e.Item, e.Weight, hist.User(u))
			hist.Append(u, e)
			log = append(log, struct {
				u int32
				e history.Entry
			}{u, e})
			if rng.IntN(20) == 0 {
				m.Flush()
			}
		}
		m.Flush()
		// The reference sees, in log order, only the entries still kept.
		ref := New(cfg)
		var rh history.Store
		seen := make([]int, users)
		for _, x := range log {
			seen[x.u]++
		}
		for _, x := range log {
			seen[x.u]--
			if seen[x.u] >= keep {
				continue // evicted by now
			}
			ref.Apply(x.e.Item, x.e.Weight, rh.User(x.u))
			rh.Append(x.u, x.e)
		}
		ref.Flush()
		ref.grow(items - 1)
		m.grow(items - 1)
		if m.Pairs() != ref.Pairs() {
			t.Fatalf("keep %d: %d pairs, reference %d", keep, m.Pairs(), ref.Pairs())
		}
		for i := int32(0); i < items; i++ {
			if m.norm[i] != ref.norm[i] {
				t.Fatalf("keep %d: norm of %d %d, reference %d", keep, i, m.norm[i], ref.norm[i])
			}
			if m.rows[i].n != ref.rows[i].n {
				t.Fatalf("keep %d: row %d has %d keys, reference %d", keep, i, m.rows[i].n, ref.rows[i].n)
			}
			for _, sl := range ref.rows[i].slots {
				if sl.key >= 0 && m.rows[i].get(sl.key) != uint64(sl.val) {
					t.Fatalf("keep %d: C(%d,%d) = %d, reference %d", keep, i, sl.key, m.rows[i].get(sl.key), sl.val)
				}
			}
			a, as := m.SortedNeighbors(i)
			b, bs := ref.SortedNeighbors(i)
			if len(a) != len(b) {
				t.Fatalf("keep %d: item %d has %d neighbours, reference %d", keep, i, len(a), len(b))
			}
			for x := range a {
				if a[x] != b[x] || as[x] != bs[x] {
					t.Fatalf("keep %d: item %d neighbour %d: %d/%v, reference %d/%v", keep, i, x, a[x], as[x], b[x], bs[x])
				}
			}
		}
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
func (r *row) get(k int32) uint64 {
	if len(r.slots) == 0 {
		return 0
	}
	mask := uint32(len(r.slots) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		switch r.slots[i].key {
		case k:
			return r.count(int(i))
		case -1:
			return 0
		}
	}
}

// TestRefreshBoundsStaleness: with Refresh set, a read keeps a cached
// neighbour list while its item has had at most that share of new updates,
// and recomputes it (matching a model that never caches) after; an item with
// few updates is recomputed after every change.
func TestRefreshBoundsStaleness(t *testing.T) {
	cfg := Config{Window: 1, Neighbors: 10, QueryItems: 1, Decay: 1}
	lazy, exact := New(Config{Window: 1, Neighbors: 10, QueryItems: 1, Decay: 1, Refresh: 0.25}), New(cfg)
	pair := func(a, b int32) { // a user who touches a then b
		for _, m := range []*Model{lazy, exact} {
			m.Apply(a, 1, nil)
			m.Apply(b, 1, []history.Entry{{Item: a, Weight: 1}})
			m.Flush()
		}
	}
	same := func(what string, want bool) {
		t.Helper()
		li, ls := lazy.Neighbors(0)
		ei, es := exact.Neighbors(0)
		eq := len(li) == len(ei)
		for x := range li {
			eq = eq && li[x] == ei[x] && ls[x] == es[x]
		}
		if eq != want {
			t.Fatalf("%s: lazy %v %v, exact %v %v (want equal: %v)", what, li, ls, ei, es, want)
		}
	}
	pair(0, 1)
	same("first read", true)
	pair(0, 2) // item 0 is at version 5: too young to keep a list
	same("young item after a change", true)
	for range 20 {
		pair(0, 1)
	}
	same("read at version 45", true) // cached, good until version 56
	pair(0, 3)
	same("two updates later", false)
	for range 5 {
		pair(0, 3)
	}
	same("past a quarter more updates", true)
}
