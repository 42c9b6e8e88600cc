// Package sequential is sequential rules (SR, Ludewig & Jannach 2018): for
// every item a followed by item b within Steps events of the same session,
// rules[a][b] gains the product of the two events' weights divided by their
// distance d (1/d for clicks). A request scores the successors of the
// latest items of the user's current session, the latest weighing most
// (Decay^k for the k-th latest).
//
// Bounds: an item keeps at most MaxSuccessors rules. When a full row meets
// a new successor, its weakest quarter is pruned first, so newcomers have
// room to build up before they compete.
//
// Retention: Evict takes back every rule the evicted event formed with the
// later events of its session, as if it had never been applied. Weights are
// fixed point (1/1024 of a unit), so adding and subtracting the same
// contributions is exact and a rule with nothing left disappears; the one
// exception is a rule pruned from its row, whose later subtractions find
// nothing to take back (Stats counts the pruned rules).
//
// Concurrency: Apply and Evict need the caller's write lock; Candidates and
// Because only the read lock (their scratch comes from a pool).
package sequential

import (
	"fmt"
	"iter"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// Name is the source name.
const Name = "sequential"

// Config tunes the model.
type Config struct {
	// Steps is how far apart, in events of one session, two events form a
	// rule (1: only consecutive events).
	Steps int
	// MaxSuccessors is the most rules an item keeps.
	MaxSuccessors int
	// QueryItems is how many of the current session's latest events score
	// candidates.
	QueryItems int
	// Decay weighs the query's events: the k-th latest (0 the latest)
	// counts Decay^k.
	Decay float64
	// Normalize divides each row's weights by the row's total, so that a
	// frequent item's rules do not drown those of the other query items.
	Normalize bool
}

// DefaultConfig returns the defaults, tuned by prequential replay of
// yoochoose-clicks-100k (scored on events 20-60%, see TestTune): HitRate@20
// 0.475 / MRR@20 0.211 there and 0.500 / 0.209 on events 60-100%. More
// steps or query items gain little past these.
func DefaultConfig() Config {
	return Config{Steps: 3, MaxSuccessors: 100, QueryItems: 5, Decay: 0.6, Normalize: true}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Steps <= 0 {
		c.Steps = d.Steps
	}
	if c.MaxSuccessors <= 0 {
		c.MaxSuccessors = d.MaxSuccessors
	}
	if c.QueryItems <= 0 {
		c.QueryItems = d.QueryItems
	}
	if c.Decay <= 0 || c.Decay > 1 {
		c.Decay = d.Decay
	}
	return c
}

// unit is the fixed-point scale of rule weights.
const unit = 1024

// units is the fixed-point weight of one contribution (at least one unit,
// so a pair that happened exists).
func units(c float64) uint32 {
	u := math.Round(c * unit)
	switch {
	case u < 1:
		return 1
	case u > 1<<24:
		return 1 << 24
	}
	return uint32(u)
}

// rule is one successor and its weight.
type rule struct {
	key int32 // the successor; free when a slot holds none
	val uint32
}

// free marks an empty slot (item ids are not negative).
const free = -1

// row is one item's rules: an open-addressing table (linear probing) of
// successors, kept at most 7/8 full.
type row struct {
	slots []rule // empty, or a power of two long
	n     int32  // rules held
	total uint64 // sum of vals
}

// home is b's first slot in a table of 1<<bits slots.
func home(b int32, bits uint) int {
	return int((uint32(b) * 0x9E3779B1) >> (32 - bits))
}

// find returns the slot of b, or the free slot where it would go and
// false; -1 when the row has no table.
func (r *row) find(b int32) (int, bool) {
	mask := len(r.slots) - 1
	if mask < 0 {
		return -1, false
	}
	h := home(b, uint(bits.Len(uint(mask))))
	for {
		k := r.slots[h].key
		if k == b {
			return h, true
		}
		if k == free {
			return h, false
		}
		h = (h + 1) & mask
	}
}

// room makes the table big enough for n rules.
func (r *row) room(n int) {
	size := len(r.slots)
	if n*8 <= size*7 {
		return
	}
	size = max(size, 4)
	for n*8 > size*7 {
		size *= 2
	}
	old := r.slots
	r.slots = make([]rule, size)
	for i := range r.slots {
		r.slots[i].key = free
	}
	for _, x := range old {
		if x.key != free {
			r.put(x)
		}
	}
}

// put stores x, whose key the table does not hold, in its free slot.
func (r *row) put(x rule) {
	h, _ := r.find(x.key)
	r.slots[h] = x
}

// del empties slot h, moving later entries of its probe run back so that
// no lookup stops short (backward-shift deletion).
func (r *row) del(h int) {
	mask := len(r.slots) - 1
	b := uint(bits.Len(uint(mask)))
	for j := (h + 1) & mask; r.slots[j].key != free; j = (j + 1) & mask {
		k := home(r.slots[j].key, b)
		// The entry at j may fill h unless its home lies cyclically in (h, j].
		if (h <= j && (h < k && k <= j)) || (h > j && (h < k || k <= j)) {
			continue
		}
		r.slots[h] = r.slots[j]
		h = j
	}
	r.slots[h] = rule{key: free}
}

// Model is the sequential-rules state.
type Model struct {
	cfg    Config
	rows   []row
	rules  int
	pruned uint64
	pool   sync.Pool
	rank   []uint64 // prune's scratch
}

// New returns an empty model.
func New(cfg Config) *Model {
	m := &Model{cfg: cfg.withDefaults()}
	m.pool.New = func() any { return new(scratch) }
	return m
}

// Name is the source name.
func (m *Model) Name() string { return Name }

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

func (m *Model) grow(n int) {
	for len(m.rows) < n {
		m.rows = append(m.rows, row{})
	}
}

// Apply adds the rules from the earlier events of the current session
// within Steps to this event.
func (m *Model) Apply(x *model.Interaction) {
	m.grow(max(x.Items, int(x.Item)+1))
	w := x.Entry.Weight
	if w <= 0 || x.Session >= len(x.History) || x.Entry.StartsSession() {
		return
	}
	sess := x.History[x.Session:]
	for d := 1; d <= m.cfg.Steps && d <= len(sess); d++ {
		a := sess[len(sess)-d]
		if a.Weight <= 0 || a.Item == x.Item || a.Item < 0 || int(a.Item) >= len(m.rows) {
			continue
		}
		m.add(a.Item, x.Item, units(float64(a.Weight)*float64(w)/float64(d)))
	}
}

// Evict takes back the rules x.Entry, a user's oldest event, formed with
// the later events of its session (x.History, the events after it).
func (m *Model) Evict(x *model.Interaction) {
	e := x.Entry
	if e.Weight <= 0 || e.Item < 0 || int(e.Item) >= len(m.rows) {
		return
	}
	for k := 0; k < m.cfg.Steps && k < len(x.History); k++ {
		b := x.History[k]
		if b.StartsSession() {
			break
		}
		if b.Weight <= 0 || b.Item == e.Item {
			continue
		}
		m.sub(e.Item, b.Item, units(float64(e.Weight)*float64(b.Weight)/float64(k+1)))
	}
}

func (m *Model) add(a, b int32, c uint32) {
	r := &m.rows[a]
	h, ok := r.find(b)
	if ok {
		x := &r.slots[h]
		v := min(uint64(x.val)+uint64(c), math.MaxUint32)
		r.total += v - uint64(x.val)
		x.val = uint32(v)
		return
	}
	if int(r.n) >= m.cfg.MaxSuccessors {
		m.prune(r)
		h = -1
	}
	if int(r.n+1)*8 > len(r.slots)*7 {
		r.room(int(r.n) + 1)
		h = -1
	}
	if h < 0 {
		h, _ = r.find(b)
	}
	r.slots[h] = rule{b, c}
	r.n++
	r.total += uint64(c) // after prune, which recounts the total
	m.rules++
}

func (m *Model) sub(a, b int32, c uint32) {
	r := &m.rows[a]
	h, ok := r.find(b)
	if !ok {
		return // pruned
	}
	x := &r.slots[h]
	c = min(c, x.val)
	r.total -= uint64(c)
	x.val -= c
	if x.val == 0 {
		r.del(h)
		r.n--
		m.rules--
	}
}

// strength orders rules for pruning: the heavier first, then the lower
// item id (keys are not negative).
func strength(x rule) uint64 {
	return uint64(x.val)<<32 | uint64(math.MaxUint32-uint32(x.key))
}

// prune drops the weakest quarter of a full row (at least one rule; ties:
// the higher item id goes first).
func (m *Model) prune(r *row) {
	keep := m.cfg.MaxSuccessors - max(m.cfg.MaxSuccessors/4, 1)
	if keep >= int(r.n) {
		return
	}
	var weakest uint64 = math.MaxUint64
	if keep > 0 {
		rank := m.rank[:0]
		for _, x := range r.slots {
			if x.key != free {
				rank = append(rank, strength(x))
			}
		}
		m.rank = rank
		// The keep-th strongest is the weakest kept; strengths are distinct.
		weakest = nth(rank, len(rank)-keep)
	}
	// Delete the weaker in place. A deletion shifts later entries of the
	// probe run back, into slot i among others, so i is looked at again;
	// an entry shifted across the end into a slot already passed is a kept
	// one (the weaker there are gone), and stays kept.
	gone := 0
	for i := 0; i < len(r.slots); {
		x := r.slots[i]
		if x.key != free && strength(x) < weakest {
			r.del(i)
			gone++
			r.total -= uint64(x.val)
			continue
		}
		i++
	}
	m.pruned += uint64(gone)
	m.rules -= gone
	r.n -= int32(gone)
}

// nth returns the k-th smallest of a (0-based), reordering a
// (quickselect).
func nth(a []uint64, k int) uint64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		// Median of three to the hi end as the pivot.
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[mid] < a[hi] {
			a[mid], a[hi] = a[hi], a[mid]
		}
		pv := a[hi]
		p := lo
		for i := lo; i < hi; i++ { // branch-free Lomuto: a[p:i] >= pv
			v := a[i]
			a[i] = a[p]
			a[p] = v
			if v < pv {
				p++
			}
		}
		a[p], a[hi] = a[hi], a[p]
		switch {
		case p == k:
			return a[p]
		case p < k:
			lo = p + 1
		default:
			hi = p - 1
		}
	}
	return a[k]
}

type scratch struct {
	touch []int32
}

// queryRows yields the current session's latest QueryItems events of
// positive weight, newest first, with their decayed weight (Decay^k), those
// whose item has a row.
func (m *Model) queryRows(q *model.Query) iter.Seq2[history.Entry, float64] {
	return func(yield func(history.Entry, float64) bool) {
		sess := q.SessionItems()
		f := 1.0
		seen := 0
		for k := len(sess) - 1; k >= 0 && seen < m.cfg.QueryItems; k-- {
			e := sess[k]
			if e.Weight <= 0 {
				continue
			}
			seen++
			w := f
			f *= m.cfg.Decay
			if e.Item < 0 || int(e.Item) >= len(m.rows) {
				continue
			}
			if !yield(e, w) {
				return
			}
		}
	}
}

// Candidates appends the q.Want best successors of the current session's
// latest items that q.Skip lets through.
func (m *Model) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if q.Want <= 0 {
		return dst
	}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	acc := q.Acc
	sc.touch = sc.touch[:0]
	for e, w := range m.queryRows(q) {
		r := &m.rows[e.Item]
		if r.total == 0 {
			continue
		}
		s := float32(w / unit)
		if m.cfg.Normalize {
			s = float32(w / float64(r.total))
		}
		for _, x := range r.slots {
			b := x.key
			if b == free || int(b) >= len(acc) {
				continue
			}
			v := s * float32(x.val)
			if v <= 0 {
				continue
			}
			if acc[b] == 0 {
				sc.touch = append(sc.touch, b)
			}
			acc[b] += v
		}
	}
	dst = model.TopTouched(q, acc, sc.touch, dst)
	for _, it := range sc.touch {
		acc[it] = 0
	}
	return dst
}

// Because appends the latest items of the current session with a rule to
// item, strongest contribution first.
func (m *Model) Because(q *model.Query, item int32, dst []int32) []int32 {
	type why struct {
		item int32
		w    float64
	}
	var ws []why
	for e, w := range m.queryRows(q) {
		r := &m.rows[e.Item]
		if i, ok := r.find(item); ok {
			v := w * float64(r.slots[i].val)
			if m.cfg.Normalize {
				v /= float64(r.total)
			}
			if j := slices.IndexFunc(ws, func(x why) bool { return x.item == e.Item }); j >= 0 {
				ws[j].w += v
			} else {
				ws = append(ws, why{e.Item, v})
			}
		}
	}
	slices.SortStableFunc(ws, func(a, b why) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return 0
	})
	for _, x := range ws {
		dst = append(dst, x.item)
	}
	return dst
}

// Rule returns the weight of the rule a → b (0 when there is none).
func (m *Model) Rule(a, b int32) float64 {
	if a < 0 || int(a) >= len(m.rows) {
		return 0
	}
	r := &m.rows[a]
	if i, ok := r.find(b); ok {
		return float64(r.slots[i].val) / unit
	}
	return 0
}

// Successors is the number of rules item has.
func (m *Model) Successors(item int32) int {
	if item < 0 || int(item) >= len(m.rows) {
		return 0
	}
	return int(m.rows[item].n)
}

// Stats are the model's figures for /v1/stats.
type Stats struct {
	Items  int    `json:"items"`
	Rules  int    `json:"rules"`
	Pruned uint64 `json:"pruned"`
	Bytes  int64  `json:"bytes"`
}

// Stats reports the model's figures.
func (m *Model) Stats() any {
	return Stats{Items: len(m.rows), Rules: m.rules, Pruned: m.pruned, Bytes: m.Bytes()}
}

// Bytes is the memory held by the rules.
func (m *Model) Bytes() int64 {
	n := int64(cap(m.rows)) * 40
	for i := range m.rows {
		n += int64(cap(m.rows[i].slots)) * 8
	}
	return n
}

// Fingerprint names the format and the configuration the state depends on
// (the query settings included, so that a change is visible).
func (m *Model) Fingerprint() string {
	c := m.cfg
	return fmt.Sprintf("sequential/1 steps=%d successors=%d query=%d decay=%g normalize=%t",
		c.Steps, c.MaxSuccessors, c.QueryItems, c.Decay, c.Normalize)
}

// Encode writes the rules to a snapshot.
func (m *Model) Encode(e *snapshot.Encoder) {
	sizes := make([]uint32, len(m.rows))
	var keys []int32
	var vals []uint32
	var rules []rule
	for i := range m.rows {
		r := &m.rows[i]
		sizes[i] = uint32(r.n)
		rules = rules[:0]
		for _, x := range r.slots {
			if x.key != free {
				rules = append(rules, x)
			}
		}
		// By successor, not by slot: a table rebuilt on Decode places its
		// rules elsewhere, and the same state must encode the same bytes.
		slices.SortFunc(rules, func(a, b rule) int { return int(a.key - b.key) })
		for _, x := range rules {
			keys = append(keys, x.key)
			vals = append(vals, x.val)
		}
	}
	e.Uint(m.pruned)
	e.Slice(sizes, len(sizes))
	e.Slice(keys, len(keys))
	e.Slice(vals, len(vals))
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	pruned := d.Uint()
	sizes := snapshot.Uint32s(d)
	keys := snapshot.Int32s(d)
	vals := snapshot.Uint32s(d)
	d.Check(len(keys) == len(vals), "sequential columns differ in length")
	if d.Err() != nil {
		return
	}
	total := 0
	for _, s := range sizes {
		if int(s) > m.cfg.MaxSuccessors {
			d.Check(false, "sequential row longer than MaxSuccessors")
			return
		}
		total += int(s)
	}
	d.Check(total == len(keys), "sequential rows do not add up")
	for x, k := range keys {
		if k < 0 || int(k) >= len(sizes) || vals[x] == 0 {
			d.Check(false, "sequential rule names an unknown item or weighs nothing")
			return
		}
	}
	if d.Err() != nil {
		return
	}
	m.rows, m.rules, m.pruned = make([]row, len(sizes)), len(keys), pruned
	off := 0
	for i, s := range sizes {
		r := &m.rows[i]
		n := int(s)
		if n > 0 {
			r.room(n)
			for x := off; x < off+n; x++ {
				h, ok := r.find(keys[x])
				if ok {
					d.Check(false, "sequential row names a successor twice")
					m.rows, m.rules, m.pruned = nil, 0, 0
					return
				}
				r.slots[h] = rule{keys[x], vals[x]}
				r.total += uint64(vals[x])
			}
			r.n = int32(n)
		}
		off += n
	}
}
