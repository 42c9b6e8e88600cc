package stats

import (
	"math"
	"testing"
)

// near reports whether got is within tol of want, relative to |want| when
// |want| > 1 and absolute otherwise.
func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func moments(units [][2]float64) Moments {
	var m Moments
	for _, u := range units {
		m.Add(u[0], u[1], 0)
	}
	return m
}

// bernoulli is an arm of n users with x = 1 of whom k converted (y = 1).
func bernoulli(n, k float64) Moments {
	return Moments{N: n, SumX: n, SumXX: n, SumY: k, SumYY: k, SumXY: k}
}

func TestMomentsByHand(t *testing.T) {
	// Units (x, y): (1, 2), (2, 1), (3, 3).
	//   N = 3, SumX = 6, SumY = 6, SumXX = 14, SumYY = 14, SumXY = 13.
	//   Ratio = 6/6 = 1.
	//   mx = my = 2; sxx = (14 - 12)/2 = 1, syy = 1, sxy = (13 - 12)/2 = 0.5.
	//   RatioVar = (1/4 - 2·2·0.5/8 + 4·1/16)/3 = 0.25/3 = 1/12.
	//   Check by linearisation: (y - x)/mx = 0.5, -0.5, 0 has sample
	//   variance 0.25, and 0.25/N = 1/12.
	m := moments([][2]float64{{1, 2}, {2, 1}, {3, 3}})
	want := Moments{N: 3, SumX: 6, SumY: 6, SumXX: 14, SumYY: 14, SumXY: 13}
	if m != want {
		t.Fatalf("moments = %+v, want %+v", m, want)
	}
	if got := m.Ratio(); got != 1 {
		t.Errorf("Ratio = %v, want 1", got)
	}
	if got := m.RatioVar(); !near(got, 1.0/12, 1e-15) {
		t.Errorf("RatioVar = %v, want 1/12", got)
	}

	// A plain per-user mean (x = 1): y = 1..5, mean 3, sample variance 2.5,
	// so RatioVar = 2.5/5 = 0.5.
	p := moments([][2]float64{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}})
	if got := p.Ratio(); got != 3 {
		t.Errorf("mean Ratio = %v, want 3", got)
	}
	if got := p.RatioVar(); !near(got, 0.5, 1e-15) {
		t.Errorf("mean RatioVar = %v, want 0.5", got)
	}
}

func TestMomentsUpdateAndMerge(t *testing.T) {
	units := [][3]float64{{1, 0, 2}, {4, 1, 3}, {2, 2, 0}, {7, 0, 1}}
	var m Moments
	for _, u := range units {
		m.Add(u[0], u[1], u[2])
	}
	// Unit 1 sees two more impressions and one more click; unit 3 loses its
	// covariate.
	m.Update(4, 1, 3, 6, 2, 3)
	m.Update(7, 0, 1, 7, 0, 0)
	var want Moments
	for _, u := range [][3]float64{{1, 0, 2}, {6, 2, 3}, {2, 2, 0}, {7, 0, 0}} {
		want.Add(u[0], u[1], u[2])
	}
	if m != want {
		t.Errorf("after Update = %+v, want %+v", m, want)
	}

	var a, b Moments
	a.Add(1, 0, 2)
	a.Add(6, 2, 3)
	b.Add(2, 2, 0)
	b.Add(7, 0, 0)
	if got := a.Merge(b); got != want {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
}

func TestRelativeByHand(t *testing.T) {
	tests := []struct {
		name      string
		c, t      Moments
		alpha     float64
		lift      float64
		low, high float64
		p         float64
		sig       bool
	}{
		{
			// Means y = 1..5 against 2..6: Rc = 3, Rt = 4, both RatioVar 0.5.
			// Lift = 4/3 - 1 = 1/3.
			// Var = 0.5/9 + 16·0.5/81 = 12.5/81, se = sqrt(12.5)/9 = 0.392837.
			// z = (1/3)/se = 0.848528, p = 2Φ(-z) = 0.396144.
			// Interval 1/3 ± 1.959964·0.392837 = [-0.436613, 1.103280].
			name:  "means",
			c:     moments([][2]float64{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}}),
			t:     moments([][2]float64{{1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}}),
			alpha: 0.05,
			lift:  1.0 / 3,
			low:   -0.43661323574982114,
			high:  1.1032799024164877,
			p:     0.39614390915207426,
		},
		{
			// Conversion 1,000/10,000 against 1,100/10,000.
			// Var(Rc) = (1000 - 10000·0.01)/9999/10000 = 9.0009e-6,
			// Var(Rt) = (1100 - 10000·0.0121)/9999/10000 = 9.79098e-6.
			// Lift = 0.1; Var = 9.79098e-6/0.01 + 0.0121·9.0009e-6/1e-4
			// = 2.068207e-3, se = 0.0454775, z = 2.19889, p = 0.0278859.
			// Interval 0.1 ± 1.959964·0.0454775 = [0.0108657, 0.189134].
			name:  "conversion",
			c:     bernoulli(10000, 1000),
			t:     bernoulli(10000, 1100),
			alpha: 0.05,
			lift:  0.1,
			low:   0.010865655696982293,
			high:  0.18913434430301745,
			p:     0.027885920300166116,
			sig:   true,
		},
		{
			// The same at alpha = 0.01: z(0.995) = 2.575829, the interval
			// 0.1 ± 0.117143 = [-0.0171434, 0.217143] holds 0.
			name:  "conversion at 1%",
			c:     bernoulli(10000, 1000),
			t:     bernoulli(10000, 1100),
			alpha: 0.01,
			lift:  0.1,
			low:   0.1 - 2.5758293035489004*0.04547754193755493,
			high:  0.1 + 2.5758293035489004*0.04547754193755493,
			p:     0.027885920300166116,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Relative(tt.c, tt.t, tt.alpha)
			if !near(got.Lift, tt.lift, 1e-12) || !near(got.Low, tt.low, 1e-9) ||
				!near(got.High, tt.high, 1e-9) || !near(got.P, tt.p, 1e-9) ||
				got.Significant != tt.sig {
				t.Errorf("Relative = %+v, want lift %v [%v, %v] p %v significant %v",
					got, tt.lift, tt.low, tt.high, tt.p, tt.sig)
			}
		})
	}
}

func TestSequentialByHand(t *testing.T) {
	// c = -2 log 0.05 + log(-2 log 0.05 + 1) = 7.936155, rho² = c/plannedN.
	// With n = 10,000 units per arm, V the delta variance of the lift (as in
	// TestRelativeByHand), sigma² = nV, r = n rho², tau² = rho² sigma²:
	//   hw = sqrt(2(r+1)/(n² rho²) · log(sqrt(r+1)/0.05)) · sigma,
	//   log Lambda = ½ log(V/(V+tau²)) + tau² lift²/(2V(V+tau²)),
	//   P = min(1, 1/Lambda).
	tests := []struct {
		name      string
		t         Moments
		plannedN  float64
		low, high float64
		p         float64
		sig       bool
	}{
		// Lift 0.1, V = 2.068207e-3: significant at a fixed horizon
		// (p = 0.028) but not sequentially.
		// plannedN = n: r = c, hw = 3.035209·se = 0.138034.
		{"at plan", bernoulli(10000, 1100), 10000, -0.038033844149079954, 0.2380338441490797, 0.34925103293036813, false},
		// plannedN = 2,000: r = 5c, hw = 0.143392.
		{"past plan", bernoulli(10000, 1100), 2000, -0.04339207400513442, 0.24339207400513416, 0.6033559308648745, false},
		// plannedN = 50,000: r = c/5, hw = 0.152981.
		{"before plan", bernoulli(10000, 1100), 50000, -0.052981345122512874, 0.2529813451225126, 0.3650058621241843, false},
		// Lift 0.2 (1,200 conversions), V = 2.352235e-3, hw = 0.147207.
		{"significant", bernoulli(10000, 1200), 10000, 0.05279282633549642, 0.3472071736645035, 0.0015710348613690904, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sequential(bernoulli(10000, 1000), tt.t, 0.05, tt.plannedN)
			if !near(got.Low, tt.low, 1e-9) || !near(got.High, tt.high, 1e-9) ||
				!near(got.P, tt.p, 1e-9) || got.Significant != tt.sig {
				t.Errorf("Sequential = %+v, want [%v, %v] p %v significant %v",
					got, tt.low, tt.high, tt.p, tt.sig)
			}
		})
	}
}

func TestConfidenceSequenceConstants(t *testing.T) {
	// At n = plannedN the half-width is 3.035209 standard errors at
	// alpha = 0.05 (r = c = 7.936155:
	// sqrt(2·8.936155/7.936155 · log(sqrt(8.936155)/0.05)) = 3.035209).
	const planned = 5000
	rho := Rho(0.05, planned)
	if got := csHalfWidth(planned, math.Sqrt(planned), rho, 0.05); !near(got, 3.035208990376253, 1e-12) {
		t.Errorf("half-width at plannedN = %v standard errors, want 3.035209", got)
	}
	// Rho minimises the width at plannedN: other tunings are wider there
	// (Rho is a closed-form approximation of the minimiser, so not to every
	// digit; 20% off is visibly worse).
	for _, k := range []float64{0.25, 0.5, 0.8, 1.25, 2, 4} {
		if csHalfWidth(planned, 1, rho*k, 0.05) <= csHalfWidth(planned, 1, rho, 0.05) {
			t.Errorf("rho·%v is no wider at plannedN than rho", k)
		}
	}
	// The sequence is always wider than the fixed-horizon interval
	// (1.96 standard errors), and widens again slowly (like sqrt(log n))
	// far past the plan.
	for _, n := range []float64{10, 100, 1000, 5000, 1e5, 1e7} {
		w := csHalfWidth(n, math.Sqrt(n), rho, 0.05)
		if w <= NormalQuantile(0.975) {
			t.Errorf("n = %v: half-width %v standard errors, not above 1.96", n, w)
		}
	}
}

func TestMSPRTByHand(t *testing.T) {
	// V = 1, tau² = 1, diff = 3: log Lambda = ½ log ½ + 9/4 = 1.903426,
	// P = exp(-1.903426) = 0.149057.
	// diff = 0: Lambda = sqrt(½) < 1, P = 1.
	// diff = 10, V = 4, tau² = 12: ½ log ¼ + 12·100/(2·4·16) = 8.682129,
	// P = 1.6949e-4.
	tests := []struct{ diff, v, tau2, p float64 }{
		{3, 1, 1, math.Exp(-(0.5*math.Log(0.5) + 2.25))},
		{0, 1, 1, 1},
		{10, 4, 12, math.Exp(-(0.5*math.Log(0.25) + 1200.0/128))},
		{1e3, 1, 1, 0}, // exp(-249,999.65) underflows to 0, no overflow
	}
	for _, tt := range tests {
		if got := msprtP(tt.diff, tt.v, tt.tau2); !near(got, tt.p, 1e-12) {
			t.Errorf("msprtP(%v, %v, %v) = %v, want %v", tt.diff, tt.v, tt.tau2, got, tt.p)
		}
	}
	if got := math.Exp(-(0.5*math.Log(0.5) + 2.25)); !near(got, 0.149057, 1e-6) {
		t.Errorf("hand value %v", got)
	}
}

// TestSequentialPAgreesWithInterval checks the package invariant on a grid
// of arms: P < alpha exactly when the interval excludes 0, for both tests.
func TestSequentialPAgreesWithInterval(t *testing.T) {
	c := bernoulli(5000, 500)
	for k := 400.0; k <= 650; k += 2 {
		tr := bernoulli(5000, k)
		for _, alpha := range []float64{0.01, 0.05, 0.1} {
			for _, planned := range []float64{1000, 5000, 50000} {
				s := Sequential(c, tr, alpha, planned)
				if (s.P < alpha) != s.Significant {
					t.Errorf("Sequential k=%v alpha=%v plannedN=%v: P %v, interval [%v, %v]",
						k, alpha, planned, s.P, s.Low, s.High)
				}
			}
			r := Relative(c, tr, alpha)
			if (r.P < alpha) != r.Significant {
				t.Errorf("Relative k=%v alpha=%v: P %v, interval [%v, %v]", k, alpha, r.P, r.Low, r.High)
			}
		}
	}
}

func TestRunning(t *testing.T) {
	var r Running
	if r.P() != 1 || r.Looks() != 0 {
		t.Fatalf("zero Running: P %v, looks %v", r.P(), r.Looks())
	}
	c := bernoulli(10000, 1000)
	// A strong look, then weaker ones: P keeps the strongest.
	first := r.Look(c, bernoulli(10000, 1200), 0.05, 10000)
	want := Sequential(c, bernoulli(10000, 1200), 0.05, 10000).P
	if first.P != want {
		t.Errorf("first look P = %v, want Sequential's %v", first.P, want)
	}
	for _, k := range []float64{1100, 1000, 1150, 0, 1250} {
		prev := r.P()
		got := r.Look(c, bernoulli(10000, k), 0.05, 10000)
		seq := Sequential(c, bernoulli(10000, k), 0.05, 10000)
		if got.P > prev || got.P != math.Min(prev, seq.P) || got.P != r.P() {
			t.Errorf("k=%v: P %v after %v (this look %v)", k, got.P, prev, seq.P)
		}
		if got.Low != seq.Low || got.High != seq.High || got.Significant != seq.Significant {
			t.Errorf("k=%v: interval %+v, want this look's %+v", k, got, seq)
		}
	}
	if r.Looks() != 6 {
		t.Errorf("looks = %v, want 6", r.Looks())
	}
}

func TestEdgeCases(t *testing.T) {
	one := bernoulli(1, 1)
	ok := bernoulli(1000, 100)
	tests := []struct {
		name    string
		c, t    Moments
		liftNaN bool
	}{
		{"both empty", Moments{}, Moments{}, true},
		{"control empty", Moments{}, ok, true},
		{"treatment empty", ok, Moments{}, true},
		{"zero control ratio", bernoulli(1000, 0), ok, true},
		{"zero denominator", Moments{N: 10, SumY: 3, SumYY: 3}, ok, true},
		{"one unit each", one, one, false},
		{"one control unit", one, ok, false},
		{"no variance", bernoulli(3, 3), bernoulli(3, 0), false},
		{"no variance, equal", bernoulli(50, 50), bernoulli(50, 50), false},
		{"NaN sums", Moments{N: 10, SumX: math.NaN(), SumY: 1}, ok, true},
		{"infinite sums", Moments{N: 10, SumX: 10, SumY: 1, SumYY: math.Inf(1)}, ok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Running
			for _, got := range []Comparison{
				Relative(tt.c, tt.t, 0.05),
				Sequential(tt.c, tt.t, 0.05, 1000),
				r.Look(tt.c, tt.t, 0.05, 1000),
			} {
				if got.Significant || got.P != 1 || !math.IsInf(got.Low, -1) || !math.IsInf(got.High, 1) {
					t.Errorf("%+v: want not significant, P 1, interval (-Inf, +Inf)", got)
				}
				if math.IsNaN(got.Lift) != tt.liftNaN {
					t.Errorf("Lift = %v, want NaN %v", got.Lift, tt.liftNaN)
				}
			}
			if got := CUPED([]Moments{tt.c, tt.t}); len(got) != 2 {
				t.Errorf("CUPED returned %d arms", len(got))
			}
		})
	}
	if got := (Moments{}).Ratio(); !math.IsNaN(got) {
		t.Errorf("empty Ratio = %v, want NaN", got)
	}
	if got := one.RatioVar(); !math.IsNaN(got) {
		t.Errorf("RatioVar of one unit = %v, want NaN", got)
	}
	if got := CUPED(nil); len(got) != 0 {
		t.Errorf("CUPED(nil) = %v", got)
	}
}

func TestBadParametersPanic(t *testing.T) {
	c := bernoulli(1000, 100)
	for name, f := range map[string]func(){
		"alpha 0":        func() { Relative(c, c, 0) },
		"alpha 1":        func() { Sequential(c, c, 1, 100) },
		"alpha NaN":      func() { Relative(c, c, math.NaN()) },
		"plannedN 0":     func() { Sequential(c, c, 0.05, 0) },
		"plannedN NaN":   func() { Sequential(c, c, 0.05, math.NaN()) },
		"SRM lengths":    func() { SRM([]float64{1, 2}, []float64{1}) },
		"SRM single arm": func() { SRM([]float64{1}, []float64{1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestNormal(t *testing.T) {
	tests := []struct{ p, z float64 }{
		{0.5, 0},
		{0.975, 1.959963984540054},
		{0.95, 1.6448536269514722},
		{0.995, 2.5758293035489004},
		{0.8, 0.8416212335729143},
		{0.001, -3.090232306167813},
		{1e-10, -6.3613409024040575},
	}
	for _, tt := range tests {
		if got := NormalQuantile(tt.p); !near(got, tt.z, 1e-12) {
			t.Errorf("NormalQuantile(%v) = %v, want %v", tt.p, got, tt.z)
		}
		if got := NormalCDF(tt.z); math.Abs(got-tt.p) > 1e-12*math.Max(tt.p, 1e-3) {
			t.Errorf("NormalCDF(%v) = %v, want %v", tt.z, got, tt.p)
		}
	}
	if !math.IsInf(NormalQuantile(0), -1) || !math.IsInf(NormalQuantile(1), 1) || !math.IsNaN(NormalQuantile(1.5)) {
		t.Errorf("NormalQuantile at 0, 1, 1.5: %v %v %v", NormalQuantile(0), NormalQuantile(1), NormalQuantile(1.5))
	}
}

func TestChiSquaredSurvival(t *testing.T) {
	tests := []struct{ x, df, p, tol float64 }{
		// Critical values from the standard tables, to their 7 digits.
		{3.841459, 1, 0.05, 1e-6},
		{6.634897, 1, 0.01, 1e-6},
		{10.827566, 1, 0.001, 1e-6},
		{5.991465, 2, 0.05, 1e-6},
		{7.814728, 3, 0.05, 1e-6},
		{13.276704, 4, 0.01, 1e-6},
		{18.307038, 10, 0.05, 1e-6},
		{43.772972, 30, 0.05, 1e-6},
		{124.342113, 100, 0.05, 1e-6},
		// Closed forms: df = 1 is erfc(sqrt(x/2)), df = 2 is exp(-x/2),
		// df = 6 is exp(-x/2)(1 + x/2 + (x/2)²/2).
		{16, 1, 6.334248366623977e-05, 1e-12}, // erfc(sqrt(8))
		{0.5, 1, math.Erfc(0.5), 1e-12},
		{2, 2, math.Exp(-1), 1e-12},
		{100, 2, math.Exp(-50), 1e-12},
		{10, 6, 18.5 * math.Exp(-5), 1e-12}, // 0.124652
		{1, 6, math.Exp(-0.5) * (1 + 0.5 + 0.125), 1e-12},
	}
	for _, tt := range tests {
		got := ChiSquaredSurvival(tt.x, tt.df)
		if math.Abs(got-tt.p) > tt.tol*tt.p {
			t.Errorf("ChiSquaredSurvival(%v, %v) = %v, want %v", tt.x, tt.df, got, tt.p)
		}
	}
	if ChiSquaredSurvival(0, 3) != 1 || ChiSquaredSurvival(-1, 3) != 1 || ChiSquaredSurvival(math.Inf(1), 3) != 0 {
		t.Error("ChiSquaredSurvival at 0, -1, +Inf")
	}
	if !math.IsNaN(ChiSquaredSurvival(1, 0)) || !math.IsNaN(ChiSquaredSurvival(math.NaN(), 1)) {
		t.Error("ChiSquaredSurvival with df 0 or NaN x is not NaN")
	}
}

func TestSRMByHand(t *testing.T) {
	tests := []struct {
		name     string
		observed []float64
		shares   []float64
		chi2, p  float64
	}{
		// 5200/4800 on 50/50: expected 5000 each, (200² + 200²)/5000 = 16,
		// p = P(chi²₁ > 16) = erfc(sqrt(8)) = 6.334e-5.
		{"5200/4800", []float64{5200, 4800}, []float64{0.5, 0.5}, 16, 6.334248366623977e-05},
		// Weights are normalised.
		{"weights", []float64{5200, 4800}, []float64{1, 1}, 16, 6.334248366623977e-05},
		// 10,400/9,600 (52/48 of 20,000): 2·400²/10,000 = 32, p = erfc(4).
		{"52/48", []float64{10400, 9600}, []float64{0.5, 0.5}, 32, math.Erfc(4)},
		// Three arms 25/25/50 of 1,000 observed 240/270/490: expected
		// 250/250/500; 100/250 + 400/250 + 100/500 = 2.2, df 2, p = exp(-1.1).
		{"three arms", []float64{240, 270, 490}, []float64{0.25, 0.25, 0.5}, 2.2, math.Exp(-1.1)},
		{"exact", []float64{500, 500}, []float64{0.5, 0.5}, 0, 1},
		{"no units", []float64{0, 0}, []float64{0.5, 0.5}, 0, 1},
		{"units in a zero share", []float64{10, 1}, []float64{1, 0}, math.Inf(1), 0},
		{"zero share, no units", []float64{10, 0}, []float64{1, 0}, 0, 1},
		{"negative count", []float64{-1, 3}, []float64{0.5, 0.5}, math.NaN(), math.NaN()},
		{"zero shares", []float64{1, 3}, []float64{0, 0}, math.NaN(), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chi2, p := SRM(tt.observed, tt.shares)
			same := func(a, b float64) bool {
				return math.IsNaN(a) && math.IsNaN(b) || a == b || math.Abs(a-b) <= 1e-9*math.Abs(b)
			}
			if !same(chi2, tt.chi2) || !same(p, tt.p) {
				t.Errorf("SRM = %v, %v; want %v, %v", chi2, p, tt.chi2, tt.p)
			}
		})
	}
}

func TestHolmByHand(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		want []float64
	}{
		// Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06,
		// 0.04 → monotone 0.02, 0.03, 0.06, 0.06 (R: p.adjust(p, "holm")).
		{"textbook", []float64{0.01, 0.04, 0.03, 0.005}, []float64{0.03, 0.06, 0.06, 0.02}},
		// 0.05, 0.08, 0.09, 0.08, 0.05 → 0.05, 0.08, 0.09, 0.09, 0.09.
		{"monotone", []float64{0.01, 0.02, 0.03, 0.04, 0.05}, []float64{0.05, 0.08, 0.09, 0.09, 0.09}},
		{"capped", []float64{0.6, 0.9}, []float64{1, 1}},
		{"cap then carry", []float64{0.5, 0.3}, []float64{0.6, 0.6}},
		{"ties", []float64{0.02, 0.02, 0.5}, []float64{0.06, 0.06, 0.5}},
		{"NaN is 1", []float64{math.NaN(), 0.01}, []float64{1, 0.02}},
		{"one", []float64{0.03}, []float64{0.03}},
		{"none", nil, []float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Holm(tt.p)
			if len(got) != len(tt.want) {
				t.Fatalf("Holm(%v) = %v, want %v", tt.p, got, tt.want)
			}
			for i := range got {
				if !near(got[i], tt.want[i], 1e-15) {
					t.Errorf("Holm(%v) = %v, want %v", tt.p, got, tt.want)
					break
				}
			}
		})
	}
}

func TestCUPEDByHand(t *testing.T) {
	// Per-user means (x = 1) with covariate z.
	// Control (z, y): (1, 2), (2, 3), (3, 7): Szz = 14 - 36/3 = 2,
	// Syz = (2 + 6 + 21) - 12·6/3 = 5.
	// Treatment: (2, 4), (4, 5), (6, 9): Szz = 56 - 144/3 = 8,
	// Syz = (8 + 20 + 54) - 18·12/3 = 10.
	// theta = (5 + 10)/(2 + 8) = 1.5; mean z over both arms = 18/6 = 3.
	// Adjusted y = y - 1.5(z - 3):
	//   control 5, 4.5, 7 (mean 5.5), treatment 5.5, 3.5, 4.5 (mean 4.5).
	var c, tr Moments
	for _, u := range [][2]float64{{1, 2}, {2, 3}, {3, 7}} {
		c.Add(1, u[1], u[0])
	}
	for _, u := range [][2]float64{{2, 4}, {4, 5}, {6, 9}} {
		tr.Add(1, u[1], u[0])
	}
	got := CUPED([]Moments{c, tr})
	var wc, wt Moments
	for _, u := range [][2]float64{{1, 5}, {2, 4.5}, {3, 7}} {
		wc.Add(1, u[1], u[0])
	}
	for _, u := range [][2]float64{{2, 5.5}, {4, 3.5}, {6, 4.5}} {
		wt.Add(1, u[1], u[0])
	}
	for i, want := range []Moments{wc, wt} {
		g := got[i]
		for _, f := range []struct {
			name      string
			got, want float64
		}{
			{"N", g.N, want.N}, {"SumX", g.SumX, want.SumX}, {"SumXX", g.SumXX, want.SumXX},
			{"SumY", g.SumY, want.SumY}, {"SumYY", g.SumYY, want.SumYY}, {"SumXY", g.SumXY, want.SumXY},
			{"SumZ", g.SumZ, want.SumZ}, {"SumZZ", g.SumZZ, want.SumZZ},
			{"SumYZ", g.SumYZ, want.SumYZ}, {"SumXZ", g.SumXZ, want.SumXZ},
		} {
			if !near(f.got, f.want, 1e-12) {
				t.Errorf("arm %d %s = %v, want %v", i, f.name, f.got, f.want)
			}
		}
	}
	// The input is not modified.
	if c.SumY != 12 || tr.SumY != 18 {
		t.Errorf("CUPED modified its input: %+v %+v", c, tr)
	}
	// Without a covariate the arms come back unchanged.
	plain := []Moments{bernoulli(100, 10), bernoulli(100, 12)}
	if got := CUPED(plain); got[0] != plain[0] || got[1] != plain[1] {
		t.Errorf("CUPED without covariate = %+v", got)
	}
}

// TestCUPEDRatioTheta checks theta for a ratio metric against the regression
// of the linearised residual y - R·x on z, computed unit by unit, and that
// the adjusted ratio is R - theta·(mean z in the arm - mean z)/mean x.
func TestCUPEDRatioTheta(t *testing.T) {
	arms := [][][3]float64{ // (x, y, z)
		{{3, 1, 2}, {5, 0, 1}, {2, 2, 3}, {8, 1, 1}, {1, 0, 0}},
		{{4, 2, 2}, {6, 1, 2}, {1, 1, 4}, {9, 0, 0}},
	}
	var in []Moments
	var num, den, zsum, n float64
	for _, units := range arms {
		var m Moments
		var sx, sy, sz float64
		for _, u := range units {
			m.Add(u[0], u[1], u[2])
			sx += u[0]
			sy += u[1]
			sz += u[2]
		}
		in = append(in, m)
		r, k := sy/sx, float64(len(units))
		mz := sz / k
		var meanRes float64
		for _, u := range units {
			meanRes += (u[1] - r*u[0]) / k
		}
		for _, u := range units {
			num += (u[1] - r*u[0] - meanRes) * (u[2] - mz)
			den += (u[2] - mz) * (u[2] - mz)
		}
		zsum += sz
		n += k
	}
	theta, mz := num/den, zsum/n
	got := CUPED(in)
	for i, units := range arms {
		var m Moments
		for _, u := range units {
			m.Add(u[0], u[1]-theta*(u[2]-mz), u[2])
		}
		g := got[i]
		if !near(g.SumY, m.SumY, 1e-12) || !near(g.SumYY, m.SumYY, 1e-12) ||
			!near(g.SumXY, m.SumXY, 1e-12) || !near(g.SumYZ, m.SumYZ, 1e-12) {
			t.Errorf("arm %d: CUPED = %+v, want %+v (theta %v)", i, g, m, theta)
		}
		k := float64(len(units))
		want := in[i].Ratio() - theta*(in[i].SumZ/k-mz)/(in[i].SumX/k)
		if !near(g.Ratio(), want, 1e-12) {
			t.Errorf("arm %d: adjusted ratio %v, want %v", i, g.Ratio(), want)
		}
	}
}
