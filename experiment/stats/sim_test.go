package stats

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// The simulations below are the acceptance tests of the package: seeded, so
// each run sees the same experiments, with thresholds far enough from the
// figures they give that another seed would pass too.

// rng is a SplitMix64 generator used by value (s, z = s.next()), so that its
// state lives in a register of the simulation loop: under -race, which
// instruments every memory access, a generator behind a pointer made these
// tests several times slower. Each batch of draws seeds its own from the test's
// seeded math/rand/v2 source.
type rng uint64

func seed(r *rand.Rand) rng { return rng(r.Uint64()) }

// next returns the advanced state and a uniform 64-bit value.
func (s rng) next() (rng, uint64) {
	s += 0x9e3779b97f4a7c15
	z := uint64(s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return s, z ^ z>>31
}

// float returns a uniform value in [0, 1).
func (s rng) float() (rng, float64) {
	s, z := s.next()
	return s, float64(z>>11) * 0x1p-53
}

// exp returns an Exp(1) value.
func (s rng) exp() (rng, float64) {
	s, u := s.float()
	return s, -math.Log1p(-u)
}

// normal returns a standard normal value (Box-Muller, one of the pair).
func (s rng) normal() (rng, float64) {
	s, u := s.float()
	s, v := s.float()
	return s, math.Sqrt(-2*math.Log1p(-u)) * math.Cos(2*math.Pi*v)
}

// poisson returns a Poisson(lambda) value by inversion (lambda up to a few
// hundred: exp(-lambda) must not underflow).
func (s rng) poisson(lambda float64) (rng, int) {
	s, u := s.float()
	p := math.Exp(-lambda)
	f := p
	k := 0
	for u > f && p > 0 {
		k++
		p *= lambda / float64(k)
		f += p
	}
	return s, k
}

// binomial returns the number of clicks in n impressions, each clicked with
// probability p (the same distribution as n Bernoulli draws), by inversion:
// one uniform, walked up the distribution function from P(0) = (1-p)^n.
// Where P(0) would underflow it draws the impressions one by one.
func (s rng) binomial(n int, p float64) (rng, int) {
	if p <= 0 || n <= 0 {
		return s, 0
	}
	if p >= 1 {
		return s, n
	}
	var u float64
	logP0 := float64(n) * math.Log1p(-p)
	if logP0 < -700 {
		k := 0
		for range n {
			if s, u = s.float(); u < p {
				k++
			}
		}
		return s, k
	}
	s, u = s.float()
	pk := math.Exp(logP0)
	f, odds := pk, p/(1-p)
	k := 0
	for u > f && k < n {
		pk *= float64(n-k) / float64(k+1) * odds
		k++
		f += pk
	}
	return s, k
}

// poissonCDF is the distribution function of Poisson(lambda) up to where it
// reaches 1 in float64.
func poissonCDF(lambda float64) []float64 {
	p := math.Exp(-lambda)
	cdf := []float64{p}
	for k := 1; cdf[len(cdf)-1] < 1 && p > 0; k++ {
		p *= lambda / float64(k)
		cdf = append(cdf, cdf[len(cdf)-1]+p)
	}
	return cdf
}

// binomialPMF is the distribution of Binomial(n, p), p < 1.
func binomialPMF(n int, p float64) []float64 {
	pk := math.Pow(1-p, float64(n))
	pmf := []float64{pk}
	for k := 0; k < n; k++ {
		pk *= float64(n-k) / float64(k+1) * p / (1 - p)
		pmf = append(pmf, pk)
	}
	return pmf
}

// alias draws from a finite distribution in constant time (Vose's alias
// method): pick a column uniformly, then it or its alias.
type alias struct {
	prob  []float64
	alias []int
}

func newAlias(p []float64) alias {
	n := len(p)
	a := alias{prob: make([]float64, n), alias: make([]int, n)}
	var sum float64
	for _, q := range p {
		sum += q
	}
	scaled := make([]float64, n)
	var small, large []int
	for i, q := range p {
		scaled[i] = q / sum * float64(n)
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.prob[i], a.alias[i] = 1, i // left over only by rounding
	}
	return a
}

// index is the outcome for one uniform 64-bit draw z: its high 32 bits pick
// the column, its low 32 bits the coin. That makes the probabilities
// multiples of 2⁻³², a change of at most 2⁻³² per column (one outcome in
// four billion), of no consequence to the simulations.
func (a alias) index(z uint64) int {
	i := int((z >> 32) * uint64(len(a.prob)) >> 32)
	if float64(uint32(z))*0x1p-32 < a.prob[i] {
		return i
	}
	return a.alias[i]
}

// ctrUsers is a population of users for a CTR experiment: each user sees
// 1 + Poisson(9) impressions (10 on average) and clicks each with the user's
// own probability, ctr·u with u one of 0.5, 0.75, 1, 1.25, 1.5 at random
// (users differ, so the impressions of one user are correlated, which the
// delta method accounts for). The joint distribution of a user's
// impressions and clicks is tabulated, so that a user costs one 64-bit draw:
// the simulations are this package's slowest tests, and run under -race too.
type ctrUsers struct {
	imps, clicks []float64 // the outcomes
	table        alias     // their distribution
}

func newCTRUsers(ctr float64) *ctrUsers {
	u := &ctrUsers{}
	var p []float64
	pois := poissonCDF(9)
	for k := range pois {
		pk := pois[k]
		if k > 0 {
			pk -= pois[k-1]
		}
		n := 1 + k
		mix := make([]float64, n+1)
		for _, mult := range []float64{0.5, 0.75, 1, 1.25, 1.5} {
			for c, q := range binomialPMF(n, ctr*mult) {
				mix[c] += q / 5
			}
		}
		for c, q := range mix {
			u.imps = append(u.imps, float64(n))
			u.clicks = append(u.clicks, float64(c))
			p = append(p, pk*q)
		}
	}
	u.table = newAlias(p)
	return u
}

// add adds n simulated users to m, summing in local variables (again for
// -race).
func (u *ctrUsers) add(r *rand.Rand, m *Moments, n int) {
	s := seed(r)
	var z uint64
	var sx, sy, sxx, syy, sxy float64
	for range n {
		s, z = s.next()
		i := u.table.index(z)
		x, y := u.imps[i], u.clicks[i]
		sx += x
		sy += y
		sxx += x * x
		syy += y * y
		sxy += x * y
	}
	*m = m.Merge(Moments{N: float64(n), SumX: sx, SumY: sy, SumXX: sxx, SumYY: syy, SumXY: sxy})
}

// TestAAPeeking: 1,000 A/A experiments (CTR 0.05, 200 users per arm per
// batch, 20 batches, 4,000 users per arm at the end), looked at after every
// batch, each rejecting if any look is significant at alpha = 0.05. The
// sequential test must reject in at most 5% of them; the fixed-horizon test
// peeked the same way must reject far more often (this is what the
// sequential test is for, and what shows the simulation can fail); the
// fixed-horizon test looked at once, at the end, must be calibrated.
func TestAAPeeking(t *testing.T) {
	t.Parallel()
	const (
		sims    = 1000
		batches = 20
		batch   = 200
		alpha   = 0.05
		planned = batches * batch
	)
	r := rand.New(rand.NewPCG(1, 2))
	users := newCTRUsers(0.05)
	var seqRej, runRej, naiveRej, finalRej int
	for range sims {
		var c, tr Moments
		var run Running
		seq, naive := false, false
		var last Comparison
		for range batches {
			users.add(r, &c, batch)
			users.add(r, &tr, batch)
			s := run.Look(c, tr, alpha, planned)
			seq = seq || s.Significant
			last = Relative(c, tr, alpha)
			naive = naive || last.Significant
		}
		if seq {
			seqRej++
		}
		if run.P() < alpha {
			runRej++
		}
		if naive {
			naiveRej++
		}
		if last.Significant {
			finalRej++
		}
	}
	rate := func(k int) float64 { return float64(k) / sims }
	t.Logf("A/A, %d looks, %d experiments: sequential rejects %.3f (running P %.3f), fixed-horizon peeked %.3f, fixed-horizon at the end only %.3f",
		batches, sims, rate(seqRej), rate(runRej), rate(naiveRej), rate(finalRej))
	if rate(seqRej) > alpha {
		t.Errorf("sequential test rejected %.3f of A/A experiments, more than alpha = %v", rate(seqRej), alpha)
	}
	if runRej != seqRej {
		t.Errorf("running P < alpha in %d experiments, a significant interval in %d: they must agree", runRej, seqRej)
	}
	// 25% with 20 looks (0.254 over 10,000 experiments).
	if rate(naiveRej) < 0.12 {
		t.Errorf("peeked fixed-horizon test rejected only %.3f of A/A experiments; expected well above alpha", rate(naiveRej))
	}
	// One look: 5% ± 3 standard errors (0.7 points each at 1,000).
	if f := rate(finalRej); f < 0.03 || f > 0.07 {
		t.Errorf("fixed-horizon test at one look rejected %.3f of A/A experiments, want about 0.05", f)
	}
}

// TestPower: a true +5% relative CTR lift (0.05 → 0.0525) with 24,000
// users per arm (plannedN; 20 looks of 1,200 users per arm; about 240,000
// impressions per arm). A fixed-horizon test of that size looked at once has
// power about 97% (the lift is about 3.8 standard errors); the sequential
// test pays for being valid at every look and has about 80% (0.806 over
// 4,000 experiments; this test's 200 measure 0.800). The floor 0.6 is 7
// standard errors of the 200-experiment estimate below the true power, so
// another seed passes too, while a test that lost a third of its power
// fails.
func TestPower(t *testing.T) {
	t.Parallel()
	const (
		sims    = 200
		batches = 20
		batch   = 1200
		alpha   = 0.05
		planned = batches * batch
	)
	r := rand.New(rand.NewPCG(3, 4))
	control, treatment := newCTRUsers(0.05), newCTRUsers(0.0525)
	var seqRej, fixedRej, wrongWay int
	for range sims {
		var c, tr Moments
		var run Running
		rejected := false
		var s Comparison
		for range batches {
			control.add(r, &c, batch)
			treatment.add(r, &tr, batch)
			s = run.Look(c, tr, alpha, planned)
			if s.Significant && !rejected {
				rejected = true
				if s.Lift < 0 {
					wrongWay++
				}
			}
		}
		if rejected {
			seqRej++
		}
		if Relative(c, tr, alpha).Significant {
			fixedRej++
		}
	}
	power := float64(seqRej) / sims
	t.Logf("+5%% CTR lift, %d users per arm, %d looks: sequential power %.3f, fixed-horizon (one look) %.3f",
		planned, batches, power, float64(fixedRej)/sims)
	if power < 0.6 {
		t.Errorf("sequential power %.3f at %d users per arm, want at least 0.6", power, planned)
	}
	if wrongWay > 0 {
		t.Errorf("%d experiments stopped on a significant negative lift", wrongWay)
	}
}

// assign is the number of n users that a coin with probability p of heads
// puts in the first arm; a fair coin (p = 0.5) takes 64 users a draw.
func assign(r *rand.Rand, n int, p float64) int {
	s := seed(r)
	var z uint64
	k := 0
	if p == 0.5 {
		for ; n >= 64; n -= 64 {
			s, z = s.next()
			k += bits.OnesCount64(z)
		}
		if n > 0 {
			_, z = s.next()
			k += bits.OnesCount64(z >> (64 - n))
		}
		return k
	}
	th := uint64(math.Ldexp(p, 64))
	for range n {
		if s, z = s.next(); z < th {
			k++
		}
	}
	return k
}

func TestSRMSimulated(t *testing.T) {
	t.Parallel()
	const users = 20000
	r := rand.New(rand.NewPCG(5, 6))
	shares := []float64{0.5, 0.5}

	// A 52/48 split on a 50/50 experiment: flagged (the expected chi2 is
	// 32, p ≈ 1.5e-8; at p < 0.001 the test catches it about 99% of the
	// time).
	const injected = 200
	flagged := 0
	for range injected {
		k := assign(r, users, 0.52)
		if _, p := SRM([]float64{float64(k), float64(users - k)}, shares); p < SRMThreshold {
			flagged++
		}
	}
	t.Logf("52/48 of %d users: flagged in %d of %d", users, flagged, injected)
	if float64(flagged)/injected < 0.95 {
		t.Errorf("a 52/48 split was flagged in only %d of %d experiments", flagged, injected)
	}

	// A true 50/50 split: flagged about 0.1% of the time.
	const fair = 1000
	flagged = 0
	for range fair {
		k := assign(r, users, 0.5)
		if _, p := SRM([]float64{float64(k), float64(users - k)}, shares); p < SRMThreshold {
			flagged++
		}
	}
	t.Logf("50/50 of %d users: flagged in %d of %d", users, flagged, fair)
	if float64(flagged)/fair > 0.005 {
		t.Errorf("a fair split was flagged in %d of %d experiments", flagged, fair)
	}
}

// cupedArm simulates users whose activity and click propensity persist from
// the pre-period into the experiment: activity a ~ 10·Exp(1) impressions,
// propensity ctr·e with e ~ Exp(1); impressions are 1 + Poisson(a) in each
// period. The covariate is the user's pre-period clicks. With perUser the
// metric is clicks per user (x = 1); otherwise it is CTR (clicks over
// impressions).
func cupedArm(r *rand.Rand, m *Moments, users int, ctr float64, perUser bool) {
	s := seed(r)
	var b Moments // summed here, not through m (for -race)
	var a, p float64
	var preImps, pre, imps, clicks int
	for range users {
		s, a = s.exp()
		s, p = s.exp()
		a *= 10
		p = math.Min(1, 0.05*p)
		s, preImps = s.poisson(a)
		s, pre = s.binomial(1+preImps, p)
		s, imps = s.poisson(a)
		imps++
		s, clicks = s.binomial(imps, p*ctr/0.05)
		x, y, z := float64(imps), float64(clicks), float64(pre)
		if perUser {
			x = 1
		}
		b.SumX += x
		b.SumY += y
		b.SumXX += x * x
		b.SumYY += y * y
		b.SumXY += x * y
		b.SumZ += z
		b.SumZZ += z * z
		b.SumYZ += y * z
		b.SumXZ += x * z
	}
	b.N = float64(users)
	*m = m.Merge(b)
}

// TestCUPEDNarrower: on one large experiment the adjusted interval is
// narrower, for a per-user mean and for a ratio metric.
func TestCUPEDNarrower(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		perUser bool
	}{{"clicks per user", true}, {"CTR", false}} {
		r := rand.New(rand.NewPCG(7, 8))
		var c, tr Moments
		cupedArm(r, &c, 20000, 0.05, tt.perUser)
		cupedArm(r, &tr, 20000, 0.0525, tt.perUser)
		raw := Relative(c, tr, 0.05)
		adj := CUPED([]Moments{c, tr})
		cup := Relative(adj[0], adj[1], 0.05)
		ratio := (cup.High - cup.Low) / (raw.High - raw.Low)
		t.Logf("%s: interval width %.4f raw, %.4f with CUPED (%.0f%% of it; variance %.0f%%)",
			tt.name, raw.High-raw.Low, cup.High-cup.Low, 100*ratio, 100*ratio*ratio)
		if ratio >= 0.95 {
			t.Errorf("%s: CUPED interval is %.3f of the raw one, want clearly narrower", tt.name, ratio)
		}
	}
}

// TestCUPEDAA: 1,000 A/A experiments of 1,000 users per arm (10 looks of
// 100) on CTR, adjusted by CUPED at every look: the fixed-horizon test at
// the end stays calibrated (5% plus 3 standard errors) and the sequential
// test peeked at every look stays within alpha.
func TestCUPEDAA(t *testing.T) {
	t.Parallel()
	const (
		sims    = 1000
		batches = 10
		batch   = 100
		alpha   = 0.05
	)
	r := rand.New(rand.NewPCG(9, 10))
	var fixed, seq int
	for range sims {
		var c, tr Moments
		rejected := false
		var adj []Moments
		for range batches {
			cupedArm(r, &c, batch, 0.05, false)
			cupedArm(r, &tr, batch, 0.05, false)
			adj = CUPED([]Moments{c, tr})
			if Sequential(adj[0], adj[1], alpha, batches*batch).Significant {
				rejected = true
			}
		}
		if rejected {
			seq++
		}
		if Relative(adj[0], adj[1], alpha).Significant {
			fixed++
		}
	}
	f, s := float64(fixed)/sims, float64(seq)/sims
	t.Logf("CUPED A/A, %d experiments: fixed-horizon (one look) rejects %.3f, sequential (%d looks) %.3f", sims, f, batches, s)
	if f > alpha+3*math.Sqrt(alpha*(1-alpha)/sims) {
		t.Errorf("CUPED fixed-horizon A/A rejection rate %.3f, want at most about %v", f, alpha)
	}
	if s > alpha {
		t.Errorf("CUPED sequential A/A rejection rate %.3f, want at most %v", s, alpha)
	}
}

// TestHolmSeveralTreatments: four treatments against one control. With no
// true effect, rejecting any unadjusted p < 0.05 happens far more often than
// 5% (about 1-0.95^4, a little less as the shared control correlates the
// tests); Holm's adjusted p-values keep the family-wise rate within 5%. With
// one true effect Holm still finds it.
func TestHolmSeveralTreatments(t *testing.T) {
	t.Parallel()
	const (
		sims  = 1000
		users = 200
		arms  = 5
		alpha = 0.05
	)
	r := rand.New(rand.NewPCG(11, 12))
	arm := func(mean float64) Moments {
		s := seed(r)
		var y, sy, syy float64
		for range users {
			s, y = s.normal()
			y += mean
			sy += y
			syy += y * y
		}
		return Moments{N: users, SumX: users, SumXX: users, SumY: sy, SumYY: syy, SumXY: sy}
	}
	var rawAny, holmAny, found, falseWithEffect int
	for range sims {
		for _, effect := range []bool{false, true} {
			c := arm(10)
			ps := make([]float64, arms-1)
			for i := range ps {
				mean := 10.0
				if effect && i == 0 {
					mean = 10.5 // +5%, 5 standard errors
				}
				ps[i] = Relative(c, arm(mean), alpha).P
			}
			adj := Holm(ps)
			if !effect {
				raw, holm := false, false
				for i := range ps {
					raw = raw || ps[i] < alpha
					holm = holm || adj[i] < alpha
				}
				if raw {
					rawAny++
				}
				if holm {
					holmAny++
				}
				continue
			}
			if adj[0] < alpha {
				found++
			}
			for _, a := range adj[1:] {
				if a < alpha {
					falseWithEffect++
					break
				}
			}
		}
	}
	t.Logf("4 treatments, %d experiments: family-wise false positives %.3f unadjusted, %.3f Holm; true +5%% effect found %.3f; false positives beside it %.3f",
		sims, float64(rawAny)/sims, float64(holmAny)/sims, float64(found)/sims, float64(falseWithEffect)/sims)
	if float64(rawAny)/sims < 0.12 {
		t.Errorf("unadjusted family-wise rate %.3f, expected well above alpha", float64(rawAny)/sims)
	}
	if fw := float64(holmAny) / sims; fw > alpha+3*math.Sqrt(alpha*(1-alpha)/sims) {
		t.Errorf("Holm family-wise rate %.3f, want at most about %v", fw, alpha)
	}
	if fw := float64(falseWithEffect) / sims; fw > alpha+3*math.Sqrt(alpha*(1-alpha)/sims) {
		t.Errorf("Holm family-wise rate beside a true effect %.3f, want at most about %v", fw, alpha)
	}
	if float64(found)/sims < 0.95 {
		t.Errorf("Holm found the true effect in %.3f of experiments, want at least 0.95", float64(found)/sims)
	}
}

// TestSimulators checks the simulations' own generators, on which the
// figures above rest.
func TestSimulators(t *testing.T) {
	// The alias table gives every outcome its probability.
	p := []float64{0.5, 0.25, 0.125, 0.0625, 0.0625, 0}
	a := newAlias(p)
	implied := make([]float64, len(p))
	for i := range a.prob {
		implied[i] += a.prob[i] / float64(len(p))
		implied[a.alias[i]] += (1 - a.prob[i]) / float64(len(p))
	}
	for i := range p {
		if math.Abs(implied[i]-p[i]) > 1e-15 {
			t.Errorf("alias gives outcome %d probability %v, want %v", i, implied[i], p[i])
		}
	}

	// The CTR users see 10 impressions on average and click 5% of them.
	u := newCTRUsers(0.05)
	r := rand.New(rand.NewPCG(13, 14))
	var m Moments
	u.add(r, &m, 200000)
	if imps := m.SumX / m.N; math.Abs(imps-10) > 0.05 {
		t.Errorf("simulated users saw %v impressions on average, want 10", imps)
	}
	if ctr := m.Ratio(); math.Abs(ctr-0.05) > 0.00065 { // 4 standard errors
		t.Errorf("simulated CTR %v, want 0.05", ctr)
	}

	// Poisson, binomial, exponential and normal draws have their means and
	// variances (to 4 standard errors of 100,000 draws, or less).
	s := seed(r)
	const n = 100000
	var pois, bin, ex, nor, nor2 float64
	var k int
	var x float64
	for range n {
		s, k = s.poisson(10)
		pois += float64(k)
		s, k = s.binomial(20, 0.3)
		bin += float64(k)
		s, x = s.exp()
		ex += x
		s, x = s.normal()
		nor += x
		nor2 += x * x
	}
	for _, c := range []struct {
		name            string
		got, want, diff float64
	}{
		{"Poisson(10) mean", pois / n, 10, 0.04},
		{"Binomial(20, 0.3) mean", bin / n, 6, 0.03},
		{"Exp(1) mean", ex / n, 1, 0.013},
		{"normal mean", nor / n, 0, 0.013},
		{"normal variance", nor2 / n, 1, 0.018},
	} {
		if math.Abs(c.got-c.want) > c.diff {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
