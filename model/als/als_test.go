package als

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// exactSolve solves (G + λI + Σ(c−1) y yᵀ) x = Σ c y by Gaussian elimination.
func exactSolve(m *Model, items []int32, weights []float32) []float64 {
	k := m.cfg.Factors
	a := make([]float64, k*k)
	b := make([]float64, k)
	copy(a, m.gram)
	for i := range k {
		a[i*k+i] += float64(m.cfg.Lambda)
	}
	for n, it := range items {
		y := m.ItemVec(int(it))
		cw := float64(m.cfg.Alpha * weights[n])
		for p := range k {
			b[p] += (1 + cw) * float64(y[p])
			for q := range k {
				a[p*k+q] += cw * float64(y[p]) * float64(y[q])
			}
		}
	}
	for col := range k {
		piv := col
		for r := col + 1; r < k; r++ {
			if math.Abs(a[r*k+col]) > math.Abs(a[piv*k+col]) {
				piv = r
			}
		}
		for c := range k {
			a[col*k+c], a[piv*k+c] = a[piv*k+c], a[col*k+c]
		}
		b[col], b[piv] = b[piv], b[col]
		for r := col + 1; r < k; r++ {
			f := a[r*k+col] / a[col*k+col]
			for c := col; c < k; c++ {
				a[r*k+c] -= f * a[col*k+c]
			}
			b[r] -= f * b[col]
		}
	}
	x := make([]float64, k)
	for r := k - 1; r >= 0; r-- {
		s := b[r]
		for c := r + 1; c < k; c++ {
			s -= a[r*k+c] * x[c]
		}
		x[r] = s / a[r*k+r]
	}
	return x
}

func randomEntries(users, items, n int, seed uint64) []Entry {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{User: int32(rng.IntN(users)), Item: int32(rng.IntN(items)), Weight: float32(1 + rng.IntN(3))}
	}
	return out
}

// TestFoldInMatchesExactSolve: folding a user in with as many CG steps as
// factors gives the exact least-squares answer.
func TestFoldInMatchesExactSolve(t *testing.T) {
	m, err := Train(context.Background(), 60, 40, randomEntries(60, 40, 900, 3), Config{Factors: 8, Iterations: 5, CGSteps: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	items := []int32{1, 5, 9, 9, 30}
	weights := []float32{1, 2, 1, 1, 3}
	got := m.FoldIn(items, weights, 8)
	want := exactSolve(m, []int32{1, 5, 9, 30}, []float32{1, 2, 2, 3})
	for a := range want {
		if math.Abs(float64(got[a])-want[a]) > 1e-3*(1+math.Abs(want[a])) {
			t.Fatalf("factor %d: fold-in %v, exact %v", a, got[a], want[a])
		}
	}
}

// TestTrainingFitsTheData: observed pairs score higher than unobserved ones
// after training, and more iterations do not make that worse.
func TestTrainingFitsTheData(t *testing.T) {
	entries := randomEntries(80, 50, 1200, 7)
	seen := map[[2]int32]bool{}
	for _, e := range entries {
		seen[[2]int32{e.User, e.Item}] = true
	}
	gap := func(iters int) float64 {
		m, err := Train(context.Background(), 80, 50, entries, Config{Factors: 16, Iterations: iters}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var in, out float64
		var nin, nout int
		for u := range 80 {
			for i := range 50 {
				s := float64(m.Score(m.UserVec(u), i))
				if seen[[2]int32{int32(u), int32(i)}] {
					in += s
					nin++
				} else {
					out += s
					nout++
				}
			}
		}
		return in/float64(nin) - out/float64(nout)
	}
	g1, g10 := gap(1), gap(10)
	if g10 <= 0.1 || g10 < g1*0.9 {
		t.Fatalf("mean score gap observed − unobserved: %.3f after 1 iteration, %.3f after 10", g1, g10)
	}
}

func TestTrainRefusesEmpty(t *testing.T) {
	if _, err := Train(context.Background(), 0, 0, nil, Config{}, nil); err == nil {
		t.Fatal("empty data accepted")
	}
}

func BenchmarkFoldIn100(b *testing.B) {
	m, err := Train(context.Background(), 500, 3000, randomEntries(500, 3000, 50000, 11), Config{Factors: 64, Iterations: 2}, nil)
	if err != nil {
		b.Fatal(err)
	}
	items := make([]int32, 100)
	weights := make([]float32, 100)
	for i := range items {
		items[i], weights[i] = int32(i*29%3000), 1
	}
	b.ReportAllocs()
	for b.Loop() {
		m.FoldIn(items, weights, 3)
	}
}

// BenchmarkTrain1M is the ml-1m shape: 6,000 users, 3,700 items, 1M
// interactions, 64 factors, 10 iterations.
func BenchmarkTrain1M(b *testing.B) {
	entries := randomEntries(6000, 3700, 1_000_000, 13)
	for b.Loop() {
		if _, err := Train(context.Background(), 6000, 3700, entries, Config{Factors: 64, Iterations: 10}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// cancelAfter is a context that is done from its n-th Err call on: the
// training asks before each chunk of rows, so it is cancelled at a known
// chunk, on a machine of any speed.
type cancelAfter struct {
	context.Context
	calls atomic.Int64
	n     int64
}

func (c *cancelAfter) Err() error {
	if c.calls.Add(1) >= c.n {
		return context.Canceled
	}
	return nil
}

// TestTrainStopsWithinAHalfStep: cancelling stops a training inside a
// half-step (within one chunk of rows), not after it: a shutdown need not
// wait for a half-step over millions of rows.
func TestTrainStopsWithinAHalfStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const users, items = 40_000, 2_000 // 157 chunks of rows a half-step
	entries := make([]Entry, 0, users*40)
	for u := range users {
		for range 40 {
			entries = append(entries, Entry{User: int32(u), Item: int32(rng.IntN(items)), Weight: 1})
		}
	}
	ctx := &cancelAfter{Context: context.Background(), n: 3} // after two chunks of the first half-step
	steps := 0
	_, err := Train(ctx, users, items, entries, Config{Factors: 64, Iterations: 3, CGSteps: 3, Workers: 1, Seed: 1}, func(done, total int) { steps++ })
	if err == nil {
		t.Fatal("a cancelled training returned a model")
	}
	if steps > 0 {
		t.Fatalf("the training finished %d half-steps after it was cancelled", steps)
	}
	if c := ctx.calls.Load(); c > 5 {
		t.Fatalf("the training asked whether it was cancelled %d times after it was, want it to stop at once", c-3)
	}
}
