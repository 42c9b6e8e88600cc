package ann

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/internal/shared"
)

// clustered makes n vectors of dim around a few directions, with norms
// spread like popularity: the shape of trained item factors.
func clustered(n, dim, clusters int, rng *rand.Rand) []float32 {
	centres := make([]float32, clusters*dim)
	for i := range centres {
		centres[i] = float32(rng.NormFloat64())
	}
	out := make([]float32, n*dim)
	for i := range n {
		c := rng.IntN(clusters)
		scale := float32(0.2 + rng.ExpFloat64())
		for d := range dim {
			out[i*dim+d] = scale * (centres[c*dim+d] + 0.7*float32(rng.NormFloat64()))
		}
	}
	return out
}

func exactTop(vecs, q []float32, dim, k int) []int32 {
	n := len(vecs) / dim
	ids := make([]int32, n)
	scores := make([]float32, n)
	for i := range n {
		ids[i] = int32(i)
		for d := range dim {
			scores[i] += q[d] * vecs[i*dim+d]
		}
	}
	slices.SortFunc(ids, func(a, b int32) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	return ids[:k]
}

// Recall returns the mean share of the exact top 10 (largest dot product)
// that the index finds in its top 10, over the queries.
func Recall(x *Index, vecs, queries []float32, dim int) float64 {
	var sum float64
	nq := len(queries) / dim
	for i := range nq {
		q := queries[i*dim : (i+1)*dim]
		want := exactTop(vecs, q, dim, 10)
		got := x.Search(q, 10)
		hit := 0
		for _, w := range want {
			if slices.Contains(got, w) {
				hit++
			}
		}
		sum += float64(hit) / 10
	}
	return sum / float64(nq)
}

// TestGraphRecallAt10: on vectors of one norm (where the largest dot
// product is the nearest neighbour, and the lift is zero) the graph finds at
// least 95% of the exact top 10. Recall on trained factors, the served
// case, is tested in package mf.
func TestGraphRecallAt10(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim = 32
	n := 8000
	if testing.Short() || shared.Race {
		n = 2000
	}
	vecs := clustered(n, dim, 40, rng)
	for i := range n {
		v := vecs[i*dim : (i+1)*dim]
		f := float32(1 / math.Sqrt(norm2(v)))
		for d := range v {
			v[d] *= f
		}
	}
	queries := clustered(200, dim, 40, rng)
	x := Build(vecs, dim, Config{Seed: 1})
	if x.Len() != n {
		t.Fatalf("indexed %d of %d", x.Len(), n)
	}
	r := Recall(x, vecs, queries, dim)
	t.Logf("recall@10 over %d unit vectors, 200 queries: %.4f", n, r)
	if r < 0.95 {
		t.Fatalf("recall@10 %.4f below 0.95", r)
	}
}

// TestZeroVectorsAreLeftOut: items without a vector are never returned.
func TestZeroVectorsAreLeftOut(t *testing.T) {
	vecs := []float32{1, 0, 0, 0, 0, 1, 2, 2}
	x := Build(vecs, 2, Config{})
	if x.Len() != 3 {
		t.Fatalf("indexed %d, want 3", x.Len())
	}
	got := x.Search([]float32{1, 1}, 4)
	if slices.Contains(got, 1) || len(got) != 3 || got[0] != 3 {
		t.Fatalf("search: %v", got)
	}
}

func BenchmarkSearch(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim = 64
	vecs := clustered(27000, dim, 100, rng)
	x := Build(vecs, dim, Config{Seed: 1})
	q := clustered(1, dim, 100, rng)
	b.ResetTimer()
	for b.Loop() {
		x.Search(q, 30)
	}
}

func BenchmarkExact(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim = 64
	vecs := clustered(27000, dim, 100, rng)
	q := clustered(1, dim, 100, rng)
	b.ResetTimer()
	for b.Loop() {
		exactTop(vecs, q, dim, 30)
	}
}
