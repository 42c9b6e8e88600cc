package lambdamart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// withInit is a copy of d whose Init is init.
func withInit(d *Data, init []float32) *Data {
	c := *d
	c.Init = init
	return &c
}

// bestSingleFeature is the best Metric of ordering by one feature, either way.
func bestSingleFeature(d *Data, k int) (best float64, name string) {
	init := make([]float32, len(d.Label))
	best = math.Inf(-1)
	for f := range d.F {
		for _, sign := range []float32{1, -1} {
			for r := range init {
				init[r] = sign * d.X[r*d.F+f]
			}
			if m := Metric(withInit(d, init), nil, k); m > best {
				best = m
				name = string(rune('0'+f)) + map[float32]string{1: " desc", -1: " asc"}[sign]
			}
		}
	}
	return best, name
}

func TestPlanted(t *testing.T) {
	const k = 10
	train := planted(1, 600, 30, k)
	valid := planted(2, 200, 30, k)
	test := planted(3, 600, 30, k)
	f, st, err := Train(context.Background(), train, Config{Valid: valid})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("trained forest does not validate: %v", err)
	}
	base := Metric(test, nil, k)
	got := Metric(test, f, k)
	single, which := bestSingleFeature(test, k)
	ideal := Metric(withInit(test, test.Label), nil, k)
	t.Logf("trees %d/%d rounds; test: init %.4f, best single feature (x%s) %.4f, forest %.4f, ideal %.4f; train %.4f valid %.4f",
		st.Trees, st.Rounds, base, which, single, got, ideal, st.TrainScore, st.ValidScore)
	if st.Trees == 0 || st.Trees > st.Rounds || len(f.Trees) != st.Trees {
		t.Errorf("Stats %+v with %d trees", st, len(f.Trees))
	}
	if got < base+0.25 {
		t.Errorf("forest %.4f on held-out data, want ≥ init %.4f + 0.25", got, base)
	}
	if got < single+0.15 {
		t.Errorf("forest %.4f on held-out data, want ≥ best single feature %.4f + 0.15", got, single)
	}
	if got < 0.9*ideal {
		t.Errorf("forest %.4f on held-out data, want ≥ 90%% of the ideal %.4f", got, ideal)
	}
	if m := Metric(valid, nil, k); st.InitValid != m {
		t.Errorf("InitValid %v, Metric(valid, nil) %v", st.InitValid, m)
	}
	if m := Metric(valid, f, k); st.ValidScore != m {
		t.Errorf("ValidScore %v, Metric(valid, f) %v", st.ValidScore, m)
	}
	if m := Metric(train, f, k); st.TrainScore != m {
		t.Errorf("TrainScore %v, Metric(train, f) %v", st.TrainScore, m)
	}
	if st.ValidScore <= st.InitValid {
		t.Errorf("ValidScore %v ≤ InitValid %v", st.ValidScore, st.InitValid)
	}
}

func TestEarlyStopKeepsBestRound(t *testing.T) {
	const k = 10
	train := planted(4, 150, 30, k)
	valid := planted(5, 100, 30, k)
	// A large learning rate and no minimum leaf overfit quickly, so the
	// best round comes well before the last one.
	cfg := Config{Trees: 200, LearningRate: 1, MinLeaf: 1, Depth: 6, EarlyStop: 5, Valid: valid}
	f, st, err := Train(context.Background(), train, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Rounds >= 200 || st.Rounds-st.Trees != 5 {
		t.Errorf("rounds %d, trees %d: want early stopping 5 rounds after the best", st.Rounds, st.Trees)
	}
	// The kept trees are the best prefix: no prefix scores higher.
	best := math.Inf(-1)
	bestAt := 0
	for n := 0; n <= st.Rounds && n <= len(f.Trees); n++ {
		p := &Forest{F: f.F, Trees: f.Trees[:n]}
		if m := Metric(valid, p, k); m > best {
			best, bestAt = m, n
		}
	}
	if bestAt != st.Trees || best != st.ValidScore {
		t.Errorf("best prefix %d trees (%v), kept %d (%v)", bestAt, best, st.Trees, st.ValidScore)
	}
	if m := Metric(train, f, k); st.TrainScore != m {
		t.Errorf("TrainScore %v, Metric(train, f) %v", st.TrainScore, m)
	}
}

func TestInitHonoured(t *testing.T) {
	const k = 10
	perfect := func(d *Data) *Data {
		init := make([]float32, len(d.Label))
		for r, l := range d.Label {
			init[r] = 100 * l
		}
		return withInit(d, init)
	}
	train := perfect(planted(6, 300, 30, k))
	valid := perfect(planted(7, 200, 30, k))
	f, st, err := Train(context.Background(), train, Config{Valid: valid})
	if err != nil {
		t.Fatal(err)
	}
	init := Metric(valid, nil, k)
	if st.InitValid != init {
		t.Errorf("InitValid %v, Metric(valid, nil) %v", st.InitValid, init)
	}
	got := Metric(valid, f, k)
	if got < init-1e-12 || st.ValidScore < init-1e-12 {
		t.Errorf("valid metric %v (Stats %v) worse than Init alone %v", got, st.ValidScore, init)
	}
	if st.Trees != 0 {
		t.Errorf("kept %d trees on a perfect Init, want 0", st.Trees)
	}
	if ideal := Metric(withInit(valid, valid.Label), nil, k); init != ideal {
		t.Fatalf("Init not perfect: %v vs ideal %v", init, ideal)
	}
	if st.Trees == 0 && (f.Predict(row(valid, 0)) != 0 || len(f.Trees) != 0) {
		t.Errorf("forest of 0 trees predicts %v", f.Predict(row(valid, 0)))
	}
}

func TestMetricTable(t *testing.T) {
	l3 := 1 / math.Log2(3) // rank 1
	l4 := 1 / math.Log2(4) // rank 2
	// A forest that adds 10 to rows with x0 > 0.5.
	lift := &Forest{F: 1, Trees: []Tree{{Nodes: []Node{
		{Feature: 0, Threshold: 0.5, Left: 1, Right: 2},
		{Feature: -1, Value: 0},
		{Feature: -1, Value: 10},
	}}}}
	cases := []struct {
		name  string
		d     Data
		f     *Forest
		k     int
		want  float64
		check string
	}{
		{name: "ordered", d: Data{Label: []float32{0, 1, 2}, Init: []float32{3, 2, 1}, Group: []int{0, 3}}, k: 10, want: l3 + 2*l4},
		{name: "reversed", d: Data{Label: []float32{0, 1, 2}, Init: []float32{1, 2, 3}, Group: []int{0, 3}}, k: 10, want: 2 + l3},
		{name: "nil init ties by index", d: Data{Label: []float32{0, 0, 1}, Group: []int{0, 3}}, k: 10, want: l4},
		{name: "ties by lower index", d: Data{Label: []float32{0, 1, 1}, Init: []float32{5, 2, 2}, Group: []int{0, 3}}, k: 10, want: l3 + l4},
		{name: "tie first index wins", d: Data{Label: []float32{3, 0}, Init: []float32{1, 1}, Group: []int{0, 2}}, k: 10, want: 3},
		{name: "truncated", d: Data{Label: []float32{0, 0, 1}, Init: []float32{3, 2, 1}, Group: []int{0, 3}}, k: 2, want: 0},
		{name: "k=3", d: Data{Label: []float32{0, 0, 1}, Init: []float32{3, 2, 1}, Group: []int{0, 3}}, k: 3, want: l4},
		{name: "k=0 whole list", d: Data{Label: []float32{0, 0, 1}, Init: []float32{3, 2, 1}, Group: []int{0, 3}}, k: 0, want: l4},
		{name: "weights", d: Data{Label: []float32{1, 0, 1}, Init: []float32{0, 1, 0}, Group: []int{0, 1, 3}, Weight: []float32{1, 3}}, k: 10, want: (1 + 3*l3) / 4},
		{name: "zero weight", d: Data{Label: []float32{1, 0, 1}, Init: []float32{0, 1, 0}, Group: []int{0, 1, 3}, Weight: []float32{0, 3}}, k: 10, want: l3},
		{name: "no positives count 0", d: Data{Label: []float32{1, 0, 0}, Group: []int{0, 1, 3}}, k: 10, want: 0.5},
		{name: "empty query counts", d: Data{Label: []float32{1}, Group: []int{0, 0, 1}}, k: 10, want: 0.5},
		{name: "no queries", d: Data{Group: []int{0}}, k: 10, want: 0},
		{name: "forest lifts", d: Data{Label: []float32{0, 1}, Init: []float32{1, 0}, Group: []int{0, 2}}, f: lift, k: 10, want: 1},
		{name: "forest nil", d: Data{Label: []float32{0, 1}, Init: []float32{1, 0}, Group: []int{0, 2}}, k: 10, want: l3},
		{name: "NaN init last", d: Data{Label: []float32{1, 0}, Init: []float32{float32(math.NaN()), -5}, Group: []int{0, 2}}, k: 10, want: l3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.d
			d.F = 1
			d.X = make([]float32, len(d.Label))
			if c.f != nil {
				d.X = []float32{0, 1}
			}
			if got := Metric(&d, c.f, c.k); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("Metric = %v, want %v", got, c.want)
			}
		})
	}
}

// naiveGradients is the spec's LambdaRank gradient, pair by pair.
func naiveGradients(d *Data, pred []float32, k int, sigma float64) []ghPair {
	gh := make([]ghPair, len(d.Label))
	for q := 0; q+1 < len(d.Group); q++ {
		s, e := d.Group[q], d.Group[q+1]
		n := e - s
		sc := make([]float64, n)
		for i := range sc {
			sc[i] = d.init(s+i) + float64(pred[s+i])
		}
		perm := make([]int32, n)
		rank(perm, sc)
		rk := make([]int, n)
		for p, i := range perm {
			rk[i] = p
		}
		disc := func(r int) float64 {
			if r < k {
				return 1 / math.Log2(float64(r)+2)
			}
			return 0
		}
		for i := range n {
			for j := range n {
				li, lj := float64(d.Label[s+i]), float64(d.Label[s+j])
				if li <= lj || (rk[i] >= k && rk[j] >= k) {
					continue
				}
				delta := (li - lj) * math.Abs(disc(rk[i])-disc(rk[j])) * d.weight(q)
				rho := 1 / (1 + math.Exp(sigma*(sc[i]-sc[j])))
				gh[s+i].g -= sigma * rho * delta
				gh[s+j].g += sigma * rho * delta
				gh[s+i].h += sigma * sigma * rho * (1 - rho) * delta
				gh[s+j].h += sigma * sigma * rho * (1 - rho) * delta
			}
		}
	}
	return gh
}

func TestGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	d := &Data{F: 1, Group: []int{0}}
	for q := range 40 {
		n := 1 + rng.IntN(25)
		for range n {
			d.X = append(d.X, rng.Float32())
			d.Label = append(d.Label, float32(rng.IntN(4))/3)
			// Some exact ties, some scores far apart (exp underflow).
			init := float32(rng.IntN(5))
			if q%7 == 0 {
				init *= 400
			}
			d.Init = append(d.Init, init)
		}
		d.Group = append(d.Group, len(d.Label))
		d.Weight = append(d.Weight, float32(rng.IntN(3)))
	}
	for _, sigma := range []float64{1, 2.5} {
		cfg, err := Config{K: 5, Sigma: sigma}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		tr := newTrainer(d, cfg)
		for r := range tr.pred {
			tr.pred[r] = float32(rng.NormFloat64())
		}
		for round := range 2 { // the second from the previous round's order
			tr.gradients()
			want := naiveGradients(d, tr.pred, 5, sigma)
			var sumG float64
			for r := range want {
				g, w := tr.gh[r], want[r]
				if math.Abs(g.g-w.g) > 1e-9*(1+math.Abs(w.g)) || math.Abs(g.h-w.h) > 1e-9*(1+math.Abs(w.h)) {
					t.Fatalf("sigma %v round %d row %d: got %+v, want %+v", sigma, round, r, g, w)
				}
				sumG += g.g
				if g.h < 0 {
					t.Fatalf("row %d: negative hessian %v", r, g.h)
				}
			}
			if math.Abs(sumG) > 1e-9 {
				t.Errorf("gradients sum to %v, want 0", sumG)
			}
			for r := range tr.pred {
				tr.pred[r] += float32(rng.NormFloat64() * 0.1)
			}
		}
	}
}

// edgeData has features whose values sit exactly on bin edges: x0 takes 4
// values, x1 1,000 values (quantile edges are data values) with NaNs, x2 a
// single value.
func edgeData(seed uint64) *Data {
	rng := rand.New(rand.NewPCG(seed, 5))
	d := &Data{F: 3, Group: []int{0}}
	for range 200 {
		for range 20 {
			x0 := float32(rng.IntN(4))
			x1 := float32(rng.IntN(1000)) / 7
			if rng.IntN(50) == 0 {
				x1 = float32(math.NaN())
			}
			d.X = append(d.X, x0, x1, 0.25)
			var l float32
			if x0 >= 2 && (x1 > 60 || x1 != x1) {
				l = 1
			}
			d.Label = append(d.Label, l)
		}
		d.Group = append(d.Group, len(d.Label))
	}
	normalise(d, 10)
	return d
}

func TestBinsAgreeWithPredict(t *testing.T) {
	d := edgeData(1)
	for _, cfg := range []Config{
		{Trees: 1, Depth: 1},
		{Trees: 30, Bins: 16},
		{Trees: 30, Bins: 256, MinLeaf: 3, Depth: 6},
	} {
		f, st, tr, err := train(context.Background(), d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st.Trees == 0 {
			t.Fatalf("%+v: no trees", cfg)
		}
		// The training rows went where Predict sends them: the outputs the
		// trainer accumulated are Predict's, bit for bit.
		for r := range d.Label {
			if p := f.Predict(row(d, r)); p != tr.pred[r] {
				t.Fatalf("%+v: row %d %v: Predict %v, training %v", cfg, r, row(d, r), p, tr.pred[r])
			}
		}
		// Bins and thresholds: bin ≤ b exactly when x <= cuts[b].
		if len(tr.cuts[2]) != 0 {
			t.Errorf("constant feature has cuts %v", tr.cuts[2])
		}
		if got := tr.cuts[0]; !slices.Equal(got, []float32{0, 1, 2}) {
			t.Errorf("cuts of x0 %v, want [0 1 2]", got)
		}
		for f, cuts := range tr.cuts {
			if len(cuts) >= tr.cfg.Bins {
				t.Errorf("feature %d: %d cuts for %d bins", f, len(cuts), tr.cfg.Bins)
			}
			for b, c := range cuts {
				if b > 0 && c <= cuts[b-1] {
					t.Fatalf("feature %d: cuts not increasing: %v", f, cuts)
				}
				for r := range d.Label {
					x := d.X[r*d.F+f]
					if (tr.bins[f*tr.n+r] <= uint8(b)) != (x <= c) {
						t.Fatalf("feature %d row %d: x %v bin %d, cut %d = %v", f, r, x, tr.bins[f*tr.n+r], b, c)
					}
				}
			}
		}
		// Thresholds are data values.
		for _, tree := range f.Trees {
			for _, n := range tree.Nodes {
				if n.Feature >= 0 && !slices.Contains(tr.cuts[n.Feature], n.Threshold) {
					t.Errorf("threshold %v of feature %d is not a bin edge", n.Threshold, n.Feature)
				}
			}
		}
	}
	// The single split: on x0 at 1 (x0 ≥ 2 is the relevant half).
	f, _, err := Train(context.Background(), d, Config{Trees: 1, Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	root := f.Trees[0].Nodes[0]
	if root.Feature != 0 || root.Threshold != 1 {
		t.Errorf("single split on x%d at %v, want x0 at 1", root.Feature, root.Threshold)
	}
	if l, r := f.Trees[0].Nodes[root.Left].Value, f.Trees[0].Nodes[root.Right].Value; !(r > l) {
		t.Errorf("left %v, right %v: want the relevant side higher", l, r)
	}
}

// TestTreeShape checks, on rows routed by Predict, MinLeaf, Depth and the
// Newton values of every node.
func TestTreeShape(t *testing.T) {
	// rare: the best split would isolate the 8 relevant rows, fewer than
	// MinLeaf.
	rare := &Data{F: 2, Group: []int{0, 40, 80}}
	for r := range 80 {
		x0 := float32(r%40) / 40
		rare.X = append(rare.X, x0, float32(r%7))
		rare.Label = append(rare.Label, b2f(r%40 < 4))
	}
	for _, c := range []struct {
		d   *Data
		cfg Config
	}{
		{planted(8, 200, 30, 10), Config{Trees: 1, MinLeaf: 50, Depth: 3, LearningRate: 0.3, L2: 2}},
		{planted(8, 200, 30, 10), Config{Trees: 1}},
		{rare, Config{Trees: 1, MinLeaf: 10, Depth: 2}},
	} {
		d, cfg := c.d, c.cfg
		f, _, err := Train(context.Background(), d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := cfg.resolve()
		tr := newTrainer(d, rc)
		tr.gradients()
		nodes := f.Trees[0].Nodes
		type sums struct {
			g, h  float64
			n     int
			depth int
		}
		at := make([]sums, len(nodes))
		for r := range d.Label {
			x := row(d, r)
			i, depth := int32(0), 0
			for {
				at[i].g += tr.gh[r].g
				at[i].h += tr.gh[r].h
				at[i].n++
				at[i].depth = depth
				n := nodes[i]
				if n.Feature < 0 {
					break
				}
				if x[n.Feature] <= n.Threshold {
					i = n.Left
				} else {
					i = n.Right
				}
				depth++
			}
		}
		leaves := 0
		for i, n := range nodes {
			s := at[i]
			want := -s.g / (s.h + rc.L2) * rc.LearningRate
			if math.Abs(float64(n.Value)-want) > 1e-5*math.Abs(want)+1e-9 {
				t.Errorf("%+v node %d: value %v, want %v", cfg, i, n.Value, want)
			}
			if s.n < rc.MinLeaf {
				t.Errorf("%+v node %d: %d rows < MinLeaf %d", cfg, i, s.n, rc.MinLeaf)
			}
			if s.depth > rc.Depth {
				t.Errorf("%+v node %d at depth %d > %d", cfg, i, s.depth, rc.Depth)
			}
			if n.Feature < 0 {
				leaves++
			}
		}
		if leaves < 2 || leaves > 1<<rc.Depth {
			t.Errorf("%+v: %d leaves", cfg, leaves)
		}
	}
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

func TestContributions(t *testing.T) {
	d := planted(9, 200, 30, 10)
	trained, _, err := Train(context.Background(), d, Config{Trees: 50})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []*Forest{trained, randomForest(2, 100, 5, 6)} {
		dst := make([]float32, f.F)
		x := make([]float32, f.F)
		for range 500 {
			for i := range x {
				x[i] = rng.Float32()*1.2 - 0.1
			}
			clear(dst)
			f.Contributions(x, dst)
			var sum float64
			for _, c := range dst {
				sum += float64(c)
			}
			sum += float64(f.Bias())
			p := float64(f.Predict(x))
			if math.Abs(sum-p) > 1e-4*math.Max(1, math.Abs(p)) {
				t.Fatalf("Sum(contributions)+Bias = %v, Predict = %v", sum, p)
			}
		}
	}
	// Contributions adds to dst.
	x := row(d, 0)
	a := make([]float32, trained.F)
	trained.Contributions(x, a)
	b := slices.Clone(a)
	trained.Contributions(x, b)
	for i := range a {
		if math.Abs(float64(b[i]-2*a[i])) > 1e-5*math.Max(1, math.Abs(float64(a[i]))) {
			t.Fatalf("second call: %v, want twice %v", b, a)
		}
	}
	// Only split features contribute, and the planted ones most.
	var bias float32
	for _, tr := range trained.Trees {
		bias += tr.Nodes[0].Value
	}
	if bias != trained.Bias() {
		t.Errorf("Bias %v, want %v", trained.Bias(), bias)
	}
}

func TestZeroAllocs(t *testing.T) {
	f := randomForest(1, 100, 4, 25)
	x := make([]float32, 25)
	dst := make([]float32, 25)
	var sink float32
	if n := testing.AllocsPerRun(100, func() { sink += f.Predict(x) }); n != 0 {
		t.Errorf("Predict: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { f.Contributions(x, dst) }); n != 0 {
		t.Errorf("Contributions: %v allocs", n)
	}
	_ = sink
}

func TestValidate(t *testing.T) {
	leaf := func(v float32) Node { return Node{Feature: -1, Value: v} }
	split := func(f int32, thr float32, l, r int32) Node {
		return Node{Feature: f, Threshold: thr, Left: l, Right: r}
	}
	good := func() *Forest {
		return &Forest{F: 2, Trees: []Tree{
			{Nodes: []Node{split(0, 0.5, 1, 2), leaf(-1), split(1, 0, 3, 4), leaf(0.5), leaf(2)}},
			{Nodes: []Node{leaf(0.25)}},
		}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good forest: %v", err)
	}
	if err := (&Forest{F: 3}).Validate(); err != nil {
		t.Errorf("forest of no trees: %v", err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	many := &Forest{F: 1, Trees: make([]Tree, maxTrees+1)}
	for i := range many.Trees {
		many.Trees[i].Nodes = []Node{leaf(0)}
	}
	big := &Forest{F: 1, Trees: []Tree{{Nodes: make([]Node, maxNodes+1)}}}
	for i := range big.Trees[0].Nodes {
		big.Trees[0].Nodes[i] = leaf(0)
	}
	cases := []struct {
		name string
		edit func(f *Forest)
		f    *Forest
		want string
	}{
		{name: "F=0", edit: func(f *Forest) { f.F = 0 }, want: "F = 0"},
		{name: "F<0", edit: func(f *Forest) { f.F = -3 }, want: "F = -3"},
		{name: "F huge", edit: func(f *Forest) { f.F = maxFeatures + 1 }, want: "features"},
		{name: "empty tree", edit: func(f *Forest) { f.Trees[1].Nodes = nil }, want: "tree 1 has no nodes"},
		{name: "child to itself", edit: func(f *Forest) { f.Trees[0].Nodes[2].Left = 2 }, want: "tree 0 node 2: left child 2"},
		{name: "child backwards", edit: func(f *Forest) { f.Trees[0].Nodes[2].Right = 1 }, want: "tree 0 node 2: right child 1"},
		{name: "child to root", edit: func(f *Forest) { f.Trees[0].Nodes[2].Left = 0 }, want: "tree 0 node 2: left child 0"},
		{name: "child out of range", edit: func(f *Forest) { f.Trees[0].Nodes[0].Right = 5 }, want: "tree 0 node 0: right child 5"},
		{name: "child negative", edit: func(f *Forest) { f.Trees[0].Nodes[0].Left = -1 }, want: "tree 0 node 0: left child -1"},
		{name: "split as last node", edit: func(f *Forest) { f.Trees[1].Nodes[0] = split(0, 1, 1, 1) }, want: "tree 1 node 0: left child 1"},
		{name: "feature ≥ F", edit: func(f *Forest) { f.Trees[0].Nodes[2].Feature = 2 }, want: "tree 0 node 2: feature 2"},
		{name: "feature < -1", edit: func(f *Forest) { f.Trees[0].Nodes[3].Feature = -2 }, want: "tree 0 node 3: feature -2"},
		{name: "NaN value", edit: func(f *Forest) { f.Trees[0].Nodes[4].Value = nan }, want: "tree 0 node 4: value NaN"},
		{name: "Inf value", edit: func(f *Forest) { f.Trees[1].Nodes[0].Value = -inf }, want: "tree 1 node 0: value -Inf"},
		{name: "huge value", edit: func(f *Forest) { f.Trees[0].Nodes[1].Value = 1e30 }, want: "tree 0 node 1: value"},
		{name: "Inf threshold", edit: func(f *Forest) { f.Trees[0].Nodes[0].Threshold = inf }, want: "tree 0 node 0: threshold +Inf"},
		{name: "NaN threshold", edit: func(f *Forest) { f.Trees[0].Nodes[2].Threshold = nan }, want: "tree 0 node 2: threshold NaN"},
		{name: "too many trees", f: many, want: "10001 trees"},
		{name: "too many nodes", f: big, want: "tree 0 has 65537 nodes"},
		{name: "nil", f: nil, want: "nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			if c.edit != nil {
				f = good()
				c.edit(f)
			}
			err := f.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	d := planted(10, 200, 30, 10)
	f, _, err := Train(context.Background(), d, Config{Trees: 40})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var g Forest
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("decoded forest: %v", err)
	}
	if g.F != f.F || len(g.Trees) != len(f.Trees) {
		t.Fatalf("decoded F %d, %d trees; want %d, %d", g.F, len(g.Trees), f.F, len(f.Trees))
	}
	for r := range d.Label {
		if a, b := f.Predict(row(d, r)), g.Predict(row(d, r)); a != b {
			t.Fatalf("row %d: Predict %v before, %v after the round trip", r, a, b)
		}
	}
	for i := range f.Trees {
		if !slices.Equal(f.Trees[i].Nodes, g.Trees[i].Nodes) {
			t.Fatalf("tree %d differs after the round trip", i)
		}
	}
}

func TestDeterministic(t *testing.T) {
	d := planted(12, 200, 30, 10)
	v := planted(13, 100, 30, 10)
	cfg := Config{Trees: 30, Valid: v, EarlyStop: 30}
	var out [2][]byte
	for i := range out {
		f, _, err := Train(context.Background(), d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = json.Marshal(f); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Error("two trainings on the same data differ")
	}
}

// countdown is a context whose Err is Canceled from its n-th call on.
type countdown struct {
	context.Context
	n atomic.Int32
}

func (c *countdown) Err() error {
	if c.n.Add(-1) <= 0 {
		return context.Canceled
	}
	return nil
}

func TestCancel(t *testing.T) {
	d := planted(14, 50, 30, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _, err := Train(ctx, d, Config{})
	if !errors.Is(err, context.Canceled) || f != nil {
		t.Errorf("cancelled before: forest %v, error %v", f, err)
	}
	// Cancelled between trees: the first check passes, the fourth fails.
	c := &countdown{Context: context.Background()}
	c.n.Store(4)
	f, _, err = Train(c, d, Config{Trees: 50})
	if !errors.Is(err, context.Canceled) || f != nil {
		t.Errorf("cancelled during: forest %v, error %v", f, err)
	}
	if c.n.Load() != 0 {
		t.Errorf("context checked %d times, want 4", 4-c.n.Load())
	}
}

func TestNoSignal(t *testing.T) {
	d := planted(15, 30, 30, 10)
	clear(d.Label)
	f, st, err := Train(context.Background(), d, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Trees) != 0 || st.Trees != 0 || st.Rounds != 1 || st.TrainScore != 0 || !math.IsNaN(st.ValidScore) || !math.IsNaN(st.InitValid) {
		t.Errorf("no labels: %d trees, %+v", len(f.Trees), st)
	}
}

func TestBadInput(t *testing.T) {
	good := func() *Data {
		return &Data{F: 2, X: []float32{1, 2, 3, 4, 5, 6}, Label: []float32{0, 1, 0}, Group: []int{0, 2, 3}}
	}
	if _, _, err := Train(context.Background(), good(), Config{Trees: 1, MinLeaf: 1}); err != nil {
		t.Fatalf("good data: %v", err)
	}
	nan := float32(math.NaN())
	cases := []struct {
		name string
		edit func(d *Data, c *Config)
	}{
		{"nil data", nil},
		{"F=0", func(d *Data, c *Config) { d.F = 0 }},
		{"short X", func(d *Data, c *Config) { d.X = d.X[:5] }},
		{"no rows", func(d *Data, c *Config) { d.X, d.Label, d.Group = nil, nil, []int{0} }},
		{"Init length", func(d *Data, c *Config) { d.Init = []float32{1} }},
		{"Init NaN", func(d *Data, c *Config) { d.Init = []float32{1, nan, 0} }},
		{"negative label", func(d *Data, c *Config) { d.Label[1] = -1 }},
		{"NaN label", func(d *Data, c *Config) { d.Label[1] = nan }},
		{"Group start", func(d *Data, c *Config) { d.Group = []int{1, 3} }},
		{"Group empty", func(d *Data, c *Config) { d.Group = nil }},
		{"Group decreasing", func(d *Data, c *Config) { d.Group = []int{0, 2, 1, 3} }},
		{"Group end", func(d *Data, c *Config) { d.Group = []int{0, 2} }},
		{"Weight length", func(d *Data, c *Config) { d.Weight = []float32{1} }},
		{"Weight negative", func(d *Data, c *Config) { d.Weight = []float32{1, -1} }},
		{"Trees", func(d *Data, c *Config) { c.Trees = maxTrees + 1 }},
		{"Depth", func(d *Data, c *Config) { c.Depth = 16 }},
		{"Bins 1", func(d *Data, c *Config) { c.Bins = 1 }},
		{"Bins 257", func(d *Data, c *Config) { c.Bins = 257 }},
		{"LearningRate", func(d *Data, c *Config) { c.LearningRate = -0.1 }},
		{"L2", func(d *Data, c *Config) { c.L2 = math.Inf(1) }},
		{"Sigma", func(d *Data, c *Config) { c.Sigma = math.NaN() }},
		{"MinLeaf", func(d *Data, c *Config) { c.MinLeaf = -1 }},
		{"K", func(d *Data, c *Config) { c.K = -1 }},
		{"EarlyStop", func(d *Data, c *Config) { c.EarlyStop = -1 }},
		{"Valid F", func(d *Data, c *Config) { v := good(); v.F, v.X = 1, v.X[:3]; c.Valid = v }},
		{"Valid broken", func(d *Data, c *Config) { v := good(); v.Group = []int{0, 1}; c.Valid = v }},
	}
	for _, c := range cases {
		d, cfg := good(), Config{Trees: 1, MinLeaf: 1}
		if c.edit == nil {
			d = nil
		} else {
			c.edit(d, &cfg)
		}
		if f, _, err := Train(context.Background(), d, cfg); err == nil || f != nil {
			t.Errorf("%s: forest %v, error %v", c.name, f, err)
		}
	}
}

func TestBinning(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var scratch []uint32
	for _, n := range []int{0, 1, 5, 300, 5000} {
		v := make([]float32, n)
		for i := range v {
			switch rng.IntN(6) {
			case 0:
				v[i] = 0
			case 1:
				v[i] = float32(math.Copysign(0, -1))
			case 2:
				v[i] = float32(rng.IntN(10) - 5)
			default:
				v[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10)))
			}
		}
		want := slices.Clone(v)
		slices.Sort(want)
		sortFloat32s(v, &scratch)
		for i := range v {
			if v[i] != want[i] {
				t.Fatalf("n %d: sorted %v, want %v", n, v, want)
			}
		}
	}
	linear := func(cuts []float32, x float32) uint8 {
		for b, c := range cuts {
			if x <= c {
				return uint8(b)
			}
		}
		return uint8(len(cuts))
	}
	for ncuts := range 40 {
		cuts := make([]float32, ncuts)
		for i := range cuts {
			cuts[i] = float32(i) - 3
		}
		for _, x := range []float32{-100, -3, -2.5, 0, 1, 35, 36, 36.5, 1e9, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			if got, want := binOf(cuts, x), linear(cuts, x); got != want {
				t.Fatalf("%d cuts, x %v: bin %d, want %d", ncuts, x, got, want)
			}
		}
	}
	// Heavy ties: a feature that is 0 on 90% of the rows still gets edges
	// above 0, and one of two values gets a single edge.
	vals := make([]float32, 10000)
	for i := range vals {
		if i%10 == 0 {
			vals[i] = float32(i)
		}
	}
	if cuts := cutsFor(slices.Clone(vals), 64, &scratch); len(cuts) < 2 || cuts[0] != 0 || len(cuts) > 63 {
		t.Errorf("cuts of a 90%%-zero feature: %v", cuts)
	}
	if cuts := cutsFor([]float32{1, 0, 1, 0}, 64, &scratch); !slices.Equal(cuts, []float32{0}) {
		t.Errorf("cuts of a binary feature: %v", cuts)
	}
}

// TestPredictRowsIsPredict: scoring rows tree by tree gives Predict's
// output bit for bit, for forests of an odd and an even number of trees.
func TestPredictRowsIsPredict(t *testing.T) {
	const F = 9
	d := synth(3, 1, 37, F, 10)
	for _, trees := range []int{0, 1, 2, 7, 40} {
		f := randomForest(uint64(trees), trees, 4, F)
		got := make([]float32, 37)
		f.PredictRows(d.X, F, got)
		for i := range got {
			if want := f.Predict(row(d, i)); math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("%d trees, row %d: PredictRows %v, Predict %v", trees, i, got[i], want)
			}
		}
	}
}
