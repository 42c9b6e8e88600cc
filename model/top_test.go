package model

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTopIsTheSortedPrefix: Top equals sorting everything and cutting, ties
// included, for any n.
func TestTopIsTheSortedPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		c := make([]Candidate, rng.IntN(200))
		for i := range c {
			c[i] = Candidate{Item: int32(rng.IntN(300)), Score: float32(rng.IntN(20))} // many ties
		}
		want := slices.Clone(c)
		slices.SortFunc(want, Compare)
		n := rng.IntN(60)
		got := Top(slices.Clone(c), n)
		if !slices.Equal(got, want[:min(n, len(want))]) {
			t.Fatalf("trial %d, n %d: %v, want %v", trial, n, got, want[:min(n, len(want))])
		}
	}
}

func BenchmarkTop(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := make([]Candidate, 4000)
	for i := range c {
		c[i] = Candidate{Item: int32(i), Score: rng.Float32()}
	}
	work := make([]Candidate, len(c))
	for b.Loop() {
		copy(work, c)
		Top(work, 50)
	}
}

// TestTopTouchedAppends: TopTouched appends the sorted best of the touched
// items with a positive score that Skip passes, after what dst held
// (whatever its capacity), and leaves acc as it was.
func TestTopTouchedAppends(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		const items = 300
		acc := make([]float32, items)
		var touched []int32
		for range rng.IntN(250) {
			it := int32(rng.IntN(items))
			if acc[it] == 0 {
				touched = append(touched, it)
			}
			acc[it] = float32(rng.IntN(21) - 5) // ties, zeros and negatives
			if acc[it] == 0 {
				acc[it] = 1
			}
		}
		q := &Query{Want: rng.IntN(40), Mark: make([]uint32, items), Stamp: 1, Blocked: make([]bool, items), Category: -1}
		for range 30 {
			q.Mark[rng.IntN(items)] = 1
		}
		var want []Candidate
		for _, it := range touched {
			if acc[it] > 0 && !q.Skip(it) {
				want = append(want, Candidate{Item: it, Score: acc[it]})
			}
		}
		slices.SortFunc(want, Compare)
		want = want[:min(q.Want, len(want))]
		prefix := []Candidate{{Item: -7, Score: 99}}
		dst := slices.Clip(slices.Clone(prefix)) // no spare capacity
		before := slices.Clone(acc)
		got := TopTouched(q, acc, touched, dst)
		if !slices.Equal(got[:1], prefix) || !slices.Equal(got[1:], want) {
			t.Fatalf("trial %d, want %d: %v, want %v after the prefix", trial, q.Want, got, want)
		}
		if !slices.Equal(acc, before) {
			t.Fatalf("trial %d: acc changed", trial)
		}
	}
}

func BenchmarkTopTouched(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const items = 10000
	acc := make([]float32, items)
	touched := make([]int32, 0, 3000)
	for _, it := range rng.Perm(items)[:3000] {
		acc[it] = rng.Float32()
		touched = append(touched, int32(it))
	}
	q := &Query{Want: 50, Mark: make([]uint32, items), Stamp: 1, Blocked: make([]bool, items), Category: -1}
	dst := make([]Candidate, 0, 64)
	for b.Loop() {
		dst = TopTouched(q, acc, touched, dst[:0])
	}
}
