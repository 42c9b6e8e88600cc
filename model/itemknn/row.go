package itemknn

// row is one item's co-occurrence counts: an open-addressing hash table from
// item id to weight in two flat arrays, so that a scan of the whole row (the
// hot part of computing neighbours) walks contiguous memory.
type row struct {
	keys []int32 // -1: empty slot
	vals []float32
	n    int
}

func hash32(k int32) uint32 { return uint32(k) * 0x9E3779B1 }

// add adds v to the count of k and reports whether k is new.
func (r *row) add(k int32, v float32) bool {
	if (r.n+1)*4 > len(r.keys)*3 {
		r.grow()
	}
	mask := uint32(len(r.keys) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		switch r.keys[i] {
		case k:
			r.vals[i] += v
			return false
		case -1:
			r.keys[i] = k
			r.vals[i] = v
			r.n++
			return true
		}
	}
}

func (r *row) grow() {
	size := 8
	if len(r.keys) > 0 {
		size = 2 * len(r.keys)
	}
	oldK, oldV := r.keys, r.vals
	r.keys = make([]int32, size)
	r.vals = make([]float32, size)
	for i := range r.keys {
		r.keys[i] = -1
	}
	r.n = 0
	for i, k := range oldK {
		if k >= 0 {
			r.add(k, oldV[i])
		}
	}
}

// get returns the count of k.
func (r *row) get(k int32) float32 {
	if len(r.keys) == 0 {
		return 0
	}
	mask := uint32(len(r.keys) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		switch r.keys[i] {
		case k:
			return r.vals[i]
		case -1:
			return 0
		}
	}
}
