// Package itemknn is incremental item-to-item collaborative filtering.
//
// Every positive event pairs its item with the items of the same user's
// recent history (a bounded window), adding the product of the two weights to
// their co-occurrence; each item also accumulates the sum of its squared
// weights. The similarity of i and j is cosine: C(i,j) / sqrt(N(i)·N(j)).
//
// Retention: Evict forgets the oldest entry of a user's history, subtracting
// its squared weight and every pair it formed with the later entries of its
// window, so the model is always the one the kept histories alone would
// build. Counts are fixed point (1/1024 of a unit of weight per
// contribution), which makes the subtraction exact: a pair with nothing left
// disappears from its row, and rows shrink as they empty.
// An item's top neighbours are computed from its co-occurrence row the first
// time they are asked for after the row changed, so the write path stays
// cheap and every read sees the events applied before it. Under constant
// writes a popular item's row changes between almost every two reads while
// its list barely moves, so a list is kept until its item has had
// Config.Refresh more updates than it had when the list was computed (1/32
// by default; 0 recomputes after every change). The user's own events always
// count at once: they change the query (the history), not the lists.
//
// Concurrency: Apply is not safe for concurrent use and needs the caller's
// write lock; Neighbors and Score need only the read lock (neighbour lists are
// immutable and published through atomic pointers).
package itemknn

import (
	"iter"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// Config tunes the model.
type Config struct {
	// Window is how many of the user's latest events a new event is paired
	// with (co-occurrence over a bounded recent window).
	Window int
	// Neighbors is how many neighbours are kept per item.
	Neighbors int
	// QueryItems is how many of the user's latest events score candidates
	// (an item consumed twice among them counts twice).
	QueryItems int
	// Decay weighs the user's items by recency: the k-th latest counts
	// Decay^k. 1 means no decay.
	Decay float32
	// Refresh is how stale a cached neighbour list may grow: it is kept
	// until its item has had more than this share of new co-occurrence
	// updates since it was computed (an item with 3,200 updates at the
	// default 1/32 is recomputed after 100 more; one with fewer than 32,
	// after every change). 0 recomputes after every change. Readers
	// recompute lists, so under constant writes this bounds the work a read
	// does for popular items whose lists barely move.
	Refresh float32
}

// DefaultConfig returns the defaults, tuned by prequential replay of ml-100k
// (docs/EVALUATION.md).
func DefaultConfig() Config {
	return Config{Window: 10, Neighbors: 200, QueryItems: 20, Decay: 0.8, Refresh: 1.0 / 32}
}

const chunk = 1024

type neighbors struct {
	ver   uint64 // the item's version it was computed at
	until uint64 // the newest version it answers for (Config.Refresh)
	items []int32
	sims  []float32
}

// Model is the item-kNN state.
type Model struct {
	cfg   Config
	rows  []row
	norm  []uint64 // sum of squared weights, in units
	ver   []uint64
	cache []*[chunk]atomic.Pointer[neighbors]
	pairs int

	// pending co-occurrence updates, applied by Flush, in parallel shards
	// when there are many (each row is updated by one goroutine, in order,
	// so results do not depend on the number of shards).
	pending []update
	shards  int
}

type update struct {
	row, other int32
	c          int64 // units: added when positive, subtracted when negative
}

// unit is the fixed-point scale of counts: 1/1024 of a unit of weight, so
// the products of the presets' weights are exact.
const unit = 1024

// units is the fixed-point count of one contribution c > 0 (at least one
// unit, so that a pair that co-occurred exists).
func units(c float32) int64 {
	u := math.Round(float64(c) * unit)
	switch {
	case u < 1:
		return 1
	case u > 1<<52:
		return 1 << 52
	}
	return int64(u)
}

// weight converts a count back to weight.
func weight(u uint64) float32 { return float32(float64(u) / unit) }

// parallelFlush is the number of pending updates above which Flush uses
// several goroutines.
const parallelFlush = 8192

// maxPending bounds the pending updates of a long batch (a replay).
const maxPending = 1 << 18

// New returns an empty model.
func New(cfg Config) *Model {
	d := DefaultConfig()
	if cfg.Window <= 0 {
		cfg.Window = d.Window
	}
	if cfg.Neighbors <= 0 {
		cfg.Neighbors = d.Neighbors
	}
	if cfg.QueryItems <= 0 {
		cfg.QueryItems = d.QueryItems
	}
	if cfg.Decay <= 0 || cfg.Decay > 1 {
		cfg.Decay = d.Decay
	}
	cfg.Refresh = min(max(cfg.Refresh, 0), 1)
	return &Model{cfg: cfg, shards: min(runtime.GOMAXPROCS(0), 4)}
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

func (m *Model) grow(item int32) {
	for int(item) >= len(m.rows) {
		m.rows = append(m.rows, row{})
		m.norm = append(m.norm, 0)
		m.ver = append(m.ver, 1)
		if len(m.rows) > len(m.cache)*chunk {
			m.cache = append(m.cache, new([chunk]atomic.Pointer[neighbors]))
		}
	}
}

// Apply records that a user gave item the weight w; prev is that user's
// history before this event, oldest first. The co-occurrence counts change
// at the next Flush, which must come before any read.
func (m *Model) Apply(item int32, w float32, prev []history.Entry) {
	m.grow(item)
	if w <= 0 {
		return
	}
	m.norm[item] += uint64(units(w * w))
	m.ver[item]++
	if len(prev) > m.cfg.Window {
		prev = prev[len(prev)-m.cfg.Window:]
	}
	for _, h := range prev {
		if h.Item == item || h.Weight <= 0 {
			continue
		}
		c := units(w * h.Weight)
		m.pending = append(m.pending, update{item, h.Item, c}, update{h.Item, item, c})
		m.ver[h.Item]++
	}
	if len(m.pending) >= maxPending {
		m.Flush()
	}
}

// Evict forgets old, the oldest entry of a user's history; after is the rest
// of that history, oldest first (the entries applied after old, which paired
// with it when it was within their window). The counts change at the next
// Flush, which must come before any read.
func (m *Model) Evict(old history.Entry, after []history.Entry) {
	if old.Weight <= 0 || int(old.Item) >= len(m.rows) || old.Item < 0 {
		return // it counted nothing
	}
	n := uint64(units(old.Weight * old.Weight))
	m.norm[old.Item] -= min(n, m.norm[old.Item])
	m.ver[old.Item]++
	if len(after) > m.cfg.Window {
		after = after[:m.cfg.Window]
	}
	for _, h := range after {
		if h.Item == old.Item || h.Weight <= 0 {
			continue
		}
		// The same product as when h was applied with old in its window.
		c := units(h.Weight * old.Weight)
		m.pending = append(m.pending, update{h.Item, old.Item, -c}, update{old.Item, h.Item, -c})
		m.ver[h.Item]++
	}
	if len(m.pending) >= maxPending {
		m.Flush()
	}
}

// Flush applies the pending co-occurrence updates.
func (m *Model) Flush() {
	if len(m.pending) < parallelFlush || m.shards < 2 {
		m.pairs += m.flushShard(0, 1)
	} else {
		var wg sync.WaitGroup
		added := make([]int, m.shards)
		for k := range m.shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				added[k] = m.flushShard(int32(k), int32(m.shards))
			}()
		}
		wg.Wait()
		for _, a := range added {
			m.pairs += a
		}
	}
	m.pending = m.pending[:0]
}

// flushShard applies the pending updates of rows r with r % of == k and
// returns how many pairs they created less how many they removed (counted in
// the row of the smaller item id, so each pair once).
func (m *Model) flushShard(k, of int32) int {
	added := 0
	for _, u := range m.pending {
		if u.row%of != k {
			continue
		}
		r := &m.rows[u.row]
		if u.c > 0 {
			if r.add(u.other, uint64(u.c)) && u.row < u.other {
				added++
			}
		} else if r.sub(u.other, uint64(-u.c)) && u.row < u.other {
			added--
		}
	}
	return added
}

// Neighbors returns the top neighbours of item and their similarities, best
// first. The slices must not be modified.
func (m *Model) Neighbors(item int32) ([]int32, []float32) {
	if item < 0 || int(item) >= len(m.rows) {
		return nil, nil
	}
	p := &m.cache[item/chunk][item%chunk]
	ver := m.ver[item]
	if n := p.Load(); n != nil && ver >= n.ver && ver <= n.until {
		return n.items, n.sims
	}
	n := m.compute(item, ver)
	p.Store(n)
	return n.items, n.sims
}

func (m *Model) compute(item int32, ver uint64) *neighbors {
	r := &m.rows[item]
	n := &neighbors{ver: ver, until: ver + uint64(float64(ver)*float64(m.cfg.Refresh))}
	if r.n == 0 {
		return n
	}
	items := make([]int32, 0, r.n)
	sims := make([]float32, 0, r.n)
	ni := weight(m.norm[item])
	for k, sl := range r.slots {
		j := sl.key
		if j < 0 {
			continue
		}
		d := ni * weight(m.norm[j])
		if d <= 0 {
			continue
		}
		c := weight(uint64(sl.val))
		if r.hi != nil {
			c = weight(r.count(k))
		}
		items = append(items, j)
		sims = append(sims, c/float32(math.Sqrt(float64(d))))
	}
	if len(items) > m.cfg.Neighbors {
		selectTop(items, sims, m.cfg.Neighbors)
		items = slices.Clip(items[:m.cfg.Neighbors])
		sims = slices.Clip(sims[:m.cfg.Neighbors])
	}
	n.items, n.sims = items, sims
	return n
}

// selectTop moves the k largest sims (and their items) to the front, in no
// particular order (quickselect; ties broken by the lower item id).
func selectTop(items []int32, sims []float32, k int) {
	better := func(a, b int) bool {
		if sims[a] != sims[b] {
			return sims[a] > sims[b]
		}
		return items[a] < items[b]
	}
	swap := func(a, b int) {
		items[a], items[b] = items[b], items[a]
		sims[a], sims[b] = sims[b], sims[a]
	}
	lo, hi := 0, len(items)-1
	for lo < hi {
		// Median of three as the pivot, moved to hi.
		mid := lo + (hi-lo)/2
		if better(mid, lo) {
			swap(mid, lo)
		}
		if better(hi, lo) {
			swap(hi, lo)
		}
		if better(mid, hi) {
			swap(mid, hi)
		}
		p := lo
		for i := lo; i < hi; i++ {
			if better(i, hi) {
				swap(i, p)
				p++
			}
		}
		swap(p, hi)
		switch {
		case p == k || p == k-1:
			return
		case p < k:
			lo = p + 1
		default:
			hi = p - 1
		}
	}
}

// SortedNeighbors returns the top neighbours of item best first, in new
// slices the caller owns.
func (m *Model) SortedNeighbors(item int32) ([]int32, []float32) {
	items, sims := m.Neighbors(item)
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case sims[a] > sims[b]:
			return -1
		case sims[a] < sims[b]:
			return 1
		}
		return int(items[a] - items[b])
	})
	oi := make([]int32, len(idx))
	os := make([]float32, len(idx))
	for i, x := range idx {
		oi[i], os[i] = items[x], sims[x]
	}
	return oi, os
}

// Score adds, for every neighbour of the user's recent items, the
// recency-decayed, weight-scaled similarity into acc (indexed by item id),
// and appends each item it touches for the first time to touched. hist is the
// user's history, oldest first. acc must be zero for items not in touched and
// at least as long as the number of items.
func (m *Model) Score(hist []history.Entry, acc []float32, touched []int32) []int32 {
	for item, w := range m.query(hist) {
		items, sims := m.Neighbors(item)
		for x, j := range items {
			if acc[j] == 0 {
				touched = append(touched, j)
			}
			acc[j] += w * sims[x]
			if acc[j] == 0 { // keep "touched" exact even if contributions cancel
				acc[j] = math.SmallestNonzeroFloat32
			}
		}
	}
	return touched
}

// query yields the items that score for a history, latest first: the
// latest QueryItems events, each with its weight decayed by Decay per step
// back (events that weigh 0 are left out).
func (m *Model) query(hist []history.Entry) iter.Seq2[int32, float32] {
	return func(yield func(int32, float32) bool) {
		f := float32(1)
		seen := 0
		for k := len(hist) - 1; k >= 0 && seen < m.cfg.QueryItems; k-- {
			h := hist[k]
			seen++
			w := h.Weight * f
			f *= m.cfg.Decay
			if w != 0 && !yield(h.Item, w) {
				return
			}
		}
	}
}

// Items is the number of item slots.
func (m *Model) Items() int { return len(m.rows) }

// Pairs is the number of distinct co-occurring item pairs stored.
func (m *Model) Pairs() int { return m.pairs }

// Bytes is the memory held by the co-occurrence rows, norms, versions and
// the cached neighbour lists.
func (m *Model) Bytes() int64 {
	n := int64(cap(m.rows))*40 + int64(cap(m.norm))*8 + int64(cap(m.ver))*8 + int64(len(m.cache))*chunk*8
	for i := range m.rows {
		n += int64(cap(m.rows[i].slots))*8 + int64(len(m.rows[i].hi))*16
		if i/chunk < len(m.cache) {
			if nb := m.cache[i/chunk][i%chunk].Load(); nb != nil {
				n += 56 + int64(cap(nb.items))*4 + int64(cap(nb.sims))*4
			}
		}
	}
	return n
}

// Encode writes the co-occurrence rows and norms to a snapshot (the
// neighbour lists are recomputed on first read). Pending updates must have
// been flushed.
func (m *Model) Encode(e *snapshot.Encoder) {
	sizes := make([]uint32, len(m.rows))
	var keys []int32
	var vals []uint32
	var hiRows, hiKeys, hiVals []uint32
	for i := range m.rows {
		r := &m.rows[i]
		sizes[i] = uint32(len(r.slots))
		for _, s := range r.slots {
			keys = append(keys, s.key)
			vals = append(vals, s.val)
			if r.hi != nil && s.key >= 0 {
				if h := r.hi[s.key]; h != 0 {
					hiRows, hiKeys, hiVals = append(hiRows, uint32(i)), append(hiKeys, uint32(s.key)), append(hiVals, h)
				}
			}
		}
	}
	e.Uint(uint64(m.pairs))
	e.Slice(sizes, len(sizes))
	e.Slice(keys, len(keys))
	e.Slice(vals, len(vals))
	e.Slice(hiRows, len(hiRows))
	e.Slice(hiKeys, len(hiKeys))
	e.Slice(hiVals, len(hiVals))
	e.Slice(m.norm, len(m.norm))
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	m.pairs = int(d.Uint())
	sizes := snapshot.Uint32s(d)
	keys := snapshot.Int32s(d)
	vals := snapshot.Uint32s(d)
	hiRows := snapshot.Uint32s(d)
	hiKeys := snapshot.Uint32s(d)
	hiVals := snapshot.Uint32s(d)
	norm := snapshot.Uint64s(d)
	d.Check(len(keys) == len(vals) && len(norm) == len(sizes), "item-kNN columns differ in length")
	d.Check(len(hiRows) == len(hiKeys) && len(hiKeys) == len(hiVals), "item-kNN high counts differ in length")
	if d.Err() != nil {
		return
	}
	m.rows, m.norm, m.ver, m.cache = nil, nil, nil, nil
	if len(sizes) > 0 {
		m.grow(int32(len(sizes) - 1))
	}
	copy(m.norm, norm)
	off := 0
	for i, size := range sizes {
		n := int(size)
		if n&(n-1) != 0 || off+n > len(keys) {
			d.Check(false, "item-kNN row size")
			return
		}
		r := &m.rows[i]
		if n > 0 {
			r.slots = make([]slot, n)
		}
		for k := range r.slots {
			key := keys[off+k]
			if key >= int32(len(sizes)) || key < -1 {
				d.Check(false, "item-kNN row names an unknown item")
				return
			}
			r.slots[k] = slot{key: key, val: vals[off+k]}
			if key >= 0 {
				r.n++
			}
		}
		if n > 0 && r.n == n {
			d.Check(false, "item-kNN row is full")
			return
		}
		off += n
	}
	d.Check(off == len(keys), "item-kNN rows do not add up")
	for x, ri := range hiRows {
		if int(ri) >= len(m.rows) || hiVals[x] == 0 {
			d.Check(false, "item-kNN high count")
			return
		}
		r := &m.rows[ri]
		if r.hi == nil {
			r.hi = map[int32]uint32{}
		}
		r.hi[int32(hiKeys[x])] = hiVals[x]
	}
}
