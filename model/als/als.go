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
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
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
	m := &Matrix{Rows: rows, ptr: make([]int32, rows+1), idx: idx[:0], weight: w[:0]}
	// Sum duplicates within each row (sorted by column) and drop
	// non-positive totals, compacting in place: the output never runs ahead
	// of the input.
	type cell struct {
		c int32
		w float32
	}
	var buf []cell
	for r := range rows {
		buf = buf[:0]
		for k := count[r]; k < count[r+1]; k++ {
			buf = append(buf, cell{idx[k], w[k]})
		}
		slices.SortStableFunc(buf, func(a, b cell) int { return int(a.c) - int(b.c) })
		for i := 0; i < len(buf); {
			j, sum := i, float32(0)
			for ; j < len(buf) && buf[j].c == buf[i].c; j++ {
				sum += buf[j].w
			}
			if sum > 0 {
				m.idx = append(m.idx, buf[i].c)
				m.weight = append(m.weight, sum)
			}
			i = j
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

// ErrNothing is returned by Train when there is no interaction to learn from.
var ErrNothing = errors.New("als: nothing to train on")

// Train factorises the users × items matrix of entries. progress, when not
// nil, is told after every half-step (users solved, then items solved) how
// many of the 2·Iterations half-steps are done. Train stops early with
// ctx's error when ctx is done.
func Train(ctx context.Context, users, items int, entries []Entry, cfg Config, progress func(done, total int)) (*Model, error) {
	cfg.fill()
	if users == 0 || items == 0 || len(entries) == 0 {
		return nil, ErrNothing
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
		for half, side := range [2]struct {
			x, y []float32
			mat  *Matrix
		}{{m.Users, m.Items, byUser}, {m.Items, m.Users, byItem}} {
			solveAll(ctx, side.x, side.y, side.mat, gram(side.y, k), cfg)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if progress != nil {
				progress(2*it+half+1, 2*cfg.Iterations)
			}
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

// solveAll updates every row vector of x against the fixed factors y. It
// stops within one chunk of rows once ctx is done (x is then half updated:
// the caller discards it).
func solveAll(ctx context.Context, x, y []float32, mat *Matrix, g []float64, cfg Config) {
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
				if start >= mat.Rows || ctx.Err() != nil {
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
		out[a] = float64(cfg.Lambda)*v[a] + dotN(g[a*k:(a+1)*k], v)
	}
	for n, c := range cols {
		yi := y[int(c)*k : (int(c)+1)*k]
		f := float64(cfg.Alpha*w[n]) * dot32x64(yi, v)
		axpy(out, yi, f)
	}
}

// dot32x64 is Σ a[i]·b[i], four accumulators so the loads overlap.
func dot32x64(a []float32, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * b[i]
		s1 += float64(a[i+1]) * b[i+1]
		s2 += float64(a[i+2]) * b[i+2]
		s3 += float64(a[i+3]) * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * b[i]
	}
	return s0 + s1 + s2 + s3
}

// axpy adds f·y to out.
func axpy(out []float64, y []float32, f float64) {
	out = out[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		out[i] += f * float64(y[i])
		out[i+1] += f * float64(y[i+1])
		out[i+2] += f * float64(y[i+2])
		out[i+3] += f * float64(y[i+3])
	}
	for ; i < len(y); i++ {
		out[i] += f * float64(y[i])
	}
}

// Dot is Σ a[i]·b[i] over float32 vectors of the same length.
func Dot(a, b []float32) float32 { return dotN(a, b) }

// dotN is Σ a[i]·b[i] with four accumulators, so the loads overlap.
func dotN[T float32 | float64](a, b []T) T {
	b = b[:len(a)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
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
	rs := dotN(s.r, s.r)
	for range steps {
		if rs < 1e-20 {
			break
		}
		s.mul(s.ap, s.p, y, cols, w, g, cfg)
		alpha := rs / dotN(s.p, s.ap)
		for a := range k {
			xv[a] += alpha * s.p[a]
			s.r[a] -= alpha * s.ap[a]
		}
		rsNew := dotN(s.r, s.r)
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

// NewModel wraps trained factors (users × Factors and items × Factors, row
// major) as a Model, e.g. after reading them from a file.
func NewModel(cfg Config, users, items []float32) (*Model, error) {
	cfg.fill()
	k := cfg.Factors
	if len(users)%k != 0 || len(items)%k != 0 {
		return nil, errors.New("als: factor arrays are not a whole number of vectors")
	}
	return &Model{cfg: cfg, Users: users, Items: items, gram: gram(items, k), nu: len(users) / k, ni: len(items) / k}, nil
}

// Config is the configuration the model was trained with (defaults filled).
func (m *Model) Config() Config { return m.cfg }

// NumUsers and NumItems are the rows of the two factor matrices.
func (m *Model) NumUsers() int { return m.nu }

// NumItems is the number of item vectors.
func (m *Model) NumItems() int { return m.ni }

// UserGram computes XᵀX of the user factors, which FoldInItem needs; it is
// computed once and passed in because it costs users × Factors².
func (m *Model) UserGram() []float64 { return gram(m.Users, m.cfg.Factors) }

// FoldIn solves a user vector against the trained item factors from the
// user's weighted items (repeated items summed), with steps of conjugate
// gradient from zero; steps = Factors gives the exact least-squares answer
// up to rounding.
func (m *Model) FoldIn(items []int32, weights []float32, steps int) []float32 {
	return m.FoldInFrom(nil, items, weights, steps)
}

// FoldInFrom is FoldIn warm-started from x0 (a previous answer for the same
// user; nil starts from zero): a few steps then refine rather than restart.
func (m *Model) FoldInFrom(x0 []float32, items []int32, weights []float32, steps int) []float32 {
	return foldIn(m.Items, m.ni, m.gram, m.cfg, x0, items, weights, steps)
}

// FoldInItem solves an item vector against the trained user factors from the
// users who touched it (weights summed per user), the mirror of FoldIn: it
// gives items that arrived after training a vector. g is UserGram().
func (m *Model) FoldInItem(g []float64, users []int32, weights []float32, steps int) []float32 {
	return foldIn(m.Users, m.nu, g, m.cfg, nil, users, weights, steps)
}

func foldIn(y []float32, rows int, g []float64, cfg Config, x0 []float32, items []int32, weights []float32, steps int) []float32 {
	sum := make(map[int32]float32, len(items))
	cols := make([]int32, 0, len(items))
	for n, it := range items {
		if int(it) >= rows || it < 0 {
			continue
		}
		if _, ok := sum[it]; !ok {
			cols = append(cols, it)
		}
		sum[it] += weights[n]
	}
	kept := cols[:0]
	w := make([]float32, 0, len(cols))
	for _, c := range cols {
		if sum[c] > 0 {
			kept = append(kept, c)
			w = append(w, sum[c])
		}
	}
	x := make([]float32, cfg.Factors)
	copy(x, x0)
	newSolver(cfg.Factors).solve(x, y, kept, w, g, cfg, steps)
	return x
}

// Score is the dot product of a user vector and item i.
func (m *Model) Score(x []float32, i int) float32 { return Dot(x, m.ItemVec(i)) }
