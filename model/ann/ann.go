// Package ann finds the items with the largest dot product with a query
// vector (maximum inner-product search) approximately, with an HNSW graph
// (github.com/coder/hnsw).
//
// HNSW searches by distance, so the item vectors are lifted one dimension
// (Bachrach et al. 2014): y' = [y, √(M² − |y|²)] with M the largest item
// norm, and the query q' = [q, 0]. Then |q' − y'|² = |q|² + M² − 2 q·y, so
// the nearest lifted item is the one with the largest dot product.
//
// An Index is immutable once built and safe for concurrent searches.
package ann

import (
	"math"
	"math/rand"

	"github.com/coder/hnsw"
)

// Config tunes the graph.
type Config struct {
	M        int // neighbours kept per node (default 16)
	EfSearch int // candidates kept while searching (default 128)
	Seed     int64
	Progress func(done, total int) // called every 1,024 items while building
}

// Index is an HNSW graph over item vectors.
type Index struct {
	g   *hnsw.Graph[int32]
	dim int
}

// Build indexes the n = len(vecs)/dim item vectors (row major); item i's
// key is i. Items whose vector is all zero (never trained) are left out.
func Build(vecs []float32, dim int, cfg Config) *Index {
	if cfg.M <= 0 {
		cfg.M = 16
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = 128
	}
	g := hnsw.NewGraph[int32]()
	g.M, g.EfSearch, g.Distance = cfg.M, cfg.EfSearch, squaredL2
	g.Rng = rand.New(rand.NewSource(cfg.Seed + 1))
	n := len(vecs) / dim
	var maxNorm float64
	for i := range n {
		maxNorm = max(maxNorm, norm2(vecs[i*dim:(i+1)*dim]))
	}
	lifted := make([]float32, n*(dim+1)) // one array, one allocation
	for i := range n {
		v := vecs[i*dim : (i+1)*dim]
		n2 := norm2(v)
		if n2 == 0 {
			continue
		}
		l := lifted[i*(dim+1) : (i+1)*(dim+1)]
		copy(l, v)
		l[dim] = float32(math.Sqrt(max(0, maxNorm-n2)))
		g.Add(hnsw.MakeNode(int32(i), hnsw.Vector(l)))
		if cfg.Progress != nil && i%1024 == 0 {
			cfg.Progress(i, n)
		}
	}
	return &Index{g: g, dim: dim}
}

// Len is the number of items indexed.
func (x *Index) Len() int { return x.g.Len() }

// Search returns up to k item ids, approximately those with the largest dot
// product with q, best first.
func (x *Index) Search(q []float32, k int) []int32 {
	if x.g.Len() == 0 || k <= 0 {
		return nil
	}
	lq := make([]float32, x.dim+1)
	copy(lq, q)
	nodes := x.g.Search(lq, k)
	out := make([]int32, len(nodes))
	for i, n := range nodes {
		out[i] = n.Key
	}
	return out
}

func norm2(v []float32) float64 {
	var s float64
	for _, a := range v {
		s += float64(a) * float64(a)
	}
	return s
}

// squaredL2 orders like Euclidean distance without the square root.
func squaredL2(a, b []float32) float32 {
	var s float32
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}
