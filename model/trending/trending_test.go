package trending

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDecayHalvesPerHalfLife(t *testing.T) {
	m := New(Config{HalfLifeSeconds: 100, TopSize: 10})
	m.Apply(0, 8, 1000)
	m.Apply(1, 1, 1300) // three half-lives later: item 0 is worth 1 now
	if got := m.Score(0); math.Abs(got-1) > 1e-9 {
		t.Fatalf("score after 3 half-lives = %v, want 1", got)
	}
	if got := m.Score(1); math.Abs(got-1) > 1e-9 {
		t.Fatalf("fresh score = %v, want 1", got)
	}
}

func TestTopFollowsScores(t *testing.T) {
	m := New(Config{HalfLifeSeconds: 3600, TopSize: 3})
	for i, w := range []float32{1, 5, 3, 2} {
		m.Apply(int32(i), w, 0)
	}
	want := []int32{1, 2, 3}
	if got := m.Top(); !equal(got, want) {
		t.Fatalf("top %v, want %v", got, want)
	}
	m.Apply(0, 10, 1) // item 0 overtakes everyone
	if got := m.Top(); !equal(got, []int32{0, 1, 2}) {
		t.Fatalf("top %v after item 0 rose", got)
	}
	m.Apply(1, -5.5, 2) // a dislike pushes item 1 below the rest
	for _, it := range m.Top() {
		if it == 1 {
			t.Fatalf("item 1 went negative but is still in the top list %v", m.Top())
		}
	}
}

func TestRebaseKeepsRanking(t *testing.T) {
	m := New(Config{HalfLifeSeconds: 1, TopSize: 10})
	m.Apply(0, 1, 0)
	m.Apply(1, 2, 0)
	m.Apply(2, 1, 500) // forces a rebase: exponent 500·ln2 > 40
	if got := m.Top(); got[0] != 2 {
		t.Fatalf("top %v: the fresh event must lead after a rebase", got)
	}
	if s := m.Score(2); math.Abs(s-1) > 1e-9 {
		t.Fatalf("fresh score after rebase = %v", s)
	}
	if m.Raw(1) <= m.Raw(0) {
		t.Fatal("rebase changed the order of old items")
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRemoveForgets: events applied and then removed leave every score and
// the top list as if only the kept events had been applied; an item with
// nothing left scores exactly zero and leaves the list.
func TestRemoveForgets(t *testing.T) {
	const items, events = 40, 4000
	rng := rand.New(rand.NewPCG(1, 2))
	type ev struct {
		item int32
		w    float32
		t    float64
	}
	var log []ev
	for i := range events {
		log = append(log, ev{int32(rng.IntN(items)), []float32{1, 2, 5, -4, 0.5}[rng.IntN(5)], float64(i) * 37})
	}
	for _, keep := range []int{0, 1, 50, 700} {
		m := New(Config{HalfLifeSeconds: 20_000, TopSize: 10})
		ref := New(Config{HalfLifeSeconds: 20_000, TopSize: 10})
		for i, e := range log {
			m.Apply(e.item, e.w, e.t)
			if i >= keep { // keep only the latest keep events
				o := log[i-keep]
				m.Remove(o.item, o.w, o.t)
			}
			if i >= len(log)-keep {
				ref.Apply(e.item, e.w, e.t)
			}
		}
		ref.Apply(0, 0, log[len(log)-1].t) // same clock, nothing added
		m.Apply(0, 0, log[len(log)-1].t)
		m.Remove(0, 0, log[len(log)-1].t)
		for i := range int32(items) {
			got, want := m.Score(i), ref.Score(i)
			if math.Abs(got-want) > 1e-9*(1+math.Abs(want)) || (want == 0) != (got == 0) {
				t.Fatalf("keep %d: score of %d = %v, reference %v", keep, i, got, want)
			}
		}
		checkTop(t, m, items)
		if keep == 0 && len(m.Top()) != 0 {
			t.Fatalf("nothing kept, but the top list is %v", m.Top())
		}
	}
}

// checkTop: the top list is sorted, holds only positive scores, and no item
// outside it beats one in it.
func checkTop(t *testing.T, m *Model, items int) {
	t.Helper()
	top := m.Top()
	in := map[int32]bool{}
	for x, it := range top {
		in[it] = true
		if m.Raw(it) <= 0 || (x > 0 && m.Raw(top[x-1]) < m.Raw(it)) {
			t.Fatalf("top list %v is not sorted positive scores", top)
		}
	}
	if len(top) == 0 {
		return
	}
	last := m.Raw(top[len(top)-1])
	for i := range int32(items) {
		if !in[i] && m.Raw(i) > last {
			t.Fatalf("item %d (%v) outside the top list beats its last (%v)", i, m.Raw(i), last)
		}
		if !in[i] && m.Raw(i) > 0 && len(top) < m.cfg.TopSize && m.Raw(i) > m.bound {
			t.Fatalf("item %d (%v) outside a short top list above the bound %v", i, m.Raw(i), m.bound)
		}
	}
}

// TestTopExactUnderFallingScores: with scores going up and down at random,
// the list stays the exact top (an item that falls but is still above
// everything outside stays in it).
func TestTopExactUnderFallingScores(t *testing.T) {
	const items = 200
	m := New(Config{HalfLifeSeconds: 1e9, TopSize: 12})
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 20_000 {
		m.Apply(int32(rng.IntN(items)), float32(rng.NormFloat64()*3+0.5), float64(i))
		if i%97 == 0 {
			checkTop(t, m, items)
		}
	}
	m.Apply(items, 1000, 20_000)
	m.Apply(items+1, 900, 20_000)
	m.Apply(items, -150, 20_000) // still above the other and everything else
	if top := m.Top(); top[0] != items+1 || top[1] != items {
		t.Fatalf("top %v: %d fell below %d but must stay second", top[:2], items, items+1)
	}
	checkTop(t, m, items+2)
}
