package lambdamart

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// raggedForest is random trees whose leaves sit at every depth up to
// depth: each node below the root stops early with probability stop.
func raggedForest(seed uint64, trees, depth, F int, stop float64) *Forest {
	rng := rand.New(rand.NewPCG(seed, 5))
	f := &Forest{F: F}
	for range trees {
		var nodes []Node
		var build func(d int) int32
		build = func(d int) int32 {
			id := int32(len(nodes))
			nodes = append(nodes, Node{Feature: -1, Value: float32(rng.NormFloat64())})
			if d == depth || d > 0 && rng.Float64() < stop {
				return id
			}
			nodes[id].Feature = int32(rng.IntN(F))
			nodes[id].Threshold = float32(rng.NormFloat64())
			l := build(d + 1)
			r := build(d + 1)
			nodes[id].Left, nodes[id].Right = l, r
			return id
		}
		build(0)
		f.Trees = append(f.Trees, Tree{Nodes: nodes})
	}
	return f
}

// TestCompiledIsPredict: the padded layout answers what the forest answers,
// bit for bit, at every depth (the unrolled depth 4, the general walk, and
// a forest too deep to pad), for ragged trees, rows wider than the forest,
// NaN and infinite features, and any number of rows.
func TestCompiledIsPredict(t *testing.T) {
	const F, stride = 7, 9
	rng := rand.New(rand.NewPCG(11, 12))
	X := make([]float32, 41*stride)
	for i := range X {
		switch rng.IntN(20) {
		case 0:
			X[i] = float32(math.NaN())
		case 1:
			X[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
		case 2:
			X[i] = 0
		default:
			X[i] = float32(rng.NormFloat64())
		}
	}
	cases := []struct {
		name  string
		f     *Forest
		depth int
	}{
		{"no trees", &Forest{F: F}, 0},
		{"single leaves", raggedForest(1, 5, 0, F, 0), 0},
		{"depth 4 complete", randomForest(2, 40, 4, F), 4},
		{"depth 4 ragged", raggedForest(3, 33, 4, F, 0.3), 4},
		{"depth 1", raggedForest(4, 9, 1, F, 0), 1},
		{"depth 6 ragged", raggedForest(5, 20, 6, F, 0.2), 6},
		{"depth 12, not padded", raggedForest(6, 6, 12, F, 0.05), 12},
	}
	for _, tc := range cases {
		c := tc.f.Compile()
		if tc.f.Validate() != nil {
			t.Fatalf("%s: the forest is not valid: %v", tc.name, tc.f.Validate())
		}
		if c.depth != tc.depth && len(tc.f.Trees) > 0 {
			t.Errorf("%s: compiled depth %d, want %d", tc.name, c.depth, tc.depth)
		}
		for _, n := range []int{0, 1, 3, 4, 5, 8, 41} {
			got := make([]float32, n)
			c.PredictRows(X, stride, got)
			want := make([]float32, n)
			tc.f.PredictRows(X, stride, want)
			for i := range n {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s, %d rows: row %d compiled %v, forest %v", tc.name, n, i, got[i], want[i])
				}
				if p := tc.f.Predict(X[i*stride : i*stride+F]); math.Float32bits(p) != math.Float32bits(want[i]) {
					t.Fatalf("%s: row %d PredictRows %v, Predict %v", tc.name, i, want[i], p)
				}
			}
		}
	}
}

// TestCompiledTrained: a trained forest (ragged where MinLeaf stopped a
// split) compiles to the same answers.
func TestCompiledTrained(t *testing.T) {
	d := synth(9, 60, 30, 6, 10)
	f, _, err := Train(context.Background(), d, Config{Trees: 30, MinLeaf: 40})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Compile()
	got := make([]float32, len(d.Label))
	c.PredictRows(d.X, d.F, got)
	for i := range got {
		if want := f.Predict(row(d, i)); math.Float32bits(got[i]) != math.Float32bits(want) {
			t.Fatalf("row %d: compiled %v, Predict %v", i, got[i], want)
		}
	}
}

// TestCompiledShortInput: rows narrower than the forest panic, as
// Forest.PredictRows does, rather than read out of range.
func TestCompiledShortInput(t *testing.T) {
	c := randomForest(1, 3, 4, 5).Compile()
	defer func() {
		if recover() == nil {
			t.Error("no panic on rows of 4 values for a forest of 5 features")
		}
	}()
	c.PredictRows(make([]float32, 8), 4, make([]float32, 2))
}
