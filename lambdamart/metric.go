package lambdamart

import (
	"fmt"
	"math"
	"slices"
)

// Metric is the weighted mean over d's queries of the truncated DCG of the rows
// ordered by score (Init + forest output when f is non-nil, Init alone for nil):
// sum over the first K rows of Label/log2(rank+2), rank from 0. Ties are broken
// by the lower row index. Queries with no positive label count 0 but still count
// in the mean.
//
// k ≤ 0 sums over every row of a query. A score is float64(Init) +
// float64(f.Predict(x)); a NaN score ranks last. Metric is 0 for a set without
// queries or whose weights are all 0. It panics when d is malformed (lengths
// and Group; values are not checked) or has fewer features than f.
func Metric(d *Data, f *Forest, k int) float64 {
	if err := d.check("metric", false); err != nil {
		panic(err)
	}
	if f != nil && f.F > d.F {
		panic(fmt.Sprintf("lambdamart: metric: forest of %d features on data of %d", f.F, d.F))
	}
	n := len(d.Label)
	sc := make([]float64, n)
	for r := range n {
		s := d.init(r)
		if f != nil {
			s += float64(f.Predict(d.X[r*d.F : (r+1)*d.F]))
		}
		sc[r] = s
	}
	var perm []int32
	return metricScores(d, sc, k, &perm)
}

// metricScores is Metric for the scores sc (one per row); *buf is a scratch
// buffer, grown as needed.
func metricScores(d *Data, sc []float64, k int, buf *[]int32) float64 {
	perm := *buf
	defer func() { *buf = perm }()
	var total, wsum float64
	for q := 0; q+1 < len(d.Group); q++ {
		w := d.weight(q)
		wsum += w
		s, e := d.Group[q], d.Group[q+1]
		if w == 0 || !anyPositive(d.Label[s:e]) {
			continue
		}
		n := e - s
		perm = slices.Grow(perm[:0], n)[:n]
		rank(perm, sc[s:e])
		top := n
		if k > 0 && k < n {
			top = k
		}
		lab := d.Label[s:e]
		var dcg float64
		for i := range top {
			if l := lab[perm[i]]; l != 0 {
				dcg += float64(l) / math.Log2(float64(i)+2)
			}
		}
		total += w * dcg
	}
	if wsum == 0 {
		return 0
	}
	return total / wsum
}

func anyPositive(l []float32) bool {
	for _, v := range l {
		if v > 0 {
			return true
		}
	}
	return false
}

// rank fills perm (len(sc)) with 0..n-1 ordered by sc descending, ties (and
// NaN, which ranks last) by the lower index.
func rank(perm []int32, sc []float64) {
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(a, b int32) int {
		sa, sb := sc[a], sc[b]
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		case sa == sb:
			return int(a - b)
		}
		// At least one is NaN.
		na, nb := math.IsNaN(sa), math.IsNaN(sb)
		switch {
		case na && !nb:
			return 1
		case nb && !na:
			return -1
		}
		return int(a - b)
	})
}
