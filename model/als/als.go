// Package als is implicit-feedback matrix factorisation: alternating least
// squares (Hu, Koren & Volinsky 2008) with conjugate-gradient solves
// (Takács, Pilászy & Tikk 2011), float32 factors in flat arrays, users and
// items solved in parallel.
//
// A trained Model is immutable; FoldIn solves one user's vector against its
// fixed item factors, so a new event can be reflected at once without
// retraining. Everything here is safe for concurrent use once Train returns.
package als

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Config tunes training.
type Config struct {
	Factors    int     // vector length (default 64)
	Lambda     float32 // L2 regularisation (default 0.05)
	Alpha      float32 // confidence: c = 1 + Alpha·weight (default 10)
	Iterations int     // alternations (default 10)
	CGSteps    int     // conjugate-gradient steps per solve (default 3)
	Seed       uint64
	Workers    int // goroutines (default GOMAXPROCS)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Factors: 64, Lambda: 0.05, Alpha: 10, Iterations: 10, CGSteps: 3, Seed: 1}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Factors <= 0 {
		c.Factors = d.Factors
	}
	if c.Lambda <= 0 {
		c.Lambda = d.Lambda
	}
	if c.Alpha <= 0 {
		c.Alpha = d.Alpha
	}
	if c.Iterations <= 0 {
		c.Iterations = d.Iterations
	}
	if c.CGSteps <= 0 {
		c.CGSteps = d.CGSteps
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
}

// Entry is one observed (user, item, weight); repeated pairs add up.
type Entry struct {
	User, Item int32
	Weight     float32
}

// Matrix is a sparse user×item matrix in compressed rows.
type Matrix struct {
	Rows   int
	ptr    []int32
	idx    []int32
	weight []float32
}

// NewMatrix builds rows × cols compressed rows from entries (weights of a
// repeated pair are summed; non-positive totals are dropped).
func NewMatrix(rows int, entries []Entry, byItem bool) *Matrix {
	count := make([]int32, rows+1)
	for _, e := range entries {
		r := e.User
		if byItem {
			r = e.Item
		}
		count[r+1]++
	}
	for i := 1; i <= rows; i++ {
		count[i] += count[i-1]
	}
	idx := make([]int32, len(entries))
	w := make([]float32, len(entries))
	pos := append([]int32(nil), count[:rows]...)
	for _, e := range entries {
		r, c := e.User, e.Item
		if byItem {
			r, c = e.Item, e.User
		}
		idx[pos[r]], w[pos[r]] = c, e.Weight
		pos[r]++
	}
	m := &Matrix{Rows: rows, ptr: make([]int32, rows+1)}
	// Sum duplicates within each row and drop non-positive totals.
	for r := range rows {
		sum := map[int32]float32{}
		var order []int32
		for k := count[r]; k < count[r+1]; k++ {
			if _, ok := sum[idx[k]]; !ok {
				order = append(order, idx[k])
			}
			sum[idx[k]] += w[k]
		}
		for _, c := range order {
			if sum[c] > 0 {
				m.idx = append(m.idx, c)
				m.weight = append(m.weight, sum[c])
			}
		}
		m.ptr[r+1] = int32(len(m.idx))
	}
	return m
}

// Row returns the columns and weights of row r.
func (m *Matrix) Row(r int) ([]int32, []float32) {
	return m.idx[m.ptr[r]:m.ptr[r+1]], m.weight[m.ptr[r]:m.ptr[r+1]]
}

// Model is a trained factorisation.
type Model struct {
	cfg   Config
	Users []float32 // Rows × Factors
	Items []float32 // Items × Factors
	gram  []float64 // YᵀY of the item factors (Factors × Factors)
	nu    int
	ni    int
}

// Factors is the vector length.
func (m *Model) Factors() int { return m.cfg.Factors }

// UserVec returns user u's vector.
func (m *Model) UserVec(u int) []float32 {
	k := m.cfg.Factors
	return m.Users[u*k : (u+1)*k]
}

// ItemVec returns item i's vector.
func (m *Model) ItemVec(i int) []float32 {
	k := m.cfg.Factors
	return m.Items[i*k : (i+1)*k]
}

// Train factorises the users × items matrix of entries.
func Train(users, items int, entries []Entry, cfg Config, progress func(iteration int)) (*Model, error) {
	cfg.fill()
	if users == 0 || items == 0 || len(entries) == 0 {
		return nil, errors.New("als: nothing to train on")
	}
	byUser := NewMatrix(users, entries, false)
	byItem := NewMatrix(items, entries, true)
	k := cfg.Factors
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e995))
	m := &Model{cfg: cfg, Users: make([]float32, users*k), Items: make([]float32, items*k), nu: users, ni: items}
	scale := float32(0.1 / math.Sqrt(float64(k)))
	for i := range m.Users {
		m.Users[i] = (rng.Float32()*2 - 1) * scale
	}
	for i := range m.Items {
		m.Items[i] = (rng.Float32()*2 - 1) * scale
	}
	for it := range cfg.Iterations {
		solveAll(m.Users, m.Items, byUser, gram(m.Items, k), cfg)
		solveAll(m.Items, m.Users, byItem, gram(m.Users, k), cfg)
		if progress != nil {
			progress(it + 1)
		}
	}
	m.gram = gram(m.Items, k)
	return m, nil
}

// gram computes FᵀF of row-major factors F (n × k), in float64.
func gram(f []float32, k int) []float64 {
	g := make([]float64, k*k)
	for off := 0; off < len(f); off += k {
		v := f[off : off+k]
		for a := range k {
			va := float64(v[a])
			row := g[a*k : (a+1)*k]
			for b := a; b < k; b++ {
				row[b] += va * float64(v[b])
			}
		}
	}
	for a := range k {
		for b := 0; b < a; b++ {
			g[a*k+b] = g[b*k+a]
		}
	}
	return g
}

// solveAll updates every row vector of x against the fixed factors y.
func solveAll(x, y []float32, mat *Matrix, g []float64, cfg Config) {
	k := cfg.Factors
	var wg sync.WaitGroup
	var next sync.Mutex
	row := 0
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSolver(k)
			for {
				next.Lock()
				start := row
				row += 256
				next.Unlock()
				if start >= mat.Rows {
					return
				}
				for r := start; r < min(start+256, mat.Rows); r++ {
					cols, w := mat.Row(r)
					s.solve(x[r*k:(r+1)*k], y, cols, w, g, cfg, cfg.CGSteps)
				}
			}
		}()
	}
	wg.Wait()
}

type solver struct {
	k             int
	r, p, ap, tmp []float64
}

func newSolver(k int) *solver {
	return &solver{k: k, r: make([]float64, k), p: make([]float64, k), ap: make([]float64, k), tmp: make([]float64, k)}
}

// mul computes A·v = (G + λI)v + Σ_i (c_i − 1)(y_i·v) y_i into out.
func (s *solver) mul(out, v []float64, y []float32, cols []int32, w []float32, g []float64, cfg Config) {
	k := s.k
	for a := range k {
		sum := float64(cfg.Lambda) * v[a]
		row := g[a*k : (a+1)*k]
		for b := range k {
			sum += row[b] * v[b]
		}
		out[a] = sum
	}
	for n, c := range cols {
		yi := y[int(c)*k : (int(c)+1)*k]
		var dot float64
		for a := range k {
			dot += float64(yi[a]) * v[a]
		}
		f := float64(cfg.Alpha*w[n]) * dot
		for a := range k {
			out[a] += f * float64(yi[a])
		}
	}
}

// solve runs steps of conjugate gradient on A x = b, b = Σ_i c_i y_i,
// starting from the current x (warm start).
func (s *solver) solve(x []float32, y []float32, cols []int32, w []float32, g []float64, cfg Config, steps int) {
	k := s.k
	xv := s.tmp
	for a := range k {
		xv[a] = float64(x[a])
	}
	// r = b − A x
	s.mul(s.ap, xv, y, cols, w, g, cfg)
	for a := range k {
		s.r[a] = -s.ap[a]
	}
	for n, c := range cols {
		conf := 1 + float64(cfg.Alpha*w[n])
		yi := y[int(c)*k : (int(c)+1)*k]
		for a := range k {
			s.r[a] += conf * float64(yi[a])
		}
	}
	copy(s.p, s.r)
	rs := dot(s.r, s.r)
	for range steps {
		if rs < 1e-20 {
			break
		}
		s.mul(s.ap, s.p, y, cols, w, g, cfg)
		alpha := rs / dot(s.p, s.ap)
		for a := range k {
			xv[a] += alpha * s.p[a]
			s.r[a] -= alpha * s.ap[a]
		}
		rsNew := dot(s.r, s.r)
		beta := rsNew / rs
		for a := range k {
			s.p[a] = s.r[a] + beta*s.p[a]
		}
		rs = rsNew
	}
	for a := range k {
		x[a] = float32(xv[a])
	}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// FoldIn solves a user vector against the trained item factors from the
// user's weighted items (repeated items summed), with steps of conjugate
// gradient from zero; steps = Factors gives the exact least-squares answer
// up to rounding.
func (m *Model) FoldIn(items []int32, weights []float32, steps int) []float32 {
	sum := map[int32]float32{}
	var cols []int32
	for n, it := range items {
		if int(it) >= m.ni || it < 0 {
			continue
		}
		if _, ok := sum[it]; !ok {
			cols = append(cols, it)
		}
		sum[it] += weights[n]
	}
	var kept []int32
	var w []float32
	for _, c := range cols {
		if sum[c] > 0 {
			kept = append(kept, c)
			w = append(w, sum[c])
		}
	}
	x := make([]float32, m.cfg.Factors)
	newSolver(m.cfg.Factors).solve(x, m.Items, kept, w, m.gram, m.cfg, steps)
	return x
}

// Score is the dot product of a user vector and item i.
func (m *Model) Score(x []float32, i int) float32 {
	yi := m.ItemVec(i)
	var s float32
	for a := range x {
		s += x[a] * yi[a]
	}
	return s
}
