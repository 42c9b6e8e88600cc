package stats

import (
	"math"
	"slices"
)

// SRMThreshold is the p-value below which SRM's result should be reported as
// a sample-ratio mismatch: the assignment, not the treatment, is then the
// likeliest cause of any difference, and the experiment's results are not to
// be trusted. It is strict because the check is run on every experiment, at
// every look.
const SRMThreshold = 0.001

// SRM tests observed unit counts against the expected shares of the arms by
// Pearson's chi-squared test: chi2 = Σ (observed - expected)²/expected with
// expected = share·total, and p its upper tail with len-1 degrees of freedom.
// Warn when p < SRMThreshold.
//
// The shares should sum to 1; they are normalised by their sum, so weights
// such as {1, 1} do as well. No units at all gives (0, 1). An arm with share 0
// that received units gives (+Inf, 0). A negative or NaN count or share, or
// shares summing to zero, give (NaN, NaN). SRM panics when the slices differ
// in length or have fewer than two arms.
func SRM(observed []float64, shares []float64) (chi2, p float64) {
	if len(observed) != len(shares) {
		panic("stats: SRM: observed and shares differ in length")
	}
	if len(observed) < 2 {
		panic("stats: SRM: fewer than two arms")
	}
	var total, shareSum float64
	for i := range observed {
		if !(observed[i] >= 0) || !(shares[i] >= 0) {
			return math.NaN(), math.NaN()
		}
		total += observed[i]
		shareSum += shares[i]
	}
	if !(shareSum > 0) || math.IsInf(total, 0) || math.IsInf(shareSum, 0) {
		return math.NaN(), math.NaN()
	}
	if total == 0 {
		return 0, 1
	}
	for i, o := range observed {
		e := total * shares[i] / shareSum
		if e == 0 {
			if o > 0 {
				return math.Inf(1), 0
			}
			continue
		}
		chi2 += (o - e) * (o - e) / e
	}
	return chi2, ChiSquaredSurvival(chi2, float64(len(observed)-1))
}

// Holm returns the Holm-Bonferroni step-down adjusted p-values of p, in the
// same order: with the p-values sorted ascending, p_(1) ≤ … ≤ p_(m),
//
//	adj_(i) = max_{j ≤ i} min(1, (m - j + 1)·p_(j)),
//
// so the adjusted values keep the order of the raw ones and are capped at 1.
// Rejecting the hypotheses whose adjusted p-value is below alpha controls the
// family-wise error rate at alpha (Holm 1979), for any dependence between the
// tests; use it for several treatments compared against one control. A NaN
// p-value counts as 1 (no evidence). Holm(nil) is empty.
func Holm(p []float64) []float64 {
	m := len(p)
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	val := func(i int) float64 {
		if math.IsNaN(p[i]) {
			return 1
		}
		return p[i]
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		va, vb := val(a), val(b)
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	adj := make([]float64, m)
	running := 0.0
	for rank, i := range idx {
		a := math.Min(1, float64(m-rank)*val(i))
		running = math.Max(running, a)
		adj[i] = running
	}
	return adj
}
