package itemknn

// row is one item's co-occurrence counts: an open-addressing hash table from
// item id to weight in one flat array of (key, value) slots, so that an
// update touches one cache line and a scan of the whole row (the hot part of
// computing neighbours) walks contiguous memory.
type row struct {
	slots []slot
	n     int
}

type slot struct {
	key int32 // -1: empty
	val float32
}

func hash32(k int32) uint32 { return uint32(k) * 0x9E3779B1 }

// add adds v to the count of k and reports whether k is new.
func (r *row) add(k int32, v float32) bool {
	if (r.n+1)*4 > len(r.slots)*3 {
		r.grow()
	}
	mask := uint32(len(r.slots) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		s := &r.slots[i]
		switch s.key {
		case k:
			s.val += v
			return false
		case -1:
			s.key, s.val = k, v
			r.n++
			return true
		}
	}
}

func (r *row) grow() {
	size := 8
	if len(r.slots) > 0 {
		size = 2 * len(r.slots)
	}
	old := r.slots
	r.slots = make([]slot, size)
	for i := range r.slots {
		r.slots[i].key = -1
	}
	r.n = 0
	for _, s := range old {
		if s.key >= 0 {
			r.add(s.key, s.val)
		}
	}
}
