// Package lambdamart trains gradient-boosted regression trees with the
// LambdaMART objective and serves them.
//
// Each request ("query") brings a group of candidate rows, each with a
// feature vector, a gain (Label) and a base score (Init, a linear blend
// fitted elsewhere). The trees learn a correction added to the base score
// so that ordering the rows by Init + Forest.Predict raises the truncated
// DCG of the gains (Metric). The DCG is deliberately not normalised here:
// callers that want NDCG divide each query's labels by its ideal DCG.
//
// Training follows LambdaMART: every round sorts each query by its current
// scores, computes LambdaRank gradients and hessians for the pairs of rows
// with different labels of which at least one sits in the top K (|ΔDCG| of
// swapping them, times the RankNet weight), and fits one regression tree to
// them with Newton leaf values −ΣG/(ΣH+L2), shrunk by the learning rate.
// Trees are grown depth-wise over histograms of binned features (at most 256
// bins a feature, uint8, column-major; the sibling histogram is the parent's
// minus the smaller child's). Bin edges are real feature values taken from
// the training data, so a row goes left in training exactly when
// x[Feature] <= Threshold, which is what Predict does; NaN features go right
// everywhere, in training and in Predict.
//
// With a validation set (Config.Valid) the forest keeps the trees up to the
// round that scored best there, which may be none. Training is
// single-threaded and deterministic: the same data and configuration give
// the same forest, bit for bit.
//
// A Forest is flat node arrays; Predict and Contributions allocate nothing
// and make no interface calls, so serving ~50 candidates a request costs a
// few microseconds. Forests are plain JSON; call Validate on one read from
// a file before using it.
package lambdamart

import (
	"errors"
	"fmt"
	"math"
)

// Data is a training (or validation) set: queries, each a group of rows.
type Data struct {
	F      int       // features per row
	X      []float32 // rows × F, row-major
	Label  []float32 // per row: the gain of the row (0: not relevant; ≥ 0)
	Init   []float32 // per row: the base score the trees add to (nil: 0)
	Group  []int     // query q holds rows Group[q] to Group[q+1]-1; len = queries+1, Group[0] = 0
	Weight []float32 // per query weight (nil: all 1)
}

// Config tunes training. Zero fields take the defaults of DefaultConfig.
type Config struct {
	Trees        int     // boosting rounds, default 100 (at most 10,000)
	Depth        int     // maximum depth of a tree, default 4 (so ≤ 16 leaves; at most 15)
	LearningRate float64 // shrinkage, default 0.1
	MinLeaf      int     // fewest rows in a leaf, default 20
	L2           float64 // L2 regularisation of leaf values (added to the hessian sum), default 1
	Bins         int     // histogram bins per feature, 2..256, default 64
	K            int     // truncation of the DCG optimised, default 10
	Sigma        float64 // RankNet sigma, default 1
	// Valid, when set, is scored (Metric) after every tree; the forest keeps the
	// trees up to the best round, and training stops after EarlyStop rounds
	// without improvement (default 10).
	Valid     *Data
	EarlyStop int
}

// DefaultConfig is the configuration zero fields of a Config take.
func DefaultConfig() Config {
	return Config{
		Trees:        100,
		Depth:        4,
		LearningRate: 0.1,
		MinLeaf:      20,
		L2:           1,
		Bins:         64,
		K:            10,
		Sigma:        1,
		EarlyStop:    10,
	}
}

// Forest is a trained model: Predict(x) = sum of its trees' leaf values.
type Forest struct {
	F     int    `json:"features"` // the length of an input vector
	Trees []Tree `json:"trees"`
}

// Tree is one regression tree as flat nodes; Nodes[0] is the root.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Node is a split (Feature ≥ 0: x[Feature] <= Threshold goes to Left, else Right)
// or a leaf (Feature = -1). Value is the leaf's output for a leaf and, for a
// split, the value the node would have had as a leaf (the hessian-weighted mean
// step of its rows, times the learning rate), which Contributions uses.
type Node struct {
	Feature   int32   `json:"f"`
	Threshold float32 `json:"t,omitempty"`
	Left      int32   `json:"l,omitempty"`
	Right     int32   `json:"r,omitempty"`
	Value     float32 `json:"v"`
}

// Stats says what a training did.
type Stats struct {
	Trees      int     // trees kept
	Rounds     int     // rounds run
	TrainScore float64 // Metric on d with the kept trees
	ValidScore float64 // Metric on cfg.Valid with the kept trees (NaN without one)
	InitValid  float64 // Metric on cfg.Valid with no trees (the base scores alone; NaN without one)
}

// Limits Validate enforces on a forest.
const (
	maxTrees    = 10000
	maxNodes    = 1 << 16
	maxFeatures = 1 << 20
	// maxAbsValue bounds node values so that no sum over a valid forest
	// (at most maxTrees trees, each path at most maxNodes long) can overflow
	// float32. Trained values are many orders of magnitude smaller.
	maxAbsValue = 1e20
	maxDepth    = 15 // 2^16-1 nodes at most
)

func finite32(v float32) bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// resolve fills zero fields with defaults and checks the rest.
func (c Config) resolve() (Config, error) {
	def := DefaultConfig()
	if c.Trees == 0 {
		c.Trees = def.Trees
	}
	if c.Depth == 0 {
		c.Depth = def.Depth
	}
	if c.LearningRate == 0 {
		c.LearningRate = def.LearningRate
	}
	if c.MinLeaf == 0 {
		c.MinLeaf = def.MinLeaf
	}
	if c.L2 == 0 {
		c.L2 = def.L2
	}
	if c.Bins == 0 {
		c.Bins = def.Bins
	}
	if c.K == 0 {
		c.K = def.K
	}
	if c.Sigma == 0 {
		c.Sigma = def.Sigma
	}
	if c.EarlyStop == 0 {
		c.EarlyStop = def.EarlyStop
	}
	switch {
	case c.Trees < 0 || c.Trees > maxTrees:
		return c, fmt.Errorf("lambdamart: Trees = %d, want 1..%d", c.Trees, maxTrees)
	case c.Depth < 0 || c.Depth > maxDepth:
		return c, fmt.Errorf("lambdamart: Depth = %d, want 1..%d", c.Depth, maxDepth)
	case !(c.LearningRate > 0) || !finite64(c.LearningRate):
		return c, fmt.Errorf("lambdamart: LearningRate = %v, want a finite value > 0", c.LearningRate)
	case c.MinLeaf < 0:
		return c, fmt.Errorf("lambdamart: MinLeaf = %d, want ≥ 1", c.MinLeaf)
	case !(c.L2 > 0) || !finite64(c.L2):
		return c, fmt.Errorf("lambdamart: L2 = %v, want a finite value > 0", c.L2)
	case c.Bins < 2 || c.Bins > 256:
		return c, fmt.Errorf("lambdamart: Bins = %d, want 2..256", c.Bins)
	case c.K < 0:
		return c, fmt.Errorf("lambdamart: K = %d, want ≥ 1", c.K)
	case !(c.Sigma > 0) || !finite64(c.Sigma):
		return c, fmt.Errorf("lambdamart: Sigma = %v, want a finite value > 0", c.Sigma)
	case c.EarlyStop < 0:
		return c, fmt.Errorf("lambdamart: EarlyStop = %d, want ≥ 1", c.EarlyStop)
	}
	return c, nil
}

// check reports whether d is well formed; name says which set it is.
// A set without rows (Group = [0]) is well formed. Unless values is set, it
// checks the shape only, not that labels, Init and weights are finite.
func (d *Data) check(name string, values bool) error {
	if d == nil {
		return fmt.Errorf("lambdamart: %s data is nil", name)
	}
	if d.F <= 0 {
		return fmt.Errorf("lambdamart: %s data has F = %d, want > 0", name, d.F)
	}
	n := len(d.Label)
	if n > math.MaxInt32 {
		return fmt.Errorf("lambdamart: %s data has %d rows, at most %d allowed", name, n, math.MaxInt32)
	}
	if len(d.X) != n*d.F {
		return fmt.Errorf("lambdamart: %s data has len(X) = %d, want rows × F = %d × %d", name, len(d.X), n, d.F)
	}
	if d.Init != nil && len(d.Init) != n {
		return fmt.Errorf("lambdamart: %s data has len(Init) = %d, want %d (one per row)", name, len(d.Init), n)
	}
	if len(d.Group) == 0 || d.Group[0] != 0 {
		return fmt.Errorf("lambdamart: %s data: Group must start with 0", name)
	}
	for q := 1; q < len(d.Group); q++ {
		if d.Group[q] < d.Group[q-1] {
			return fmt.Errorf("lambdamart: %s data: Group[%d] = %d < Group[%d] = %d", name, q, d.Group[q], q-1, d.Group[q-1])
		}
	}
	if last := d.Group[len(d.Group)-1]; last != n {
		return fmt.Errorf("lambdamart: %s data: Group ends at %d, want the number of rows %d", name, last, n)
	}
	if d.Weight != nil && len(d.Weight) != len(d.Group)-1 {
		return fmt.Errorf("lambdamart: %s data has len(Weight) = %d, want %d (one per query)", name, len(d.Weight), len(d.Group)-1)
	}
	if !values {
		return nil
	}
	for r, l := range d.Label {
		if !finite32(l) || l < 0 {
			return fmt.Errorf("lambdamart: %s data: Label[%d] = %v, want a finite value ≥ 0", name, r, l)
		}
	}
	for r, v := range d.Init {
		if !finite32(v) {
			return fmt.Errorf("lambdamart: %s data: Init[%d] = %v is not finite", name, r, v)
		}
	}
	for q, w := range d.Weight {
		if !finite32(w) || w < 0 {
			return fmt.Errorf("lambdamart: %s data: Weight[%d] = %v, want a finite value ≥ 0", name, q, w)
		}
	}
	return nil
}

func (d *Data) init(r int) float64 {
	if d.Init == nil {
		return 0
	}
	return float64(d.Init[r])
}

func (d *Data) weight(q int) float64 {
	if d.Weight == nil {
		return 1
	}
	return float64(d.Weight[q])
}

var errNilForest = errors.New("lambdamart: forest is nil")
