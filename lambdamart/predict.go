package lambdamart

import (
	"fmt"
	"math"
)

// Predict is the forest's output for one row x (len(x) ≥ F). No allocation.
func (f *Forest) Predict(x []float32) float32 {
	if len(x) < f.F {
		shortInput(len(x), f.F)
	}
	var s float32
	trees := f.Trees
	ti := 0
	// Two trees at a time, in lockstep: the walks are chains of dependent
	// loads, and two independent chains keep the core busier than one.
	for ; ti+1 < len(trees); ti += 2 {
		na, nb := trees[ti].Nodes, trees[ti+1].Nodes
		a, b := &na[0], &nb[0]
		for a.Feature >= 0 || b.Feature >= 0 {
			if a.Feature >= 0 {
				a = &na[child(a, x[a.Feature])]
			}
			if b.Feature >= 0 {
				b = &nb[child(b, x[b.Feature])]
			}
		}
		s += a.Value
		s += b.Value
	}
	if ti < len(trees) {
		s += trees[ti].predict(x)
	}
	return s
}

// PredictRows puts into dst[i] the forest's output for row i of X (rows of
// stride values, each at least F), bit for bit what Predict gives (each
// row sums its trees' values in the same order), but tree by tree over all
// rows, four rows in lockstep: a tree's nodes stay in cache while it scores
// a request's candidates, and four independent walks keep the core busy.
// No allocation.
func (f *Forest) PredictRows(X []float32, stride int, dst []float32) {
	if stride < f.F || len(X) < len(dst)*stride {
		shortInput(stride, f.F)
	}
	clear(dst)
	n := len(dst)
	for ti := range f.Trees {
		nodes := f.Trees[ti].Nodes
		i := 0
		for ; i+4 <= n; i += 4 {
			x0, x1 := X[i*stride:i*stride+f.F], X[(i+1)*stride:(i+1)*stride+f.F]
			x2, x3 := X[(i+2)*stride:(i+2)*stride+f.F], X[(i+3)*stride:(i+3)*stride+f.F]
			a, b, c, d := &nodes[0], &nodes[0], &nodes[0], &nodes[0]
			for a.Feature >= 0 || b.Feature >= 0 || c.Feature >= 0 || d.Feature >= 0 {
				if a.Feature >= 0 {
					a = &nodes[child(a, x0[a.Feature])]
				}
				if b.Feature >= 0 {
					b = &nodes[child(b, x1[b.Feature])]
				}
				if c.Feature >= 0 {
					c = &nodes[child(c, x2[c.Feature])]
				}
				if d.Feature >= 0 {
					d = &nodes[child(d, x3[d.Feature])]
				}
			}
			dst[i] += a.Value
			dst[i+1] += b.Value
			dst[i+2] += c.Value
			dst[i+3] += d.Value
		}
		t := &f.Trees[ti]
		for ; i < n; i++ {
			dst[i] += t.predict(X[i*stride : i*stride+f.F])
		}
	}
}

// predict is the tree's leaf value for x.
func (t *Tree) predict(x []float32) float32 {
	nodes := t.Nodes
	n := &nodes[0]
	for n.Feature >= 0 {
		n = &nodes[child(n, x[n.Feature])]
	}
	return n.Value
}

// child is the child of split n that v goes to. It is written without a
// branch: the direction is data-dependent, and a mispredicted branch per
// level costs more than the rest of the walk.
func child(n *Node, v float32) int32 {
	l, r := n.Left, n.Right
	right := b2i(!(v <= n.Threshold)) // NaN goes right
	return l ^ ((l ^ r) & -right)
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Contributions adds to dst (len F) each feature's part of Predict(x), by the
// path each tree takes (Saabas): for every split on the path, the child's Value
// minus the node's Value goes to the split's feature. Sum(dst) + Bias() == Predict(x)
// (to float32 rounding).
func (f *Forest) Contributions(x []float32, dst []float32) {
	if len(x) < f.F {
		shortInput(len(x), f.F)
	}
	if len(dst) < f.F {
		shortInput(len(dst), f.F)
	}
	for ti := range f.Trees {
		nodes := f.Trees[ti].Nodes
		i := int32(0)
		for {
			n := &nodes[i]
			if n.Feature < 0 {
				break
			}
			c := child(n, x[n.Feature])
			dst[n.Feature] += nodes[c].Value - n.Value
			i = c
		}
	}
}

// Bias is the sum of the trees' root Values.
func (f *Forest) Bias() float32 {
	var s float32
	for ti := range f.Trees {
		s += f.Trees[ti].Nodes[0].Value
	}
	return s
}

//go:noinline
func shortInput(got, want int) {
	panic(fmt.Sprintf("lambdamart: vector of %d values for a forest of %d features", got, want))
}

// Validate checks a forest read from a file before it is used: F > 0; every tree
// non-empty; features in [0, F) or -1; children in range and strictly after their
// parent (so no cycles and every walk ends); all values and thresholds finite;
// at most 10,000 trees and 1<<16 nodes per tree. It returns a clear error naming
// the tree and node.
//
// It also bounds F (at most 1<<20) and the magnitude of values (at most 1e20),
// so that no sum Predict or Contributions forms can overflow to infinity.
func (f *Forest) Validate() error {
	if f == nil {
		return errNilForest
	}
	if f.F <= 0 {
		return fmt.Errorf("lambdamart: forest has F = %d features, want > 0", f.F)
	}
	if f.F > maxFeatures {
		return fmt.Errorf("lambdamart: forest has F = %d features, at most %d allowed", f.F, maxFeatures)
	}
	if len(f.Trees) > maxTrees {
		return fmt.Errorf("lambdamart: forest has %d trees, at most %d allowed", len(f.Trees), maxTrees)
	}
	for ti := range f.Trees {
		nodes := f.Trees[ti].Nodes
		if len(nodes) == 0 {
			return fmt.Errorf("lambdamart: tree %d has no nodes", ti)
		}
		if len(nodes) > maxNodes {
			return fmt.Errorf("lambdamart: tree %d has %d nodes, at most %d allowed", ti, len(nodes), maxNodes)
		}
		for ni := range nodes {
			n := &nodes[ni]
			if !finite32(n.Value) {
				return fmt.Errorf("lambdamart: tree %d node %d: value %v is not finite", ti, ni, n.Value)
			}
			if math.Abs(float64(n.Value)) > maxAbsValue {
				return fmt.Errorf("lambdamart: tree %d node %d: value %v exceeds %g in magnitude", ti, ni, n.Value, maxAbsValue)
			}
			if !finite32(n.Threshold) {
				return fmt.Errorf("lambdamart: tree %d node %d: threshold %v is not finite", ti, ni, n.Threshold)
			}
			if n.Feature == -1 {
				continue
			}
			if n.Feature < -1 || int(n.Feature) >= f.F {
				return fmt.Errorf("lambdamart: tree %d node %d: feature %d, want -1 (leaf) or 0..%d", ti, ni, n.Feature, f.F-1)
			}
			if n.Left <= int32(ni) || int(n.Left) >= len(nodes) {
				return fmt.Errorf("lambdamart: tree %d node %d: left child %d, want a node after it (%d..%d)", ti, ni, n.Left, ni+1, len(nodes)-1)
			}
			if n.Right <= int32(ni) || int(n.Right) >= len(nodes) {
				return fmt.Errorf("lambdamart: tree %d node %d: right child %d, want a node after it (%d..%d)", ti, ni, n.Right, ni+1, len(nodes)-1)
			}
		}
	}
	return nil
}
