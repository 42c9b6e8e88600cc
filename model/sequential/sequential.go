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
	"math"
	"slices"
	"sync"

	"github.com/streamrec/streamrec/model"
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

// row is one item's rules: successors and their weights, unordered.
type row struct {
	keys  []int32
	vals  []uint32
	total uint64 // sum of vals
}

// Model is the sequential-rules state.
type Model struct {
	cfg    Config
	rows   []row
	rules  int
	pruned uint64
	pool   sync.Pool
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
	r.total += uint64(c)
	if i := slices.Index(r.keys, b); i >= 0 {
		r.vals[i] = uint32(min(uint64(r.vals[i])+uint64(c), math.MaxUint32))
		return
	}
	if len(r.keys) >= m.cfg.MaxSuccessors {
		m.prune(r)
	}
	r.keys = append(r.keys, b)
	r.vals = append(r.vals, c)
	m.rules++
}

func (m *Model) sub(a, b int32, c uint32) {
	r := &m.rows[a]
	i := slices.Index(r.keys, b)
	if i < 0 {
		return // pruned
	}
	c = min(c, r.vals[i])
	r.total -= uint64(c)
	r.vals[i] -= c
	if r.vals[i] == 0 {
		last := len(r.keys) - 1
		r.keys[i], r.vals[i] = r.keys[last], r.vals[last]
		r.keys, r.vals = r.keys[:last], r.vals[:last]
		m.rules--
	}
}

// prune drops the weakest quarter of a full row (at least one rule; ties:
// the higher item id goes first).
func (m *Model) prune(r *row) {
	keep := m.cfg.MaxSuccessors - max(m.cfg.MaxSuccessors/4, 1)
	idx := make([]int, len(r.keys)) // rare: once per quarter row of newcomers
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case r.vals[a] > r.vals[b]:
			return -1
		case r.vals[a] < r.vals[b]:
			return 1
		}
		return int(r.keys[a] - r.keys[b])
	})
	keys := make([]int32, keep, m.cfg.MaxSuccessors)
	vals := make([]uint32, keep, m.cfg.MaxSuccessors)
	var total uint64
	for k, i := range idx[:keep] {
		keys[k], vals[k] = r.keys[i], r.vals[i]
		total += uint64(r.vals[i])
	}
	m.pruned += uint64(len(r.keys) - keep)
	m.rules -= len(r.keys) - keep
	r.keys, r.vals, r.total = keys, vals, total
}

type scratch struct {
	touch []int32
	heap  []model.Candidate
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
		r := &m.rows[e.Item]
		if r.total == 0 {
			continue
		}
		s := float32(w / unit)
		if m.cfg.Normalize {
			s = float32(w / float64(r.total))
		}
		for x, b := range r.keys {
			if int(b) >= len(acc) {
				continue
			}
			v := s * float32(r.vals[x])
			if v <= 0 {
				continue
			}
			if acc[b] == 0 {
				sc.touch = append(sc.touch, b)
			}
			acc[b] += v
		}
	}
	dst = top(q, acc, sc.touch, &sc.heap, dst)
	for _, it := range sc.touch {
		acc[it] = 0
	}
	return dst
}

// top appends the q.Want best touched items that q.Skip lets through, best
// first (ties: the lower item id).
func top(q *model.Query, acc []float32, touched []int32, heap *[]model.Candidate, dst []model.Candidate) []model.Candidate {
	h := (*heap)[:0]
	worse := func(a, b model.Candidate) bool {
		if a.Score != b.Score {
			return a.Score < b.Score
		}
		return a.Item > b.Item
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			w := l
			if r := l + 1; r < len(h) && worse(h[r], h[l]) {
				w = r
			}
			if !worse(h[w], h[i]) {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for _, it := range touched {
		c := model.Candidate{Item: it, Score: acc[it]}
		if c.Score <= 0 || (len(h) == q.Want && !worse(h[0], c)) || q.Skip(it) {
			continue
		}
		if len(h) < q.Want {
			h = append(h, c)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !worse(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			continue
		}
		h[0] = c
		down(0)
	}
	start := len(dst)
	for len(h) > 0 {
		dst = append(dst, h[0])
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		down(0)
	}
	slices.Reverse(dst[start:])
	*heap = h
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
		r := &m.rows[e.Item]
		if i := slices.Index(r.keys, item); i >= 0 {
			v := w * float64(r.vals[i])
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
	if i := slices.Index(r.keys, b); i >= 0 {
		return float64(r.vals[i]) / unit
	}
	return 0
}

// Successors is the number of rules item has.
func (m *Model) Successors(item int32) int {
	if item < 0 || int(item) >= len(m.rows) {
		return 0
	}
	return len(m.rows[item].keys)
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
	n := int64(cap(m.rows)) * 56
	for i := range m.rows {
		n += int64(cap(m.rows[i].keys))*4 + int64(cap(m.rows[i].vals))*4
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
	for i := range m.rows {
		r := &m.rows[i]
		sizes[i] = uint32(len(r.keys))
		keys = append(keys, r.keys...)
		vals = append(vals, r.vals...)
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
			r.keys = slices.Clone(keys[off : off+n])
			r.vals = slices.Clone(vals[off : off+n])
			for _, v := range r.vals {
				r.total += uint64(v)
			}
		}
		off += n
	}
}
