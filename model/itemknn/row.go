package itemknn

// row is one item's co-occurrence counts: an open-addressing hash table from
// item id to weight in one flat array of (key, value) slots, so that an
// update touches one cache line and a scan of the whole row (the hot part of
// computing neighbours) walks contiguous memory.
//
// Counts are fixed point (units of 1/unit of weight) so that adding and
// later subtracting the same contributions is exact, whatever their order:
// a pair whose every contribution was evicted is gone, not left with a
// rounding residue. A slot holds the low 32 bits; the rare count that
// passes 2^32 units keeps its high bits in hi. Deletion shifts later slots
// back (no tombstones), and a row that falls below a quarter full is halved
// (it grows again past three quarters).
type row struct {
	slots []slot
	n     int
	hi    map[int32]uint32 // high 32 bits of counts of 2^32 units or more
}

type slot struct {
	key int32 // -1: empty
	val uint32
}

func hash32(k int32) uint32 { return uint32(k) * 0x9E3779B1 }

// count is the full count of the slot at i.
func (r *row) count(i int) uint64 {
	v := uint64(r.slots[i].val)
	if r.hi != nil {
		v |= uint64(r.hi[r.slots[i].key]) << 32
	}
	return v
}

func (r *row) set(i int, v uint64) {
	s := &r.slots[i]
	s.val = uint32(v)
	if h := uint32(v >> 32); h != 0 {
		if r.hi == nil {
			r.hi = map[int32]uint32{}
		}
		r.hi[s.key] = h
	} else if r.hi != nil {
		delete(r.hi, s.key)
		if len(r.hi) == 0 {
			r.hi = nil
		}
	}
}

// add adds v to the count of k and reports whether k is new.
func (r *row) add(k int32, v uint64) bool {
	if (r.n+1)*4 > len(r.slots)*3 {
		r.resize(max(8, 2*len(r.slots)))
	}
	mask := uint32(len(r.slots) - 1)
	for i := hash32(k) & mask; ; i = (i + 1) & mask {
		s := &r.slots[i]
		switch s.key {
		case k:
			if r.hi == nil && uint64(s.val)+v < 1<<32 {
				s.val += uint32(v)
			} else {
				r.set(int(i), r.count(int(i))+v)
			}
			return false
		case -1:
			s.key = k
			r.set(int(i), v)
			r.n++
			return true
		}
	}
}

// sub subtracts v from the count of k and reports whether k is gone (its
// count reached zero). Subtracting from a key that is absent does nothing.
func (r *row) sub(k int32, v uint64) bool {
	if r.n == 0 {
		return false
	}
	mask := uint32(len(r.slots) - 1)
	i := hash32(k) & mask
	for ; r.slots[i].key != k; i = (i + 1) & mask {
		if r.slots[i].key == -1 {
			return false
		}
	}
	c := r.count(int(i))
	if c > v {
		r.set(int(i), c-v)
		return false
	}
	r.set(int(i), 0)
	r.del(i)
	if r.n == 0 {
		r.slots = nil
	} else if len(r.slots) > 8 && r.n*4 < len(r.slots) {
		r.resize(len(r.slots) / 2)
	}
	return true
}

// del empties slot i and moves later slots of the same probe run back into
// the gap when their home is at or before it (backward-shift deletion).
func (r *row) del(i uint32) {
	mask := uint32(len(r.slots) - 1)
	for j := (i + 1) & mask; r.slots[j].key != -1; j = (j + 1) & mask {
		home := hash32(r.slots[j].key) & mask
		// The entry at j may move to i when i lies cyclically in [home, j).
		if (j-home)&mask >= (j-i)&mask {
			r.slots[i] = r.slots[j]
			i = j
		}
	}
	r.slots[i] = slot{key: -1}
	r.n--
}

// resize rehashes the row into size slots (a power of two).
func (r *row) resize(size int) {
	old := r.slots
	r.slots = make([]slot, size)
	for i := range r.slots {
		r.slots[i].key = -1
	}
	mask := uint32(size - 1)
	for _, s := range old {
		if s.key < 0 {
			continue
		}
		i := hash32(s.key) & mask
		for r.slots[i].key != -1 {
			i = (i + 1) & mask
		}
		r.slots[i] = s
	}
}
