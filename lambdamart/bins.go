package lambdamart

import (
	"math"
	"slices"
)

// maxSample bounds the values per feature the bin edges are computed from.
const maxSample = 100000

// sample is, column-major, the finite values of every feature of d over at
// most maxSample rows taken at a regular stride: vals[f] is feature f's.
func sample(d *Data) [][]float32 {
	n := len(d.Label)
	stride := (n + maxSample - 1) / maxSample
	m := (n + stride - 1) / stride
	buf := make([]float32, m*d.F)
	vals := make([][]float32, d.F)
	for f := range vals {
		vals[f] = buf[f*m : f*m : (f+1)*m]
	}
	for r := 0; r < n; r += stride {
		for f, v := range d.X[r*d.F : (r+1)*d.F] {
			if finite32(v) {
				vals[f] = append(vals[f], v)
			}
		}
	}
	return vals
}

// cutsFor is the bin edges of a feature whose sampled finite values are vals
// (reordered): ascending, strictly increasing values of the feature. Bin b
// holds the values x with cuts[b-1] < x <= cuts[b]; the last bin
// (len(cuts)) holds the values above every cut and NaN. A split after bin b
// sends x <= cuts[b] left, which is exactly the rows of bins 0..b. A feature
// with a single value has no cuts.
func cutsFor(vals []float32, bins int, scratch *[]uint32) []float32 {
	if len(vals) == 0 {
		return nil
	}
	sortFloat32s(vals, scratch)
	distinct := 1
	for i := 1; i < len(vals); i++ {
		if vals[i] != vals[i-1] {
			distinct++
		}
	}
	top := vals[len(vals)-1]
	var cuts []float32
	if distinct <= bins {
		cuts = make([]float32, 0, distinct-1)
		for i, v := range vals {
			if v != top && (i+1 == len(vals) || vals[i+1] != v) {
				cuts = append(cuts, v)
			}
		}
		return cuts
	}
	// Equal-frequency edges: bin i ends at rank (i+1)·m/bins - 1; edges that
	// repeat (heavy ties) or reach the maximum are dropped.
	m := len(vals)
	cuts = make([]float32, 0, bins-1)
	for i := 1; i < bins; i++ {
		c := vals[i*m/bins-1]
		if c >= top || (len(cuts) > 0 && c <= cuts[len(cuts)-1]) {
			continue
		}
		cuts = append(cuts, c)
	}
	return cuts
}

// sortFloat32s sorts finite values ascending by a radix sort of their
// order-preserving bit patterns (-0 and +0 are kept apart, -0 first; they
// compare equal, so cutsFor treats them as one value either way). *scratch
// is grown as needed.
func sortFloat32s(v []float32, scratch *[]uint32) {
	if len(v) < 256 {
		slices.Sort(v)
		return
	}
	buf := slices.Grow((*scratch)[:0], 2*len(v))[:2*len(v)]
	*scratch = buf
	keys, tmp := buf[:len(v)], buf[len(v):]
	for i, x := range v {
		b := math.Float32bits(x)
		if b>>31 != 0 {
			b = ^b
		} else {
			b |= 1 << 31
		}
		keys[i] = b
	}
	for shift := uint(0); shift < 32; shift += 11 {
		var count [1 << 11]int
		for _, k := range keys {
			count[(k>>shift)&(1<<11-1)]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, k := range keys {
			d := (k >> shift) & (1<<11 - 1)
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	for i, b := range keys {
		if b>>31 != 0 {
			b &^= 1 << 31
		} else {
			b = ^b
		}
		v[i] = math.Float32frombits(b)
	}
}

// binOf is the bin of x under cuts: the first b with x <= cuts[b], or
// len(cuts) when there is none (x above every cut, or NaN). The search is
// branch-free: the steps are data-dependent, and mispredicted branches
// would cost more than the search.
func binOf(cuts []float32, x float32) uint8 {
	n := len(cuts)
	if n == 0 {
		return 0
	}
	base := 0
	for n > 1 {
		half := n >> 1
		base += half & -int(b2i(!(x <= cuts[base+half-1])))
		n -= half
	}
	if !(x <= cuts[base]) {
		base++
	}
	return uint8(base)
}
