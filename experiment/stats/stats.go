// Package stats is the statistics behind streamrec's online A/B experiments:
// the comparison of a treatment arm against control on a ratio metric (for
// example clicks per impression, summed per user), with results that may be
// watched continuously ("peeking-safe") while the experiment runs.
//
// The pieces, and the papers they follow:
//
//   - Moments holds the per-arm sums of a ratio metric Y/X over its units
//     (users). Moments.RatioVar is the delta-method variance of the ratio
//     (Deng, Knoblich, Lu, "Applying the Delta Method in Metric Analytics",
//     KDD 2018), which stays correct when the unit of randomisation (the user)
//     is coarser than the unit of analysis (the impression).
//   - Relative is the fixed-horizon comparison of the relative lift
//     Treatment/Control - 1, again by the delta method. It is valid only when
//     it is looked at once, at a sample size fixed in advance.
//   - Sequential is the same comparison with an asymptotic confidence sequence
//     (Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas, "Time-uniform central
//     limit theory and asymptotic confidence sequences", arXiv 2103.06476, in
//     the form GrowthBook uses) and the mSPRT always-valid p-value (Johari,
//     Pekelis, Walsh, "Always Valid Inference", arXiv 1512.04922). Both stay
//     valid when the result is looked at after every batch of users and the
//     experiment is stopped at the first significant look. Running keeps the
//     always-valid p-value across looks.
//   - CUPED reduces variance with a pre-period covariate (Deng, Xu, Kohavi,
//     Walker, "Improving the Sensitivity of Online Controlled Experiments by
//     Utilizing Pre-Experiment Data", WSDM 2013).
//   - SRM flags a sample-ratio mismatch by Pearson's chi-squared test; warn
//     when its p-value is below SRMThreshold.
//   - Holm adjusts the p-values of several treatments (Holm-Bonferroni).
//
// The invariant every Comparison from Relative and Sequential keeps:
// P < alpha exactly when the interval [Low, High] excludes 0, which is what
// Significant says (Running's P is the minimum over the looks so far, so it
// says whether any look was significant). For Relative both
// come from the same normal approximation; for Sequential the mSPRT mixing
// variance is chosen (see Sequential) so that its p-value is the inversion of
// the confidence sequence at that look. A comparison that cannot be computed
// (an empty arm, fewer than two units, a zero control ratio, a variance that
// is zero or not finite) is never significant: Lift is NaN when undefined, the
// interval is (-Inf, +Inf) and P is 1.
//
// The guarantees are asymptotic (central limit theorem): start looking once
// each arm has a few hundred units and some hundreds of events; an earlier
// look can be significant by the luck of a handful of users, and Running
// would keep that p-value.
//
// By simulation (this package's tests: CTR 0.05, about 10 impressions per
// user, users differing in their CTR): of 1,000 A/A experiments of 4,000
// users per arm looked at after each of 20 batches, the sequential test
// rejects about 1.3% and the fixed-horizon test peeked the same way about
// 25% (both measured over 10,000 such experiments). With 24,000 users per arm and 20 looks the sequential test detects a
// true +5% relative CTR lift with power about 80% (a fixed-horizon test
// looked at once: about 97%; that is the price of looking at any time).
package stats

import (
	"math"
)

// Moments are the sums over the units (users) of one arm of a ratio metric
// Y/X: per-unit numerator y and denominator x (for a plain per-user mean use
// x = 1 for every user), and optionally a pre-period covariate z for CUPED.
//
// Moments are plain sums, so the zero value is an empty arm, shards of one arm
// combine with Merge, and a unit's values may be revised in place with Update.
// The variances are computed from the raw sums: float64 keeps about 16
// significant digits, ample for the millions of users and the small per-user
// values of an experiment.
type Moments struct {
	N                         float64 // units
	SumX, SumY                float64
	SumXX, SumYY, SumXY       float64
	SumZ, SumZZ, SumYZ, SumXZ float64 // CUPED covariate (zero when unused)
}

// Add adds one unit with denominator x, numerator y and covariate z (0 when
// CUPED is unused).
func (m *Moments) Add(x, y, z float64) {
	m.N++
	m.add(x, y, z, 1)
}

// Update records that an existing unit's values changed from (x0, y0, z0) to
// (x1, y1, z1): it adjusts the sums and leaves N alone (the unit is not new).
func (m *Moments) Update(x0, y0, z0, x1, y1, z1 float64) {
	m.add(x0, y0, z0, -1)
	m.add(x1, y1, z1, 1)
}

// add adds sign times one unit's contributions to every sum but N.
func (m *Moments) add(x, y, z, sign float64) {
	m.SumX += sign * x
	m.SumY += sign * y
	m.SumXX += sign * x * x
	m.SumYY += sign * y * y
	m.SumXY += sign * x * y
	m.SumZ += sign * z
	m.SumZZ += sign * z * z
	m.SumYZ += sign * y * z
	m.SumXZ += sign * x * z
}

// Merge returns the moments of the union of the units of m and o (two shards
// of the same arm).
func (m Moments) Merge(o Moments) Moments {
	return Moments{
		N:     m.N + o.N,
		SumX:  m.SumX + o.SumX,
		SumY:  m.SumY + o.SumY,
		SumXX: m.SumXX + o.SumXX,
		SumYY: m.SumYY + o.SumYY,
		SumXY: m.SumXY + o.SumXY,
		SumZ:  m.SumZ + o.SumZ,
		SumZZ: m.SumZZ + o.SumZZ,
		SumYZ: m.SumYZ + o.SumYZ,
		SumXZ: m.SumXZ + o.SumXZ,
	}
}

// Ratio is the arm's metric SumY/SumX; NaN when SumX == 0.
func (m Moments) Ratio() float64 {
	if m.SumX == 0 {
		return math.NaN()
	}
	return m.SumY / m.SumX
}

// RatioVar is the delta-method variance of Ratio (Deng, Knoblich, Lu,
// KDD 2018): with the unit means mx, my, the sample variances sxx, syy and
// covariance sxy (denominator N-1),
//
//	Var(my/mx) ≈ (syy/mx² - 2 my sxy/mx³ + my² sxx/mx⁴) / N,
//
// which is the variance of the mean of the linearised metric
// (y - Ratio·x)/mx. For x = 1 it is the familiar syy/N. NaN when N < 2 or
// SumX == 0.
func (m Moments) RatioVar() float64 {
	if m.N < 2 || m.SumX == 0 {
		return math.NaN()
	}
	n := m.N
	mx, my := m.SumX/n, m.SumY/n
	sxx := (m.SumXX - n*mx*mx) / (n - 1)
	syy := (m.SumYY - n*my*my) / (n - 1)
	sxy := (m.SumXY - n*mx*my) / (n - 1)
	v := (syy/(mx*mx) - 2*my*sxy/(mx*mx*mx) + my*my*sxx/(mx*mx*mx*mx)) / n
	// Rounding in the raw sums may leave a tiny negative for a metric
	// that does not vary.
	return math.Max(v, 0)
}

// Comparison of a treatment arm against control on one ratio metric.
type Comparison struct {
	Control, Treatment float64 // the ratios
	Lift               float64 // relative: Treatment/Control - 1
	Low, High          float64 // interval for the relative lift
	P                  float64 // two-sided p-value (fixed-horizon) or always-valid p (sequential)
	Significant        bool    // interval excludes 0
}

// lift is the relative lift of t over c and the delta-method variance of its
// estimate (Deng, Knoblich, Lu, KDD 2018, on percent change): with
// independent arms,
//
//	Var(Rt/Rc) ≈ Var(Rt)/Rc² + Rt² Var(Rc)/Rc⁴.
//
// The comparison starts with both ratios and the lift filled in; ok is false
// when the lift or its variance is undefined, not finite or zero, and the
// comparison is then already the "cannot tell" answer of the package doc. A
// zero variance (every unit alike within each arm, as when the first three
// users of one arm all converted) is no estimate of the variance at all: taken
// at its word it would make any difference certain.
func lift(c, t Moments) (cmp Comparison, v float64, ok bool) {
	rc, rt := c.Ratio(), t.Ratio()
	cmp = Comparison{
		Control:   rc,
		Treatment: rt,
		Lift:      math.NaN(),
		Low:       math.Inf(-1),
		High:      math.Inf(1),
		P:         1,
	}
	if math.IsNaN(rc) || math.IsNaN(rt) || rc == 0 {
		return cmp, math.NaN(), false
	}
	cmp.Lift = rt/rc - 1
	v = t.RatioVar()/(rc*rc) + rt*rt*c.RatioVar()/(rc*rc*rc*rc)
	if !(v > 0) || math.IsInf(v, 1) || math.IsInf(cmp.Lift, 0) {
		return cmp, v, false
	}
	return cmp, v, true
}

// Relative compares t against c at a fixed horizon, at level alpha: the
// interval is Lift ± z(1-alpha/2)·se and P the two-sided normal p-value, with
// se the delta-method standard error of Treatment/Control - 1 (the units of
// the two arms are independent). Valid for one look at a sample size fixed in
// advance; use Sequential for a result that is watched.
//
// Relative panics when alpha is not in (0, 1).
func Relative(c, t Moments, alpha float64) Comparison {
	checkAlpha(alpha)
	cmp, v, ok := lift(c, t)
	if !ok {
		return cmp
	}
	se := math.Sqrt(v)
	hw := NormalQuantile(1-alpha/2) * se
	cmp.Low, cmp.High = cmp.Lift-hw, cmp.Lift+hw
	cmp.P = 2 * NormalCDF(-math.Abs(cmp.Lift)/se)
	cmp.Significant = cmp.Low > 0 || cmp.High < 0
	return cmp
}

// Rho is the tuning constant of the asymptotic confidence sequence that
// (nearly: a closed-form approximation of the minimiser) minimises its width
// at plannedN observations (Waudby-Smith et al., arXiv 2103.06476; the
// choice GrowthBook makes):
//
//	rho = sqrt( (-2 log alpha + log(-2 log alpha + 1)) / plannedN ).
func Rho(alpha, plannedN float64) float64 {
	l := -2 * math.Log(alpha)
	return math.Sqrt((l + math.Log(l+1)) / plannedN)
}

// csHalfWidth is the half-width of the two-sided asymptotic confidence
// sequence at level alpha for the mean of n observations with standard
// deviation sigma (Waudby-Smith et al., arXiv 2103.06476, the normal-mixture
// boundary; the form GrowthBook uses):
//
//	sqrt( (2(n rho² + 1)/(n² rho²)) · log( sqrt(n rho² + 1)/alpha ) ) · sigma.
func csHalfWidth(n, sigma, rho, alpha float64) float64 {
	r := n * rho * rho
	return math.Sqrt(2*(r+1)/(n*n*rho*rho)*math.Log(math.Sqrt(r+1)/alpha)) * sigma
}

// msprtP is the mSPRT p-value of one look, min(1, 1/Lambda), for an estimated
// difference diff with variance v and the normal mixture of variance tau2
// (Johari, Pekelis, Walsh, arXiv 1512.04922):
//
//	Lambda = sqrt(v/(v+tau2)) · exp( tau2 · diff² / (2 v (v+tau2)) ),
//
// computed in logarithms, so that a large statistic does not overflow.
func msprtP(diff, v, tau2 float64) float64 {
	logLambda := 0.5*math.Log(v/(v+tau2)) + tau2*diff*diff/(2*v*(v+tau2))
	if logLambda <= 0 {
		return 1
	}
	return math.Exp(-logLambda)
}

// Sequential is Relative's comparison made valid under continuous
// monitoring: the interval is an asymptotic confidence sequence for the
// relative lift, and P the mSPRT always-valid p-value of this look (keep the
// minimum over looks, or use Running). The experiment may be looked at after
// every batch and stopped at the first significant look with a
// false-positive rate of at most alpha (asymptotically, as the arms grow).
//
// plannedN is the number of units per arm the experiment is planned for; it
// tunes, not limits, the test (looks before and after it stay valid; the
// interval is narrowest relative to the fixed-horizon one near plannedN).
// The choices, with V the delta-method variance of the lift estimate at this
// look and n = (c.N + t.N)/2 the units per arm:
//
//   - The confidence sequence is Lift ± the half-width
//     sqrt( (2(n rho² + 1)/(n² rho²)) · log( sqrt(n rho² + 1)/alpha ) ) · sigma
//     for n observations of standard deviation sigma = sqrt(n·V), with
//     rho = Rho(alpha, plannedN). In standard errors sqrt(V) the half-width is
//     sqrt( (2(r+1)/r) · log( sqrt(r+1)/alpha ) ) with r = n rho² = c·n/plannedN,
//     c = -2 log alpha + log(-2 log alpha + 1) (about 7.94 at alpha = 0.05):
//     3.04 standard errors at n = plannedN and alpha = 0.05, against 1.96 at a
//     fixed horizon.
//   - The mSPRT mixing variance is tau² = rho²·sigma² = c·sigma²/plannedN,
//     that is c times the variance the lift estimate will have at plannedN:
//     the mixing standard deviation is about 2.8 standard errors at the
//     planned size for alpha = 0.05, the effect a fixed-horizon test of that
//     size has about 80% power for (1.96 + 0.84). With this tau the mSPRT
//     statistic is the very normal mixture behind the confidence sequence
//     (Lambda = exp(r z²/(2(r+1)))/sqrt(r+1) for z = Lift/sqrt(V)), so
//     P < alpha exactly when the interval excludes 0 at this look. sigma is
//     estimated at every look, so tau² is fixed only asymptotically, the same
//     sense in which the confidence sequence is valid.
//
// Use the same alpha and plannedN at every look of an experiment. Sequential
// panics when alpha is not in (0, 1) or plannedN is not positive.
func Sequential(c, t Moments, alpha float64, plannedN float64) Comparison {
	checkAlpha(alpha)
	if !(plannedN > 0) || math.IsInf(plannedN, 1) {
		panic("stats: plannedN must be positive and finite")
	}
	cmp, v, ok := lift(c, t)
	if !ok {
		return cmp
	}
	n := (c.N + t.N) / 2
	rho := Rho(alpha, plannedN)
	sigma := math.Sqrt(n * v)
	hw := csHalfWidth(n, sigma, rho, alpha)
	cmp.Low, cmp.High = cmp.Lift-hw, cmp.Lift+hw
	cmp.P = msprtP(cmp.Lift, v, rho*rho*sigma*sigma)
	cmp.Significant = cmp.Low > 0 || cmp.High < 0
	return cmp
}

// Running keeps the always-valid p-value of one comparison across looks. The
// zero value is ready: no looks yet, P 1.
type Running struct {
	p     float64 // running minimum; meaningful once looks > 0
	looks int
}

// Look returns Sequential's comparison of this look with P replaced by the
// running minimum of the always-valid p-values so far, which never
// increases. The other fields are this look's: Significant may turn false
// again after a significant look (the interval is this look's confidence
// sequence), but a running P below alpha means some look was significant,
// and stopping there was valid: report the experiment as significant once
// P is below alpha.
func (r *Running) Look(c, t Moments, alpha, plannedN float64) Comparison {
	cmp := Sequential(c, t, alpha, plannedN)
	if r.looks == 0 || cmp.P < r.p {
		r.p = cmp.P
	}
	r.looks++
	cmp.P = r.p
	return cmp
}

// P is the running always-valid p-value: 1 before the first look.
func (r *Running) P() float64 {
	if r.looks == 0 {
		return 1
	}
	return r.p
}

// Looks is the number of looks so far.
func (r *Running) Looks() int { return r.looks }

func checkAlpha(alpha float64) {
	if !(alpha > 0 && alpha < 1) {
		panic("stats: alpha must be in (0, 1)")
	}
}
