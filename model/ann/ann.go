// Package ann finds the items with the largest dot product with a query
// vector (maximum inner-product search) approximately, with a hierarchical
// navigable small-world graph (HNSW, Malkov & Yashunin 2018).
//
// HNSW searches by distance, so the item vectors are lifted one dimension
// (Bachrach et al. 2014): y' = [y, √(M² − |y|²)] with M the largest item
// norm, and the query q' = [q, 0]. Then |q' − y'|² = |q|² + M² − 2 q·y, so
// the nearest lifted item is the one with the largest dot product.
//
// The graph is our own: the Go HNSW library we measured first returned
// 4% of the exact top 10 on factor-shaped data (a search bug fixed upstream
// but not released), and the recall test in this package guards ours.
//
// An Index is immutable once built and safe for concurrent searches.
package ann

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// Config tunes the graph.
type Config struct {
	M              int // neighbours kept per node above layer 0 (default 16; 2M on layer 0)
	EfConstruction int // candidates kept while inserting (default 200)
	EfSearch       int // candidates kept while searching (default 128)
	Seed           uint64
}

func (c *Config) fill() {
	if c.M <= 0 {
		c.M = 16
	}
	if c.EfConstruction <= 0 {
		c.EfConstruction = 200
	}
	if c.EfSearch <= 0 {
		c.EfSearch = 128
	}
}

// Index is an HNSW graph over lifted item vectors.
type Index struct {
	cfg   Config
	dim   int         // lifted dimension (item dimension + 1)
	vecs  []float32   // lifted vectors, n × dim
	links [][][]int32 // node → layer → neighbours
	entry int32
	top   int // highest layer
	count int
	seen  sync.Pool // *visited
}

type visited struct {
	mark  []uint32
	stamp uint32
}

// Build indexes the n = len(vecs)/dim item vectors (row major); item i's id
// is i. Items whose vector is all zero (never trained) are left out.
func Build(vecs []float32, dim int, cfg Config) *Index {
	cfg.fill()
	n := len(vecs) / dim
	x := &Index{cfg: cfg, dim: dim + 1, vecs: make([]float32, n*(dim+1)), links: make([][][]int32, n), entry: -1}
	var maxNorm float64
	for i := range n {
		maxNorm = max(maxNorm, norm2(vecs[i*dim:(i+1)*dim]))
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x2545f4914f6cdd1d))
	ml := 1 / math.Log(float64(cfg.M))
	for i := range n {
		v := vecs[i*dim : (i+1)*dim]
		n2 := norm2(v)
		if n2 == 0 {
			continue
		}
		l := x.vecs[i*x.dim : (i+1)*x.dim]
		copy(l, v)
		l[dim] = float32(math.Sqrt(max(0, maxNorm-n2)))
		level := int(-math.Log(1-rng.Float64()) * ml)
		x.insert(int32(i), level)
	}
	return x
}

// Len is the number of items indexed.
func (x *Index) Len() int { return x.count }

func (x *Index) vec(i int32) []float32 { return x.vecs[int(i)*x.dim : int(i+1)*x.dim] }

func (x *Index) dist(q []float32, i int32) float32 { return squaredL2(q, x.vec(i)) }

func (x *Index) maxLinks(layer int) int {
	if layer == 0 {
		return 2 * x.cfg.M
	}
	return x.cfg.M
}

func (x *Index) insert(id int32, level int) {
	x.links[id] = make([][]int32, level+1)
	x.count++
	if x.entry < 0 {
		x.entry, x.top = id, level
		return
	}
	q := x.vec(id)
	ep := x.entry
	for layer := x.top; layer > level; layer-- {
		ep = x.greedy(q, ep, layer)
	}
	for layer := min(level, x.top); layer >= 0; layer-- {
		cands := x.searchLayer(q, ep, x.cfg.EfConstruction, layer)
		nb := x.selectNeighbors(cands, x.cfg.M)
		x.links[id][layer] = nb
		for _, o := range nb {
			x.connect(o, id, layer)
		}
		ep = cands[0].id
	}
	if level > x.top {
		x.entry, x.top = id, level
	}
}

// connect adds id to o's neighbours on layer, pruning to the layer's bound.
func (x *Index) connect(o, id int32, layer int) {
	links := append(x.links[o][layer], id)
	if len(links) > x.maxLinks(layer) {
		q := x.vec(o)
		cands := make([]cand, len(links))
		for i, l := range links {
			cands[i] = cand{l, x.dist(q, l)}
		}
		sortCands(cands)
		links = x.selectNeighbors(cands, x.maxLinks(layer))
	}
	x.links[o][layer] = links
}

// selectNeighbors is the HNSW heuristic: take candidates nearest first,
// keeping one only if it is nearer to the base than to every one kept (so
// the links spread in all directions), then fill up with the rest.
func (x *Index) selectNeighbors(cands []cand, m int) []int32 {
	out := make([]int32, 0, m)
	var skipped []int32
	for _, c := range cands {
		if len(out) >= m {
			break
		}
		good := true
		for _, o := range out {
			if squaredL2(x.vec(c.id), x.vec(o)) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c.id)
		} else {
			skipped = append(skipped, c.id)
		}
	}
	for _, s := range skipped {
		if len(out) >= m {
			break
		}
		out = append(out, s)
	}
	return out
}

// greedy walks layer from ep to the node nearest q.
func (x *Index) greedy(q []float32, ep int32, layer int) int32 {
	best := x.dist(q, ep)
	for changed := true; changed; {
		changed = false
		for _, n := range x.links[ep][layer] {
			if d := x.dist(q, n); d < best {
				best, ep, changed = d, n, true
			}
		}
	}
	return ep
}

type cand struct {
	id int32
	d  float32
}

// searchLayer is the beam search of one layer from ep, keeping ef
// candidates; it returns them nearest first.
func (x *Index) searchLayer(q []float32, ep int32, ef int, layer int) []cand {
	v, _ := x.seen.Get().(*visited)
	if v == nil || len(v.mark) < len(x.links) {
		v = &visited{mark: make([]uint32, len(x.links))}
	}
	v.stamp++
	if v.stamp == 0 {
		clear(v.mark)
		v.stamp = 1
	}
	defer x.seen.Put(v)
	start := cand{ep, x.dist(q, ep)}
	v.mark[ep] = v.stamp
	frontier := heap{c: []cand{start}}           // to expand, nearest first
	results := heap{c: []cand{start}, far: true} // best ef so far, farthest on top
	for len(frontier.c) > 0 {
		c := frontier.pop()
		if c.d > results.c[0].d && len(results.c) >= ef {
			break
		}
		for _, n := range x.links[c.id][layer] {
			if v.mark[n] == v.stamp {
				continue
			}
			v.mark[n] = v.stamp
			d := x.dist(q, n)
			if len(results.c) < ef || d < results.c[0].d {
				frontier.push(cand{n, d})
				results.push(cand{n, d})
				if len(results.c) > ef {
					results.pop()
				}
			}
		}
	}
	out := results.c
	sortCands(out)
	return out
}

// Search returns up to k item ids, approximately those with the largest dot
// product with q, best first.
func (x *Index) Search(q []float32, k int) []int32 {
	if x.entry < 0 || k <= 0 {
		return nil
	}
	lq := make([]float32, x.dim)
	copy(lq, q)
	ep := x.entry
	for layer := x.top; layer > 0; layer-- {
		ep = x.greedy(lq, ep, layer)
	}
	cands := x.searchLayer(lq, ep, max(x.cfg.EfSearch, k), 0)
	out := make([]int32, 0, min(k, len(cands)))
	for _, c := range cands[:min(k, len(cands))] {
		out = append(out, c.id)
	}
	return out
}

func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return int(a.id - b.id)
	})
}

// heap is a binary heap of candidates: nearest on top, or farthest on top
// when far is set.
type heap struct {
	c   []cand
	far bool
}

func (h *heap) above(i, j int) bool {
	if h.far {
		return h.c[i].d > h.c[j].d
	}
	return h.c[i].d < h.c[j].d
}

func (h *heap) push(c cand) {
	h.c = append(h.c, c)
	for i := len(h.c) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.above(i, p) {
			break
		}
		h.c[p], h.c[i] = h.c[i], h.c[p]
		i = p
	}
}

func (h *heap) pop() cand {
	top := h.c[0]
	last := len(h.c) - 1
	h.c[0] = h.c[last]
	h.c = h.c[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h.c) && h.above(l, m) {
			m = l
		}
		if r < len(h.c) && h.above(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.c[m], h.c[i] = h.c[i], h.c[m]
		i = m
	}
	return top
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
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0, d1, d2, d3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return s0 + s1 + s2 + s3
}
