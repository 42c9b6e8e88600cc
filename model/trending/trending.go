// Package trending is time-decayed popularity: every event adds its weight to
// its item's score, and scores decay exponentially with a configurable
// half-life, measured on the events' own clock so that a replay of the log
// gives the same scores as the live run.
//
// Decay is a factor common to all items, so the model stores scores relative
// to a reference time (score × e^{(t−ref)/τ}); the ranking never needs a pass
// over all items when time moves on. A top list is kept current on every
// Apply: every item outside it scores at most a bound that every item in it
// reaches, so the list is the exact top and an item whose score falls stays
// in it while it is still above the bound.
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
	inTop []bool
	top   []int32 // item ids, best first
	// bound: no item outside the top list scores above it, no item in it
	// below it (never negative).
	bound float64
}

// New returns an empty model.
func New(cfg Config) *Model {
	if cfg.HalfLifeSeconds <= 0 {
		cfg.HalfLifeSeconds = DefaultConfig().HalfLifeSeconds
	}
	if cfg.TopSize <= 0 {
		cfg.TopSize = DefaultConfig().TopSize
	}
	return &Model{cfg: cfg, tau: cfg.HalfLifeSeconds / math.Ln2, ref: math.NaN()}
}

// rebaseAt keeps exponents small: beyond e^40 the scores are rescaled.
const rebaseAt = 40

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
		m.bound *= f
		m.ref = t
		x = 0
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

func (m *Model) updateTop(item int32, old float64) {
	s := m.score[item]
	if m.inTop[item] {
		// Find it and move it to its new place.
		pos := -1
		for i, it := range m.top {
			if it == item {
				pos = i
				break
			}
		}
		if s >= old {
			for pos > 0 && m.score[m.top[pos-1]] < s {
				m.top[pos], m.top[pos-1] = m.top[pos-1], m.top[pos]
				pos--
			}
			return
		}
		if s > 0 && s >= m.bound {
			// Still above everything outside the list: it moves down.
			for pos < len(m.top)-1 && m.score[m.top[pos+1]] > s {
				m.top[pos], m.top[pos+1] = m.top[pos+1], m.top[pos]
				pos++
			}
			return
		}
		// Items outside the list may now beat it, so it leaves.
		copy(m.top[pos:], m.top[pos+1:])
		m.top = m.top[:len(m.top)-1]
		m.inTop[item] = false
		if len(m.top) < m.cfg.TopSize/2 {
			m.rebuildTop()
		}
		return
	}
	if s <= 0 || s <= m.bound {
		return
	}
	if len(m.top) >= m.cfg.TopSize {
		last := m.top[len(m.top)-1]
		if m.score[last] >= s {
			m.bound = s
			return
		}
		m.inTop[last] = false
		m.top = m.top[:len(m.top)-1]
		m.bound = m.score[last]
	}
	pos := sort.Search(len(m.top), func(i int) bool { return m.score[m.top[i]] < s })
	m.top = append(m.top, 0)
	copy(m.top[pos+1:], m.top[pos:])
	m.top[pos] = item
	m.inTop[item] = true
}

func (m *Model) rebuildTop() {
	for _, it := range m.top {
		m.inTop[it] = false
	}
	m.top = m.top[:0]
	for i, s := range m.score {
		if s > 0 {
			m.top = append(m.top, int32(i))
		}
	}
	sort.Slice(m.top, func(a, b int) bool {
		if sa, sb := m.score[m.top[a]], m.score[m.top[b]]; sa != sb {
			return sa > sb
		}
		return m.top[a] < m.top[b]
	})
	m.bound = 0
	if len(m.top) > m.cfg.TopSize {
		m.bound = m.score[m.top[m.cfg.TopSize]]
		m.top = m.top[:m.cfg.TopSize]
	}
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
	return m.score[item] * math.Exp((m.ref-m.clock)/m.tau)
}

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
func (m *Model) Top() []int32 { return m.top }

// Bytes is the memory held by the model.
func (m *Model) Bytes() int64 {
	return int64(cap(m.score))*8 + int64(cap(m.count))*4 + int64(cap(m.inTop)) + int64(cap(m.top))*4
}

// Encode writes the model's state to a snapshot.
func (m *Model) Encode(e *snapshot.Encoder) {
	e.Float64(m.ref)
	e.Float64(m.clock)
	e.Float64(m.bound)
	e.Slice(m.score, len(m.score))
	e.Slice(m.count, len(m.count))
	e.Slice(m.top, len(m.top))
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	m.ref = d.Float64()
	m.clock = d.Float64()
	m.bound = d.Float64()
	m.score = snapshot.Float64s(d)
	m.count = snapshot.Uint32s(d)
	m.top = snapshot.Int32s(d)
	d.Check(len(m.count) == len(m.score), "trending columns differ in length")
	d.Check(len(m.top) <= m.cfg.TopSize, "trending top list too long")
	if d.Err() != nil {
		m.score, m.count, m.top = nil, nil, nil
	}
	m.inTop = make([]bool, len(m.score))
	for _, it := range m.top {
		if it < 0 || int(it) >= len(m.score) || m.inTop[it] {
			d.Check(false, "trending top list names an unknown item or one twice")
			return
		}
		m.inTop[it] = true
	}
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Items is the number of item slots.
func (m *Model) Items() int { return len(m.score) }
