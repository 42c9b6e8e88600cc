// Package sessionknn is session-based nearest neighbours in the STAN /
// V-SKNN family: the user's current session is compared with recent past
// sessions (of anyone, including sessions other users are in right now), and
// the most similar ones score their items.
//
// State: the sessions themselves (their item lists and the time of their
// latest event) in a FIFO ring, and for every item the sessions that hold it,
// most recent last. A session is indexed as it grows, event by event, so a
// request sees the events applied before it. Bounds: at most MaxSessions
// sessions and MaxEntries events are kept (the oldest sessions go first), a
// stored session holds at most MaxSessionLength events (a longer one
// continues as a new stored session), and an item's index keeps its Sample
// most recent sessions (up to twice that before it is trimmed).
//
// Scoring (Garg et al., STAN, SIGIR 2019): the i-th latest item of the
// current session weighs exp(-i/PositionDecay); a neighbour's similarity is
// the sum of the weights of the items it shares, times
// exp(-Δt/RecencySeconds) for the age of its latest event; the Neighbours
// most similar score each of their items by their similarity times
// exp(-|d|/ItemDecay), d the distance in the neighbour between the item and
// the shared item latest in the current session (the latest query item
// through whose sample the neighbour was found), for the items within
// ItemWindow of it; an item's total is boosted by 1 + IDF·ln(N/n) (VSTAN),
// N sessions kept, n of them holding it. An item occurring more than once
// in a session counts once, at its last occurrence.
//
// Retention: the model forgets by its own bounds (oldest sessions first),
// not event by event, so it is no Evicter: removing a user's oldest event
// exactly would mean re-ordering the item index as if the session had met
// its items later.
//
// Concurrency: Apply needs the caller's write lock; Candidates and Because
// only the read lock (their scratch comes from a pool).
package sessionknn

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/snapshot"
)

// Name is the source name.
const Name = "session_knn"

// Config tunes the model.
type Config struct {
	// Neighbours is k: how many of the most similar sessions score items.
	Neighbours int
	// Sample is how many of the most recent sessions holding an item are
	// candidate neighbours through it.
	Sample int
	// QueryItems is how many of the current session's latest events make
	// the query.
	QueryItems int
	// PositionDecay is STAN's λspw: the i-th latest event of the current
	// session (0 the latest) weighs exp(-i/PositionDecay).
	PositionDecay float64
	// RecencySeconds is STAN's λsnh: a neighbour whose latest event is Δt
	// seconds old weighs exp(-Δt/RecencySeconds). 0 turns it off.
	RecencySeconds float64
	// ItemDecay is STAN's λinh: an item d events away, in the neighbour,
	// from the shared item latest in the current session scores
	// exp(-|d|/ItemDecay) of the neighbour's similarity. 0 turns it off.
	ItemDecay float64
	// ItemWindow is how far, in events of the neighbour, from the shared
	// item an item may be and still score: the neighbour's items at
	// distance |d| <= ItemWindow score (exp(-12/4) is 5% of the shared
	// item's weight). 0 means the default; negative, the whole session.
	ItemWindow int
	// IDF boosts rare items: an item's score is multiplied by
	// 1 + IDF·ln(N/n), N the sessions kept and n those holding the item.
	IDF float64
	// ExcludeOwnSession keeps the user's current session from being its
	// own neighbour. Included (the default), it votes for the session's own
	// items, which helps where users come back to what they just saw.
	ExcludeOwnSession bool
	// MaxSessionLength is the most events a stored session holds; a longer
	// session continues as a new one.
	MaxSessionLength int
	// MaxSessions is the most sessions kept; the oldest go first.
	MaxSessions int
	// MaxEntries is the most events kept over all sessions; the oldest
	// sessions go first.
	MaxEntries int
}

// DefaultConfig returns the defaults, tuned by prequential replay of
// yoochoose-clicks-100k (scored on events 20-60%, see TestTune): HitRate@20
// 0.670 / MRR@20 0.371 there and 0.685 / 0.375 on events 60-100%. The
// recency decay barely matters over that week; 20 days is STAN's published
// setting. The item window of ±12 bounds a request's work in long
// sessions (MovieLens rates hundreds of films in one sitting) and changes
// the yoochoose figures by less than 0.001.
func DefaultConfig() Config {
	return Config{
		Neighbours:        100,
		Sample:            100,
		QueryItems:        10,
		PositionDecay:     0.5,
		RecencySeconds:    20 * 24 * 3600,
		ItemDecay:         4,
		ItemWindow:        12,
		IDF:               0,
		ExcludeOwnSession: false,
		MaxSessionLength:  200,
		MaxSessions:       1 << 20,
		MaxEntries:        1 << 23,
	}
}

// withDefaults fills zero (or invalid) sizes from DefaultConfig. Decays may
// be zero (off).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	pos := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pos(&c.Neighbours, d.Neighbours)
	pos(&c.Sample, d.Sample)
	pos(&c.QueryItems, d.QueryItems)
	pos(&c.MaxSessionLength, d.MaxSessionLength)
	pos(&c.MaxSessions, d.MaxSessions)
	pos(&c.MaxEntries, d.MaxEntries)
	switch {
	case c.ItemWindow == 0:
		c.ItemWindow = d.ItemWindow
	case c.ItemWindow < 0:
		c.ItemWindow = -1
	}
	if c.PositionDecay <= 0 {
		c.PositionDecay = d.PositionDecay
	}
	c.RecencySeconds = max(c.RecencySeconds, 0)
	c.ItemDecay = max(c.ItemDecay, 0)
	c.IDF = max(c.IDF, 0)
	return c
}

// An entry of a stored session: the item id, with the later bit set when
// the item occurs again later in the session (so the entries without it are
// each distinct item's last occurrence).
const (
	later    = 1 << 31
	itemMask = later - 1
)

type session struct {
	ents []uint32
	last float64 // seconds of the latest event
	// lw is the bits of exp((last-ref)/RecencySeconds), the recency weight
	// but for a factor common to all, or stale: computed by the first
	// request that needs it after the session changed (atomically, as
	// requests hold only the read lock; they all store the same value).
	lw   uint64
	seen [2]uint64 // a filter of the items held: bit hash(item)%128 set for each
	user int32
	seq  uint32
}

// stale marks a session's lw as not yet computed (exp is never negative).
var stale = math.Float64bits(-1)

// seenBit is item's word and bit in a session's seen filter.
func seenBit(item uint32) (int, uint64) {
	h := hash(item) >> 25
	return int(h >> 6), 1 << (h & 63)
}

// weight returns s's recency weight but for the factor common to all
// sessions, computing it when stale. Called under the read lock.
func (m *Model) weight(s *session) float64 {
	if b := atomic.LoadUint64(&s.lw); b != stale {
		return math.Float64frombits(b)
	}
	w := math.Exp((s.last - m.ref) / m.cfg.RecencySeconds)
	atomic.StoreUint64(&s.lw, math.Float64bits(w))
	return w
}

// Model is the session-kNN state.
type Model struct {
	cfg Config

	// ring holds the live sessions: seq oldest .. oldest+live-1 at
	// ring[seq&mask]; its length is a power of two.
	ring    []session
	oldest  uint32
	live    int
	next    uint32 // seq of the next session
	entries int
	evicted uint64 // sessions evicted

	users []uint32   // by user: seq of the user's current session (alive when it is the user's)
	lists [][]uint32 // by item: seqs of sessions holding it, most recent last (dead ones skipped)
	count []uint32   // by item: live sessions holding it
	clock float64
	ref   float64 // reference time of the sessions' lw

	inh  []float32 // exp(-d/ItemDecay) by distance d
	pool sync.Pool
}

// New returns an empty model.
func New(cfg Config) *Model {
	m := &Model{cfg: cfg.withDefaults(), ref: math.NaN()}
	m.init()
	return m
}

func (m *Model) init() {
	m.pool.New = func() any { return new(scratch) }
	m.inh = make([]float32, m.cfg.MaxSessionLength)
	for d := range m.inh {
		m.inh[d] = 1
		if m.cfg.ItemDecay > 0 {
			m.inh[d] = float32(math.Exp(-float64(d) / m.cfg.ItemDecay))
		}
	}
}

// rebaseAt keeps the recency weights' exponents small: past e^40 they are
// recomputed against a new reference time.
const rebaseAt = 40

// rebase sets the reference time of the sessions' recency weights on the
// first event, and moves it to t when t is past rebaseAt of it (every
// session's weight is then recomputed when next needed).
func (m *Model) rebase(t float64) {
	if m.cfg.RecencySeconds <= 0 {
		return
	}
	if math.IsNaN(m.ref) {
		m.ref = t
	}
	if (t-m.ref)/m.cfg.RecencySeconds > rebaseAt {
		m.ref = t
		for k := range m.live {
			m.session(m.oldest + uint32(k)).lw = stale
		}
	}
}

// Name is the source name.
func (m *Model) Name() string { return Name }

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// alive returns the live session seq, or nil.
func (m *Model) session(seq uint32) *session {
	if seq-m.oldest >= uint32(m.live) {
		return nil
	}
	return &m.ring[seq&uint32(len(m.ring)-1)]
}

func (m *Model) growItems(n int) {
	for len(m.lists) < n {
		m.lists = append(m.lists, nil)
		m.count = append(m.count, 0)
	}
}

// Apply adds the event to the user's current session (a new one when the
// event starts a session) and indexes the session under its item.
// Events of weight 0 or less are not kept.
func (m *Model) Apply(x *model.Interaction) {
	m.growItems(max(x.Items, int(x.Item)+1))
	for len(m.users) <= int(x.User) {
		m.users = append(m.users, m.next-1) // never a live session of this user
	}
	if t := x.Seconds(); t > m.clock {
		m.clock = t
	}
	if x.Entry.Weight <= 0 {
		return
	}
	s := m.session(m.users[x.User])
	if s == nil || s.user != x.User || x.Entry.StartsSession() || x.Session >= len(x.History) || len(s.ents) >= m.cfg.MaxSessionLength {
		s = m.newSession(x.User)
		m.users[x.User] = s.seq
	}
	item := uint32(x.Item)
	first := true
	if w, b := seenBit(item); s.seen[w]&b == 0 {
		s.seen[w] |= b
	} else {
		for k := len(s.ents) - 1; k >= 0; k-- {
			if s.ents[k] == item { // its last occurrence so far
				s.ents[k] |= later
				first = false
				break
			}
		}
	}
	s.ents = append(s.ents, item)
	s.last = x.Seconds()
	s.lw = stale
	m.rebase(s.last)
	m.entries++
	if first {
		m.count[item]++
		m.index(x.Item, s.seq)
	}
	for m.live > 1 && (m.live > m.cfg.MaxSessions || m.entries > m.cfg.MaxEntries) {
		m.evictOldest()
	}
}

func (m *Model) newSession(user int32) *session {
	if m.live == len(m.ring) {
		m.growRing()
	}
	seq := m.next
	m.next++
	if m.live == 0 {
		m.oldest = seq
	}
	m.live++
	s := &m.ring[seq&uint32(len(m.ring)-1)]
	s.ents, s.last, s.lw, s.seen, s.user, s.seq = s.ents[:0], 0, stale, [2]uint64{}, user, seq
	return s
}

func (m *Model) growRing() {
	n := max(2*len(m.ring), 64)
	ring := make([]session, n)
	for k := range m.live {
		seq := m.oldest + uint32(k)
		ring[seq&uint32(n-1)] = m.ring[seq&uint32(len(m.ring)-1)]
	}
	m.ring = ring
}

func (m *Model) evictOldest() {
	s := &m.ring[m.oldest&uint32(len(m.ring)-1)]
	for _, e := range s.ents {
		if e&later == 0 {
			m.count[e]--
		}
	}
	m.entries -= len(s.ents)
	s.ents = s.ents[:0]
	m.oldest++
	m.live--
	m.evicted++
}

// index appends seq to item's sessions, dropping dead ones at the front and
// keeping the list between Sample and 2·Sample long.
func (m *Model) index(item int32, seq uint32) {
	l := m.lists[item]
	dead := 0
	for dead < len(l) && m.session(l[dead]) == nil {
		dead++
	}
	if dead > 0 || len(l) >= 2*m.cfg.Sample {
		keep := l[dead:]
		if len(keep) > m.cfg.Sample {
			keep = keep[len(keep)-m.cfg.Sample:]
		}
		l = l[:copy(l, keep)]
	}
	m.lists[item] = append(l, seq)
}

// neighbour is a candidate session, its similarity and the index in the
// query of the latest item it was found through (its anchor).
type neighbour struct {
	seq uint32
	sim float32
	qi  int32
}

// scratch is one request's working memory.
type scratch struct {
	qItems []int32   // the query's distinct items, latest first
	qW     []float32 // their position weights
	keys   []uint64  // open addressing: seq+1 (0 empty)
	vals   []float32
	qis    []int32 // by slot of keys: the first query item that found the session
	used   []int32
	nb     []neighbour
	touch  []int32
}

func hash(k uint32) uint32 { return k * 0x9E3779B1 }

// query fills sc with the query's items and the top neighbours of the
// current session, and returns false when there are none.
func (m *Model) neighbours(q *model.Query, sc *scratch) bool {
	sc.qItems, sc.qW, sc.nb = sc.qItems[:0], sc.qW[:0], sc.nb[:0]
	sess := q.SessionItems()
	i := 0
	for k := len(sess) - 1; k >= 0 && i < m.cfg.QueryItems; k-- {
		e := sess[k]
		if e.Weight <= 0 {
			continue
		}
		w := float32(math.Exp(-float64(i) / m.cfg.PositionDecay))
		i++
		if e.Item < 0 || int(e.Item) >= len(m.lists) || slices.Contains(sc.qItems, e.Item) {
			continue
		}
		sc.qItems = append(sc.qItems, e.Item)
		sc.qW = append(sc.qW, w)
	}
	if len(sc.qItems) == 0 {
		return false
	}
	own := uint32(0)
	hasOwn := false
	if m.cfg.ExcludeOwnSession && q.User >= 0 && int(q.User) < len(m.users) {
		if s := m.session(m.users[q.User]); s != nil && s.user == q.User {
			own, hasOwn = s.seq, true
		}
	}
	// Similarities: every session in a query item's sample gains the item's
	// weight.
	total := 0
	for _, it := range sc.qItems {
		total += min(len(m.lists[it]), m.cfg.Sample)
	}
	size := 16
	for size < 2*total {
		size *= 2
	}
	sc.keys = resize(sc.keys, size)
	sc.vals = resize(sc.vals, size)
	sc.qis = resize(sc.qis, size)
	sc.used = sc.used[:0]
	mask := uint32(size - 1)
	for x, it := range sc.qItems {
		w := sc.qW[x]
		l := m.lists[it]
		if len(l) > m.cfg.Sample {
			l = l[len(l)-m.cfg.Sample:]
		}
		for _, seq := range l {
			if m.session(seq) == nil || (hasOwn && seq == own) {
				continue
			}
			key := uint64(seq) + 1
			h := hash(seq) & mask
			for sc.keys[h] != 0 && sc.keys[h] != key {
				h = (h + 1) & mask
			}
			if sc.keys[h] == 0 {
				sc.keys[h], sc.qis[h] = key, int32(x)
				sc.used = append(sc.used, int32(h))
			}
			sc.vals[h] += w
		}
	}
	now := 1.0 // the factor common to all sessions' lw, at q.Now
	if m.cfg.RecencySeconds > 0 && !math.IsNaN(m.ref) {
		now = math.Exp((m.ref - q.Now) / m.cfg.RecencySeconds)
	}
	for _, h := range sc.used {
		seq := uint32(sc.keys[h] - 1)
		sim := sc.vals[h]
		sc.keys[h], sc.vals[h] = 0, 0
		if m.cfg.RecencySeconds > 0 {
			sim *= float32(min(m.weight(m.session(seq))*now, 1)) // no weight above 1 for events after q.Now
		}
		if sim > 0 {
			sc.nb = append(sc.nb, neighbour{seq, sim, sc.qis[h]})
		}
	}
	if len(sc.nb) > m.cfg.Neighbours {
		selectTop(sc.nb, m.cfg.Neighbours)
		sc.nb = sc.nb[:m.cfg.Neighbours]
	}
	return len(sc.nb) > 0
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// better orders neighbours: more similar first, then more recent.
func better(a, b neighbour) bool {
	if a.sim != b.sim {
		return a.sim > b.sim
	}
	return a.seq-b.seq < 1<<31 && a.seq != b.seq // a is newer (wrap-safe)
}

// selectTop moves the k best neighbours to the front, in no particular
// order (quickselect).
func selectTop(nb []neighbour, k int) {
	lo, hi := 0, len(nb)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if better(nb[mid], nb[lo]) {
			nb[mid], nb[lo] = nb[lo], nb[mid]
		}
		if better(nb[hi], nb[lo]) {
			nb[hi], nb[lo] = nb[lo], nb[hi]
		}
		if better(nb[mid], nb[hi]) {
			nb[mid], nb[hi] = nb[hi], nb[mid]
		}
		p := lo
		for i := lo; i < hi; i++ {
			if better(nb[i], nb[hi]) {
				nb[i], nb[p] = nb[p], nb[i]
				p++
			}
		}
		nb[p], nb[hi] = nb[hi], nb[p]
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

// anchor is the position in s of nb's anchor item (its last occurrence,
// the only entry without the later bit).
func (sc *scratch) anchor(s *session, nb *neighbour) int {
	item := uint32(sc.qItems[nb.qi])
	for k := len(s.ents) - 1; k >= 0; k-- {
		if s.ents[k] == item {
			return k
		}
	}
	return -1 // not reached: the index lists only sessions holding the item
}

// window is the range of s's entries that score around position p.
func (m *Model) window(s *session, p int) (lo, hi int) {
	if m.cfg.ItemWindow < 0 {
		return 0, len(s.ents)
	}
	return max(p-m.cfg.ItemWindow, 0), min(p+m.cfg.ItemWindow+1, len(s.ents))
}

// Candidates scores the items of the current session's nearest neighbour
// sessions and appends the q.Want best that q.Skip lets through.
func (m *Model) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if q.Want <= 0 {
		return dst
	}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	if !m.neighbours(q, sc) {
		return dst
	}
	acc := q.Acc
	sc.touch = sc.touch[:0]
	for x := range sc.nb {
		nb := &sc.nb[x]
		s := m.session(nb.seq)
		p := sc.anchor(s, nb)
		lo, hi := m.window(s, p)
		for k := lo; k < hi; k++ {
			e := s.ents[k]
			if e&later != 0 || int(e) >= len(acc) {
				continue
			}
			w := nb.sim * m.inh[abs(k-p)]
			if w <= 0 { // underflow: acc must be non-zero exactly where touched
				continue
			}
			if acc[e] == 0 {
				sc.touch = append(sc.touch, int32(e))
			}
			acc[e] += w
		}
	}
	if m.cfg.IDF > 0 {
		n := float64(m.live)
		for _, it := range sc.touch {
			acc[it] *= float32(1 + m.cfg.IDF*math.Log(n/float64(max(m.count[it], 1))))
		}
	}
	dst = model.TopTouched(q, acc, sc.touch, dst)
	for _, it := range sc.touch {
		acc[it] = 0
	}
	return dst
}

// Because appends the items of the current session that led to item,
// strongest first: for every neighbour holding item, the shared item latest
// in the session is credited with the neighbour's vote.
func (m *Model) Because(q *model.Query, item int32, dst []int32) []int32 {
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	if !m.neighbours(q, sc) {
		return dst
	}
	credit := make([]float32, len(sc.qItems))
	for x := range sc.nb {
		nb := &sc.nb[x]
		s := m.session(nb.seq)
		p := sc.anchor(s, nb)
		lo, hi := m.window(s, p)
		for k := lo; k < hi; k++ {
			if e := s.ents[k]; e&later == 0 && int32(e) == item {
				credit[nb.qi] += nb.sim * m.inh[abs(k-p)]
			}
		}
	}
	idx := make([]int, 0, len(credit))
	for x, c := range credit {
		if c > 0 {
			idx = append(idx, x)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case credit[a] > credit[b]:
			return -1
		case credit[a] < credit[b]:
			return 1
		}
		return 0
	})
	for _, x := range idx {
		dst = append(dst, sc.qItems[x])
	}
	return dst
}

// Stats are the model's figures for /v1/stats.
type Stats struct {
	Sessions        int    `json:"sessions"`
	Entries         int    `json:"entries"`
	IndexEntries    int    `json:"index_entries"`
	EvictedSessions uint64 `json:"evicted_sessions"`
	Bytes           int64  `json:"bytes"`
}

// Stats reports the model's figures.
func (m *Model) Stats() any {
	n := 0
	for _, l := range m.lists {
		n += len(l)
	}
	return Stats{Sessions: m.live, Entries: m.entries, IndexEntries: n, EvictedSessions: m.evicted, Bytes: m.Bytes()}
}

// Sessions is the number of sessions kept.
func (m *Model) Sessions() int { return m.live }

// Entries is the number of events kept over all sessions.
func (m *Model) Entries() int { return m.entries }

// Bytes is the memory held by the sessions, the item index and the per-user
// and per-item arrays.
func (m *Model) Bytes() int64 {
	n := int64(cap(m.ring))*64 + int64(cap(m.users))*4 + int64(cap(m.lists))*24 + int64(cap(m.count))*4
	for i := range m.ring {
		n += int64(cap(m.ring[i].ents)) * 4
	}
	for _, l := range m.lists {
		n += int64(cap(l)) * 4
	}
	return n
}

// Fingerprint names the format and the configuration the state depends on.
func (m *Model) Fingerprint() string {
	c := m.cfg
	return fmt.Sprintf("session_knn/1 k=%d sample=%d query=%d spw=%g snh=%g inh=%g window=%d idf=%g exclude_own=%t len=%d sessions=%d entries=%d",
		c.Neighbours, c.Sample, c.QueryItems, c.PositionDecay, c.RecencySeconds, c.ItemDecay, c.ItemWindow, c.IDF, c.ExcludeOwnSession,
		c.MaxSessionLength, c.MaxSessions, c.MaxEntries)
}

// Encode writes the sessions, the users' current sessions and the item
// index to a snapshot.
func (m *Model) Encode(e *snapshot.Encoder) {
	e.Uint(uint64(m.next))
	e.Uint(uint64(m.oldest))
	e.Uint(m.evicted)
	e.Float64(m.clock)
	e.Float64(m.ref)
	lens := make([]uint32, m.live)
	users := make([]int32, m.live)
	lasts := make([]float64, m.live)
	ents := make([]uint32, 0, m.entries)
	for k := range m.live {
		s := m.session(m.oldest + uint32(k))
		lens[k], users[k], lasts[k] = uint32(len(s.ents)), s.user, s.last
		ents = append(ents, s.ents...)
	}
	e.Slice(lens, len(lens))
	e.Slice(users, len(users))
	e.Slice(lasts, len(lasts))
	e.Slice(ents, len(ents))
	e.Slice(m.users, len(m.users))
	llens := make([]uint32, len(m.lists))
	var seqs []uint32
	for i, l := range m.lists {
		llens[i] = uint32(len(l))
		seqs = append(seqs, l...)
	}
	e.Slice(llens, len(llens))
	e.Slice(seqs, len(seqs))
}

// Decode restores state written by Encode into a model made by New with the
// same configuration.
func (m *Model) Decode(d *snapshot.Decoder) {
	next := uint32(d.Uint())
	oldest := uint32(d.Uint())
	evicted := d.Uint()
	clock := d.Float64()
	ref := d.Float64()
	lens := snapshot.Uint32s(d)
	users := snapshot.Int32s(d)
	lasts := snapshot.Float64s(d)
	ents := snapshot.Uint32s(d)
	cur := snapshot.Uint32s(d)
	llens := snapshot.Uint32s(d)
	seqs := snapshot.Uint32s(d)
	if d.Err() != nil {
		return
	}
	d.Check(len(users) == len(lens) && len(lasts) == len(lens), "session-kNN session columns differ in length")
	d.Check(next-oldest == uint32(len(lens)), "session-kNN session count")
	total := 0
	for _, l := range lens {
		total += int(l)
	}
	d.Check(total == len(ents), "session-kNN session lengths do not add up")
	total = 0
	for _, l := range llens {
		total += int(l)
	}
	d.Check(total == len(seqs), "session-kNN index lengths do not add up")
	for _, u := range users {
		if u < 0 || int(u) >= len(cur) {
			d.Check(false, "session-kNN session names an unknown user")
			break
		}
	}
	for _, e := range ents {
		if int(e&itemMask) >= len(llens) {
			d.Check(false, "session-kNN session names an unknown item")
			break
		}
	}
	if d.Err() != nil {
		return
	}
	*m = Model{cfg: m.cfg, ref: ref}
	m.init()
	m.next, m.oldest, m.evicted, m.clock = oldest, oldest, evicted, clock
	m.users = cur
	m.growItems(len(llens))
	off := 0
	for k, l := range lens {
		s := m.newSession(users[k])
		s.ents = append(s.ents, ents[off:off+int(l)]...)
		s.last = lasts[k]
		for _, e := range s.ents {
			w, b := seenBit(e & itemMask)
			s.seen[w] |= b
		}
		off += int(l)
		m.entries += int(l)
		for _, e := range s.ents {
			if e&later == 0 {
				m.count[e]++
			}
		}
	}
	off = 0
	for i, l := range llens {
		if l > 0 {
			m.lists[i] = slices.Clone(seqs[off : off+int(l)])
		}
		off += int(l)
	}
}
