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
