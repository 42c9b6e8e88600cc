package stats

// CUPED returns the arms' moments adjusted by a pre-period covariate z (Deng,
// Xu, Kohavi, Walker, WSDM 2013), so that Relative and Sequential on the
// result have a lower variance; the arms are returned unchanged (as a copy)
// when no covariate was recorded (SumZZ zero in every arm) or it does not
// vary.
//
// Each unit's numerator is replaced by
//
//	y' = y - theta·(z - mean z),
//
// with mean z the covariate's mean over all arms together (so that the
// adjustment has expectation zero in every arm and the ratios stay unbiased)
// and one theta for all arms: the within-arm pooled regression coefficient of
// the linearised residual y - R·x on z,
//
//	theta = Σ_arms [cov(y,z) - R·cov(x,z)] / Σ_arms var(z)
//
// (R the arm's ratio; covariances as centred sums within each arm). This is
// CUPED on the linearised ratio metric of Deng, Knoblich, Lu (KDD 2018): the
// adjusted ratio is R - theta·(mean z in the arm - mean z)/mean x, and theta
// is the coefficient that minimises the delta-method variance of it. For a
// per-unit mean (x = 1, so cov(x,z) = 0) it is plain CUPED on y:
// theta = cov(y,z)/var(z), pooled over arms.
//
// The denominators (SumX, SumXX) and the covariate sums (SumZ, SumZZ, SumXZ)
// are unchanged; SumY, SumYY, SumXY and SumYZ are those of y'. Arms with
// fewer than two units add nothing to theta but are adjusted like the others.
func CUPED(arms []Moments) []Moments {
	out := append([]Moments(nil), arms...)
	var n, sumZ, num, den float64
	for _, m := range arms {
		n += m.N
		sumZ += m.SumZ
		if m.N < 2 || m.SumX == 0 {
			continue
		}
		r := m.SumY / m.SumX
		szz := m.SumZZ - m.SumZ*m.SumZ/m.N
		syz := m.SumYZ - m.SumY*m.SumZ/m.N
		sxz := m.SumXZ - m.SumX*m.SumZ/m.N
		num += syz - r*sxz
		den += szz
	}
	if !(den > 0) || !(n > 0) {
		return out
	}
	theta := num / den
	mz := sumZ / n
	for i := range out {
		m := &out[i]
		// Sums of d = z - mz over the arm's units.
		sd := m.SumZ - m.N*mz
		sdd := m.SumZZ - 2*mz*m.SumZ + m.N*mz*mz
		syd := m.SumYZ - mz*m.SumY
		sxd := m.SumXZ - mz*m.SumX
		szd := m.SumZZ - mz*m.SumZ
		m.SumYY += -2*theta*syd + theta*theta*sdd
		m.SumY -= theta * sd
		m.SumXY -= theta * sxd
		m.SumYZ -= theta * szd
	}
	return out
}
