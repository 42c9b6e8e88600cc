package lambdamart

// Compiled is a forest laid out for serving: every tree padded to one
// depth as a complete binary tree, its splits in one array (a split's
// children at 2i+1 and 2i+2) and its leaves in another. A walk is then a
// fixed number of steps with no loop condition to mispredict and no child
// index to load: the next node is computed from the comparison. A leaf the
// trained tree reached early becomes a subtree whose every leaf holds its
// value, so the padding changes no answer. Compiled.PredictRows gives what
// Forest.PredictRows and Predict give, bit for bit (each row sums its trees'
// values in the forest's order).
//
// A Compiled is immutable and safe for concurrent use; it shares nothing
// with the Forest it was made from.
type Compiled struct {
	f      int
	depth  int       // every tree's depth after padding
	splits []cut     // per tree 1<<depth (the last unused, so that a mask bounds an index), tree by tree
	leaves []float32 // per tree 1<<depth, tree by tree
	deep   *Forest   // a forest too deep to pad: served as it is
}

// cut is one split of a padded tree: x[f] <= t goes to 2i+1, else 2i+2.
type cut struct {
	f int32
	t float32
}

// maxCompiledDepth bounds the padding: a tree of depth d takes 2^d leaves
// once complete (8 KiB at depth 10). Deeper forests are served as they are.
const maxCompiledDepth = 10

// Compile lays f out for serving. f must be valid (see Validate) and must
// not change afterwards if the Compiled is to keep answering as f does.
func (f *Forest) Compile() *Compiled {
	depth := 0
	for ti := range f.Trees {
		depth = max(depth, treeDepth(f.Trees[ti].Nodes, 0))
	}
	c := &Compiled{f: f.F, depth: depth}
	if depth > maxCompiledDepth {
		c.deep = f
		return c
	}
	L := 1 << depth
	c.splits = make([]cut, len(f.Trees)*L)
	c.leaves = make([]float32, len(f.Trees)*L)
	for ti := range f.Trees {
		c.pad(f.Trees[ti].Nodes, 0, 0, 0, c.splits[ti*L:(ti+1)*L], c.leaves[ti*L:(ti+1)*L])
	}
	return c
}

// treeDepth is the number of splits on the longest path from node n down.
func treeDepth(nodes []Node, n int32) int {
	if nodes[n].Feature < 0 {
		return 0
	}
	return 1 + max(treeDepth(nodes, nodes[n].Left), treeDepth(nodes, nodes[n].Right))
}

// pad writes the subtree of node n at position i (depth d) of a complete
// tree: a leaf above the bottom becomes a split on feature 0 whose both
// sides hold that leaf, down to the bottom.
func (c *Compiled) pad(nodes []Node, n int32, i, d int, splits []cut, leaves []float32) {
	nd := &nodes[n]
	if d == c.depth {
		leaves[i-(len(leaves)-1)] = nd.Value
		return
	}
	l, r := n, n
	if nd.Feature >= 0 {
		splits[i] = cut{f: nd.Feature, t: nd.Threshold}
		l, r = nd.Left, nd.Right
	}
	c.pad(nodes, l, 2*i+1, d+1, splits, leaves)
	c.pad(nodes, r, 2*i+2, d+1, splits, leaves)
}

// PredictRows puts into dst[i] the forest's output for row i of X (rows of
// stride values, each at least Features), bit for bit Forest.PredictRows.
// Rows go four at a time through every tree: four independent walks keep
// the core busy while one waits on a load, and the forest (about 18 KiB for
// 100 trees of depth 4) stays in the first-level cache. No allocation.
func (c *Compiled) PredictRows(X []float32, stride int, dst []float32) {
	if c.deep != nil {
		c.deep.PredictRows(X, stride, dst)
		return
	}
	if stride < c.f || len(X) < len(dst)*stride {
		shortInput(stride, c.f)
	}
	n := len(dst)
	i := 0
	if c.depth == 4 {
		for ; i+4 <= n; i += 4 {
			dst[i], dst[i+1], dst[i+2], dst[i+3] = c.four4(X[i*stride:], X[(i+1)*stride:], X[(i+2)*stride:], X[(i+3)*stride:])
		}
	}
	for ; i+4 <= n; i += 4 {
		dst[i], dst[i+1], dst[i+2], dst[i+3] = c.four(X[i*stride:], X[(i+1)*stride:], X[(i+2)*stride:], X[(i+3)*stride:])
	}
	for ; i < n; i++ {
		dst[i] = c.one(X[i*stride : i*stride+c.f])
	}
}

// four is four rows' outputs, at any depth.
func (c *Compiled) four(x0, x1, x2, x3 []float32) (s0, s1, s2, s3 float32) {
	S, L := 1<<c.depth-1, 1<<c.depth
	x0, x1, x2, x3 = x0[:c.f], x1[:c.f], x2[:c.f], x3[:c.f]
	for t := 0; t+L <= len(c.leaves); t += L {
		sp := c.splits[t : t+L]
		a, b, d, e := 0, 0, 0, 0
		for range c.depth {
			a = 2*a + 1 + right(sp[a], x0)
			b = 2*b + 1 + right(sp[b], x1)
			d = 2*d + 1 + right(sp[d], x2)
			e = 2*e + 1 + right(sp[e], x3)
		}
		lv := c.leaves[t : t+L]
		s0 += lv[a-S]
		s1 += lv[b-S]
		s2 += lv[d-S]
		s3 += lv[e-S]
	}
	return s0, s1, s2, s3
}

// four4 is four with the depth fixed at 4 (the default): the walk
// unrolled, its indices provably in range.
func (c *Compiled) four4(x0, x1, x2, x3 []float32) (s0, s1, s2, s3 float32) {
	x0, x1, x2, x3 = x0[:c.f], x1[:c.f], x2[:c.f], x3[:c.f]
	splits, leaves := c.splits, c.leaves
	for len(leaves) >= 16 && len(splits) >= 16 {
		sp := (*[16]cut)(splits[:16])
		lv := (*[16]float32)(leaves[:16])
		splits, leaves = splits[16:], leaves[16:]
		a, b, d, e := 1+right(sp[0], x0), 1+right(sp[0], x1), 1+right(sp[0], x2), 1+right(sp[0], x3)
		for range 3 {
			a = 2*a + 1 + right(sp[a&15], x0)
			b = 2*b + 1 + right(sp[b&15], x1)
			d = 2*d + 1 + right(sp[d&15], x2)
			e = 2*e + 1 + right(sp[e&15], x3)
		}
		s0 += lv[(a-15)&15]
		s1 += lv[(b-15)&15]
		s2 += lv[(d-15)&15]
		s3 += lv[(e-15)&15]
	}
	return s0, s1, s2, s3
}

// one is one row's output.
func (c *Compiled) one(x []float32) float32 {
	S, L := 1<<c.depth-1, 1<<c.depth
	var s float32
	for t := 0; t+L <= len(c.leaves); t += L {
		sp := c.splits[t : t+L]
		a := 0
		for range c.depth {
			a = 2*a + 1 + right(sp[a], x)
		}
		s += c.leaves[t+a-S]
	}
	return s
}

// right is 1 when x goes right at split n (NaN does), else 0, without a
// branch.
func right(n cut, x []float32) int {
	return int(b2i(!(x[n.f] <= n.t)))
}
