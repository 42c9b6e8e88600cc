package trending

import (
	"math"
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
