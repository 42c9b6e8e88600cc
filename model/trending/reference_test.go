package trending

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/streamrec/streamrec/snapshot"
)

// trueTop is the top list by brute force over every item's Raw score:
// positive scores only, higher score first, lower item id on equal scores,
// at most size items.
func trueTop(m *Model, items, size int) []int32 {
	var all []int32
	for i := range int32(items) {
		if m.Raw(i) > 0 {
			all = append(all, i)
		}
	}
	sort.Slice(all, func(a, b int) bool {
		if sa, sb := m.Raw(all[a]), m.Raw(all[b]); sa != sb {
			return sa > sb
		}
		return all[a] < all[b]
	})
	if len(all) > size {
		all = all[:size]
	}
	return all
}

func checkExact(t *testing.T, m *Model, items int, name string, step int) {
	t.Helper()
	want := trueTop(m, items, m.cfg.TopSize)
	if got := m.Top(); !equal(got, want) {
		t.Fatalf("%s step %d: top %v, want %v", name, step, got, want)
	}
}

// checkPool: the pool is in rank order, within its capacity, marked in
// inTop, above the bound, and every item outside it at or below the bound.
func checkPool(t *testing.T, m *Model, items int, name string, step int) {
	t.Helper()
	if len(m.top) > m.pool {
		t.Fatalf("%s step %d: pool of %d over its capacity %d", name, step, len(m.top), m.pool)
	}
	var in [64]bool
	for x, it := range m.top {
		in[it] = true
		if !m.inTop[it] || !above(m.Raw(it), it, m.bound, m.boundItem) ||
			(x > 0 && !above(m.Raw(m.top[x-1]), m.top[x-1], m.Raw(it), it)) {
			t.Fatalf("%s step %d: pool %v out of order or not above the bound (%v, %d)", name, step, m.top, m.bound, m.boundItem)
		}
	}
	for i := range int32(items) {
		if !in[i] && ((int(i) < len(m.inTop) && m.inTop[i]) || above(m.Raw(i), i, m.bound, m.boundItem)) {
			t.Fatalf("%s step %d: item %d (%v) outside the pool above the bound (%v, %d)", name, step, i, m.Raw(i), m.bound, m.boundItem)
		}
	}
}

type refEvent struct {
	item int32
	w    float32
	t    float64
}

// TestTopMatchesBruteForce: random Apply (positive and negative weights) and
// Remove over a few items, times increasing and often equal, with rebases;
// after every step the top list is the brute-force top.
func TestTopMatchesBruteForce(t *testing.T) {
	const items = 30
	weights := []float32{1, 1, 2, 0.5, 3, -1, -2, -0.5, -5, 1, 0}
	for _, size := range []int{1, 5, 10, 29, 30, 40} {
		// slack -1: the pool as made by New (larger than the item set for
		// small sizes); 0, 1, 3: a pool that fills and drops candidates.
		for _, slack := range []int{-1, 0, 1, 3} {
			for _, hl := range []float64{1, 50, 1e9} { // hl 1: a rebase every ~58 s
				for seed := range uint64(12) {
					name := fmt.Sprintf("size %d slack %d hl %v seed %d", size, slack, hl, seed)
					rng := rand.New(rand.NewPCG(seed, uint64(size)))
					m := New(Config{HalfLifeSeconds: hl, TopSize: size})
					if slack >= 0 {
						m.pool = size + slack
					}
					var live []refEvent
					now := 0.0
					for step := range 500 {
						switch r := rng.IntN(10); {
						case r < 4: // same time as the last event
						case r < 9:
							now += float64(rng.IntN(4))
						default:
							now += float64(rng.IntN(200)) // a jump: at hl 1, a rebase
						}
						if len(live) > 0 && rng.IntN(3) == 0 {
							k := rng.IntN(len(live))
							e := live[k]
							live[k] = live[len(live)-1]
							live = live[:len(live)-1]
							m.Remove(e.item, e.w, e.t)
						} else {
							e := refEvent{int32(rng.IntN(items)), weights[rng.IntN(len(weights))], now}
							// Skewed items make ties and a crowded head likelier.
							if rng.IntN(2) == 0 {
								e.item = int32(rng.IntN(8))
							}
							live = append(live, e)
							m.Apply(e.item, e.w, e.t)
						}
						if rng.IntN(50) == 0 { // an item with no event: a no-op
							m.Remove(int32(rng.IntN(items+5)), 1, now)
						}
						checkExact(t, m, items, name, step)
						checkPool(t, m, items, name, step)
					}
				}
			}
		}
	}
}

// TestTopTable: hand-made sequences with the list expected after each step.
func TestTopTable(t *testing.T) {
	type op struct {
		remove bool
		item   int32
		w      float32
		t      float64
		want   []int32
	}
	cases := []struct {
		name string
		size int
		ops  []op
	}{
		{"dislike on #1 that still leads", 3, []op{
			{false, 0, 10, 0, []int32{0}},
			{false, 1, 3, 0, []int32{0, 1}},
			{false, 2, 2, 0, []int32{0, 1, 2}},
			{false, 3, 1, 0, []int32{0, 1, 2}},
			{false, 0, -5, 0, []int32{0, 1, 2}},   // 5: still first
			{false, 0, -2.5, 0, []int32{1, 0, 2}}, // 2.5: between 1 and 2
		}},
		{"fall below the next one out", 3, []op{
			{false, 0, 10, 0, []int32{0}},
			{false, 1, 3, 0, []int32{0, 1}},
			{false, 2, 2, 0, []int32{0, 1, 2}},
			{false, 3, 1, 0, []int32{0, 1, 2}},
			{false, 4, 0.5, 0, []int32{0, 1, 2}},
			{false, 0, -9.75, 0, []int32{1, 2, 3}}, // 0.25: below 3, which refills
			{false, 1, -2.6, 0, []int32{2, 3, 4}},  // 0.4: below 4 as well
			{false, 0, 0.3, 0, []int32{2, 3, 0}},   // 0.55 > 0.5
		}},
		{"remove from the list refills it", 2, []op{
			{false, 0, 4, 0, []int32{0}},
			{false, 1, 3, 0, []int32{0, 1}},
			{false, 2, 2, 0, []int32{0, 1}},
			{true, 0, 4, 0, []int32{1, 2}}, // no event left: zero
			{true, 1, 3, 0, []int32{2}},
		}},
		{"ties: lower id first", 2, []op{
			{false, 5, 1, 0, []int32{5}},
			{false, 3, 1, 0, []int32{3, 5}},
			{false, 1, 1, 0, []int32{1, 3}},
			{false, 4, 2, 0, []int32{4, 1}},
			{false, 4, -1, 0, []int32{1, 3}}, // 4 ties with 1, 3 and 5: 1 and 3 go first
			{false, 0, 1, 0, []int32{0, 1}},
		}},
		{"negative scores stay out", 3, []op{
			{false, 0, -1, 0, []int32{}},
			{false, 1, 1, 0, []int32{1}},
			{false, 0, 2, 0, []int32{0, 1}},
			{false, 0, -1, 0, []int32{1}}, // zero: out
		}},
	}
	for _, c := range cases {
		m := New(Config{HalfLifeSeconds: 1e9, TopSize: c.size})
		for i, o := range c.ops {
			if o.remove {
				m.Remove(o.item, o.w, o.t)
			} else {
				m.Apply(o.item, o.w, o.t)
			}
			if got := m.Top(); !equal(got, o.want) {
				t.Fatalf("%s step %d: top %v, want %v", c.name, i, got, o.want)
			}
			checkExact(t, m, 10, c.name, i)
		}
	}
}

// TestSnapshotRoundTrip: a decoded model has the same scores and top list,
// and stays exact under further events; the layout is the one before the
// pool (the top list, at most TopSize, and a bound on every item outside
// it), so either side can read the other's.
func TestSnapshotRoundTrip(t *testing.T) {
	const items = 30
	cfg := Config{HalfLifeSeconds: 50, TopSize: 5}
	rng := rand.New(rand.NewPCG(3, 4))
	ev := func() (int32, float32) {
		return int32(rng.IntN(items)), []float32{1, 2, -1, 0.5, -3}[rng.IntN(5)]
	}
	m := New(cfg)
	m.pool = cfg.TopSize + 3
	for i := range 300 {
		it, w := ev()
		m.Apply(it, w, float64(i/3))
	}
	var buf bytes.Buffer
	e := snapshot.NewEncoder(&buf)
	m.Encode(e)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()

	// The layout, read field by field.
	d := snapshot.NewDecoder(bytes.NewReader(raw), int64(len(raw)))
	d.Float64()
	d.Float64()
	bound := d.Float64()
	snapshot.Float64s(d)
	snapshot.Uint32s(d)
	top := snapshot.Int32s(d)
	if d.Err() != nil || !equal(top, m.Top()) {
		t.Fatalf("stored top %v (%v), want %v", top, d.Err(), m.Top())
	}
	in := map[int32]bool{}
	for _, it := range top {
		in[it] = true
		if m.Raw(it) < bound {
			t.Fatalf("stored bound %v above item %d (%v) in the list", bound, it, m.Raw(it))
		}
	}
	for i := range int32(items) {
		if !in[i] && m.Raw(i) > bound {
			t.Fatalf("item %d (%v) outside the list above the stored bound %v", i, m.Raw(i), bound)
		}
	}

	n := New(cfg)
	n.pool = m.pool
	n.Decode(snapshot.NewDecoder(bytes.NewReader(raw), int64(len(raw))))
	for step := range 300 {
		for i := range int32(items) {
			if n.Raw(i) != m.Raw(i) {
				t.Fatalf("step %d: item %d scores %v decoded, %v before", step, i, n.Raw(i), m.Raw(i))
			}
		}
		checkExact(t, n, items, "decoded", step)
		checkPool(t, n, items, "decoded", step)
		it, w := ev()
		m.Apply(it, w, float64(100+step/3))
		n.Apply(it, w, float64(100+step/3))
	}
}

// TestDecodeRanksAfresh: a snapshot whose stored list is not the exact top
// (as the model before the pool could write) decodes to the exact top.
func TestDecodeRanksAfresh(t *testing.T) {
	var buf bytes.Buffer
	e := snapshot.NewEncoder(&buf)
	e.Float64(0) // ref
	e.Float64(0) // clock
	e.Float64(1) // bound
	score := []float64{5, 0, 3, 4, 2, -1}
	e.Slice(score, len(score))
	e.Slice([]uint32{1, 0, 1, 1, 1, 1}, len(score))
	e.Slice([]int32{0, 2}, 2) // misses item 3
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	m := New(Config{HalfLifeSeconds: 100, TopSize: 3})
	m.Decode(snapshot.NewDecoder(&buf, int64(buf.Len())))
	if got := m.Top(); !equal(got, []int32{0, 3, 2}) {
		t.Fatalf("decoded top %v, want [0 3 2]", got)
	}
}
