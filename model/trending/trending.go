// Package trending is time-decayed popularity: every event adds its weight to
// its item's score, and scores decay exponentially with a configurable
// half-life, measured on the events' own clock so that a replay of the log
// gives the same scores as the live run.
//
// Decay is a factor common to all items, so the model stores scores relative
// to a reference time (score × e^{(t−ref)/τ}); the ranking never needs a pass
// over all items when time moves on. Items rank by score, the lower id first
// on equal scores. A pool of the best items, somewhat longer than the top
// list, is kept current on every Apply and Remove: every item outside it
// ranks at or below a bound, every item in it above, so its head is the exact
// top list. An item whose score falls moves down in the pool while it still
// ranks above the bound and leaves it otherwise; when the pool gets shorter
// than the top list while items outside may score above zero, it is ranked
// afresh from all scores (amortised over the candidates dropped since the
// last time, so never on positive weights alone, but for a rebase).
//
// Retention: Remove takes an event's contribution back out (the weight and
// time it was applied with). Each item counts its events, and an item left
// with none scores exactly zero again, whatever the rounding of the
// subtractions. Apply and Remove are not safe for concurrent use; readers
// hold the writer's lock in read mode.
package trending

import (
	"math"
	"sort"

	"github.com/streamrec/streamrec/snapshot"
)

// Config tunes the model.
type Config struct {
	// HalfLifeSeconds is how long it takes an event's contribution to halve.
	HalfLifeSeconds float64
	// TopSize is the length of the global top list kept current.
	TopSize int
}

// DefaultConfig returns the defaults: one week half-life, top 500.
func DefaultConfig() Config { return Config{HalfLifeSeconds: 7 * 24 * 3600, TopSize: 500} }

// Model is the time-decayed popularity of every item.
type Model struct {
	cfg   Config
	tau   float64
	ref   float64 // reference time of the stored scores (unix seconds)
	clock float64 // latest event time seen
	score []float64
	count []uint32 // events applied and not removed, per item
	inTop []bool   // in the pool
	// top is the pool: item ids in rank order (higher score first, lower id
	// on equal scores), at most poolSize; its first TopSize are the top list.
	top []int32
	// (bound, boundItem): every item outside the pool ranks at or below it,
	// every item in the pool above it. (0, -1) means that no item outside
	// scores above zero.
	bound     float64
	boundItem int32
	pool      int // the pool's capacity: see poolSize
}

// New returns an empty model.
func New(cfg Config) *Model {
	if cfg.HalfLifeSeconds <= 0 {
		cfg.HalfLifeSeconds = DefaultConfig().HalfLifeSeconds
	}
	if cfg.TopSize <= 0 {
		cfg.TopSize = DefaultConfig().TopSize
	}
	return &Model{cfg: cfg, tau: cfg.HalfLifeSeconds / math.Ln2, ref: math.NaN(), boundItem: -1,
		pool: poolSize(cfg.TopSize)}
}

// rebaseAt keeps exponents small: beyond e^40 the scores are rescaled.
const rebaseAt = 40

// minSlack is the least number of candidates the pool keeps beyond the top
// list.
const minSlack = 64

// poolSize is how many items the pool holds: the top list and a quarter as
// many candidates again (at least minSlack), so that a rebuild from all
// scores is needed only after that many items have fallen out of it since
// the last, while a larger pool would make every insertion dearer.
func poolSize(topSize int) int { return topSize + max(topSize/4, minSlack) }

// above reports whether item a with score sa ranks above item b with score
// sb: higher score first, lower id on equal scores.
func above(sa float64, a int32, sb float64, b int32) bool {
	return sa > sb || (sa == sb && a < b)
}

// Apply adds weight w of an event on item at time t (unix seconds).
func (m *Model) Apply(item int32, w float32, t float64) {
	for int(item) >= len(m.score) {
		m.score = append(m.score, 0)
		m.count = append(m.count, 0)
		m.inTop = append(m.inTop, false)
	}
	m.count[item]++
	if math.IsNaN(m.ref) {
		m.ref = t
	}
	if t > m.clock {
		m.clock = t
	}
	x := (t - m.ref) / m.tau
	if x > rebaseAt {
		f := math.Exp(-x)
		for i := range m.score {
			m.score[i] *= f
		}
		m.ref = t
		x = 0
		// Rescaling keeps the order of scores but can make unequal ones
		// equal (or zero), which the id then orders: rank afresh. A rebase
		// is rare (every 40τ of event time) and already a pass over all.
		m.rebuildTop()
	}
	if x < -700 { // far older than the reference: worth nothing
		return
	}
	old := m.score[item]
	m.score[item] += float64(w) * math.Exp(x)
	m.updateTop(item, old)
}

// Remove takes back an event of weight w on item at time t, as Apply added
// it. An item with no event left scores zero.
func (m *Model) Remove(item int32, w float32, t float64) {
	if item < 0 || int(item) >= len(m.score) || m.count[item] == 0 {
		return
	}
	m.count[item]--
	old := m.score[item]
	if m.count[item] == 0 {
		m.score[item] = 0
	} else if x := (t - m.ref) / m.tau; x >= -700 {
		m.score[item] -= float64(w) * math.Exp(x)
	}
	if m.score[item] != old {
		m.updateTop(item, old)
	}
}

// updateTop restores the pool's invariants after item's score changed from
// old to its present value.
func (m *Model) updateTop(item int32, old float64) {
	s := m.score[item]
	if m.inTop[item] {
		pos := m.find(item, old)
		if above(s, item, m.bound, m.boundItem) {
			// Still above everything outside the pool: it moves.
			m.move(pos, item, s)
			return
		}
		// Items outside may now rank above it: it leaves the pool, and
		// ranks at or below the bound like them.
		copy(m.top[pos:], m.top[pos+1:])
		m.top = m.top[:len(m.top)-1]
		m.inTop[item] = false
		if len(m.top) < m.cfg.TopSize && m.boundItem >= 0 {
			// The top list is short and an item outside may belong in
			// it: only a pass over all scores can tell which.
			m.rebuildTop()
		}
		return
	}
	if !above(s, item, m.bound, m.boundItem) {
		return
	}
	if len(m.top) >= m.pool {
		last := m.top[len(m.top)-1]
		if !above(s, item, m.score[last], last) {
			m.bound, m.boundItem = s, item
			return
		}
		m.inTop[last] = false
		m.top = m.top[:len(m.top)-1]
		m.bound, m.boundItem = m.score[last], last
	}
	pos := sort.Search(len(m.top), func(i int) bool {
		it := m.top[i]
		return !above(m.score[it], it, s, item)
	})
	m.top = append(m.top, 0)
	copy(m.top[pos+1:], m.top[pos:])
	m.top[pos] = item
	m.inTop[item] = true
}

// find returns the position of item in the pool, where its score was old
// and every other item's is as when it was placed.
func (m *Model) find(item int32, old float64) int {
	// The head, where most events land, is one cache line: look there first.
	for i, it := range m.top[:min(len(m.top), 16)] {
		if it == item {
			return i
		}
	}
	pos := sort.Search(len(m.top), func(i int) bool {
		it := m.top[i]
		// Its own slot holds the new score: compare it as the old.
		return it == item || !above(m.score[it], it, old, item)
	})
	if pos < len(m.top) && m.top[pos] == item {
		return pos
	}
	for i, it := range m.top { // scores that do not order (NaN): scan
		if it == item {
			return i
		}
	}
	panic("trending: item marked in the pool but not in it")
}

// move takes item at pos to the place its score s ranks it in the pool.
func (m *Model) move(pos int, item int32, s float64) {
	top := m.top
	if pos > 0 && above(s, item, m.score[top[pos-1]], top[pos-1]) {
		to := sort.Search(pos, func(i int) bool {
			it := top[i]
			return !above(m.score[it], it, s, item)
		})
		copy(top[to+1:pos+1], top[to:pos])
		top[to] = item
		return
	}
	if pos < len(top)-1 && above(m.score[top[pos+1]], top[pos+1], s, item) {
		rest := top[pos+1:]
		n := sort.Search(len(rest), func(i int) bool {
			it := rest[i]
			return !above(m.score[it], it, s, item)
		})
		copy(top[pos:pos+n], rest[:n])
		top[pos+n] = item
	}
}

// rebuildTop ranks the pool afresh from every item's score: the best
// poolSize items scoring above zero, and the next best as the bound.
func (m *Model) rebuildTop() {
	for _, it := range m.top {
		m.inTop[it] = false
	}
	// A heap of the best n+1 seen so far, the worst at its root.
	n := m.pool
	h := m.top[:0]
	if cap(h) < n+1 {
		h = make([]int32, 0, n+1)
	}
	worse := func(a, b int32) bool { return above(m.score[b], b, m.score[a], a) }
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && worse(h[c+1], h[c]) {
				c++
			}
			if !worse(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i, s := range m.score {
		if !(s > 0) {
			continue
		}
		it := int32(i)
		if len(h) <= n {
			h = append(h, it)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !worse(h[j], h[p]) {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
			continue
		}
		if worse(h[0], it) {
			h[0] = it
			down(0)
		}
	}
	m.bound, m.boundItem = 0, -1
	if len(h) > n {
		m.bound, m.boundItem = m.score[h[0]], h[0]
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
	}
	sort.Slice(h, func(a, b int) bool { return above(m.score[h[a]], h[a], m.score[h[b]], h[b]) })
	m.top = h
	for _, it := range m.top {
		m.inTop[it] = true
	}
}

// Score returns the decayed score of item at the model's clock (the time of
// the latest event applied).
func (m *Model) Score(item int32) float64 {
	if int(item) >= len(m.score) {
		return 0
	}
	return m.score[item] * m.Decay()
}

// Decay is the factor from the stored scores (Raw) to the decayed scores
// at the model's clock.
func (m *Model) Decay() float64 { return math.Exp((m.ref - m.clock) / m.tau) }

// Raw returns the undecayed stored score: comparable between items, not
// between calls separated by Apply.
func (m *Model) Raw(item int32) float64 {
	if int(item) >= len(m.score) {
		return 0
	}
	return m.score[item]
}

// Top returns the global top list, best first. The slice must not be
// modified and is valid until the next Apply.
func (m *Model) Top() []int32 { return m.top[:min(len(m.top), m.cfg.TopSize)] }

// Bytes is the memory held by the model.
func (m *Model) Bytes() int64 {
	return int64(cap(m.score))*8 + int64(cap(m.count))*4 + int64(cap(m.inTop)) + int64(cap(m.top))*4
}

// Encode writes the model's state to a snapshot.
func (m *Model) Encode(e *snapshot.Encoder) {
	e.Float64(m.ref)
	e.Float64(m.clock)
	// The layout predates the pool: the top list, and a bound on every item
	// outside it. Decode ranks afresh from the scores.
	top, bound := m.Top(), m.bound
	if len(m.top) > len(top) {
		bound = m.score[m.top[len(top)]]
	}
	e.Float64(bound)
	e.Slice(m.score, len(m.score))
	e.Slice(m.count, len(m.count))
	e.Slice(top, len(top))
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	m.ref = d.Float64()
	m.clock = d.Float64()
	d.Float64() // the bound: rebuilt below
	m.score = snapshot.Float64s(d)
	m.count = snapshot.Uint32s(d)
	m.top = snapshot.Int32s(d)
	d.Check(len(m.count) == len(m.score), "trending columns differ in length")
	d.Check(len(m.top) <= m.cfg.TopSize, "trending top list too long")
	seen := make([]bool, len(m.score))
	for _, it := range m.top {
		if d.Err() != nil {
			break
		}
		d.Check(it >= 0 && int(it) < len(m.score) && !seen[it], "trending top list names an unknown item or one twice")
		if d.Err() == nil {
			seen[it] = true
		}
	}
	if d.Err() != nil {
		m.score, m.count, m.top = nil, nil, nil
	}
	// The stored list is checked but not trusted to be exact (nor needed):
	// the pool is ranked afresh from the scores.
	m.inTop = make([]bool, len(m.score))
	m.top = m.top[:0]
	m.rebuildTop()
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Items is the number of item slots.
func (m *Model) Items() int { return len(m.score) }
