package stats

import "math"

// NormalCDF is the standard normal distribution function Φ(x).
func NormalCDF(x float64) float64 {
	return 0.5 * math.Erfc(-x/math.Sqrt2)
}

// NormalQuantile is the standard normal quantile Φ⁻¹(p): -Inf at 0, +Inf at
// 1, NaN outside [0, 1].
func NormalQuantile(p float64) float64 {
	if p > 0.5 {
		return -NormalQuantile(1 - p) // 1-p is exact for p in [0.5, 1]
	}
	z := -math.Sqrt2 * math.Erfcinv(2*p)
	if math.IsNaN(z) || math.IsInf(z, 0) {
		return z
	}
	// math.Erfcinv is good to about 1e-9 relative in the far tail; one
	// Newton step on Φ(z) = p, which Erfc gives to full relative precision
	// for z ≤ 0, restores the last digits.
	return z - (NormalCDF(z)-p)/(math.Exp(-z*z/2)/math.Sqrt(2*math.Pi))
}

// ChiSquaredSurvival is the upper tail P(X > x) of the chi-squared
// distribution with df degrees of freedom: the regularised upper incomplete
// gamma function Q(df/2, x/2). It is 1 for x ≤ 0 and NaN when df ≤ 0 or an
// argument is NaN.
func ChiSquaredSurvival(x, df float64) float64 {
	switch {
	case math.IsNaN(x) || math.IsNaN(df) || df <= 0:
		return math.NaN()
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	return gammaQ(df/2, x/2)
}

// gammaQ is the regularised upper incomplete gamma function Q(a, x) for
// a > 0, x > 0: by its series (for P = 1 - Q) when x < a+1, otherwise by its
// continued fraction, which keeps the relative precision of a small tail
// (Numerical Recipes, 3rd ed., section 6.2).
func gammaQ(a, x float64) float64 {
	const (
		eps   = 1e-15
		tiny  = 1e-300
		maxIt = 1000
	)
	lg, _ := math.Lgamma(a)
	front := math.Exp(-x + a*math.Log(x) - lg)
	if x < a+1 {
		ap, del := a, 1/a
		sum := del
		for range maxIt {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*eps {
				break
			}
		}
		return math.Max(0, 1-sum*front)
	}
	// Modified Lentz's method.
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i <= maxIt; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return front * h
}
