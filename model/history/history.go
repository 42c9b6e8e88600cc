// Package history keeps every user's interactions in memory, compactly: one
// 16-byte Entry per event (dense item id, seconds and milliseconds, weight,
// type).
//
// Retention: the oldest entry of a user can be evicted (EvictOldest), so
// that a history is always a contiguous, most recent part of what the user
// did. Start says how many entries of a user were evicted before the first
// one kept, so an entry's position in everything the user ever did
// (Start + index) never changes. Memory is released: a history that grows
// again is copied into a new array holding only the kept entries, and one
// that only shrinks is copied out once its evicted prefix outweighs what is
// left. With age tracking on (TrackAge), the store also knows which user's
// oldest entry is the oldest of all, so entries past a maximum age can be
// evicted without a pass over all users.
//
// Invariant: entries of a user are kept in the order they were applied (log
// order). Append and EvictOldest are not safe for concurrent use; readers
// must hold the same lock the writer holds while changing the store.
package history

import (
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/snapshot"
)

// Entry is one interaction of a user. Its size is 16 bytes.
type Entry struct {
	Item   int32      // dense item id
	Time   uint32     // unix seconds
	Weight float32    // implicit-feedback weight
	Type   event.Type // event type
	Flags  uint8      // NewSession
	Milli  uint16     // milliseconds past Time (0-999)
}

// NewSession flags the first event of a session.
const NewSession uint8 = 1

// StartsSession reports whether the entry is the first of a session.
func (e Entry) StartsSession() bool { return e.Flags&NewSession != 0 }

// SessionStart is where the last session of h begins: the index of its
// last entry that starts a session (0 when none does).
func SessionStart(h []Entry) int {
	for i := len(h) - 1; i > 0; i-- {
		if h[i].StartsSession() {
			return i
		}
	}
	return 0
}

// Seconds is the entry's time in unix seconds, milliseconds included: the
// clock the time-decayed models use, computed the same way on apply and on
// eviction.
func (e Entry) Seconds() float64 {
	return float64(int64(e.Time)*1000+int64(e.Milli)) / 1000
}

// front is what a user's history has lost at its front.
type front struct {
	start uint32 // entries evicted in all: the position of the first kept one
	dead  uint32 // evicted entries still at the front of the backing array
}

// Store holds the histories of all users, indexed by dense user id.
type Store struct {
	users   [][]Entry
	fronts  []front // by user; shorter than users when the rest lost nothing
	events  int
	evicted uint64
	age     *ageHeap // nil unless TrackAge
}

// Append adds e to the history of user.
func (s *Store) Append(user int32, e Entry) {
	for int(user) >= len(s.users) {
		s.users = append(s.users, nil)
	}
	h := s.users[user]
	if len(h) == cap(h) {
		// Grow by a quarter, not double: the histories are most of the
		// memory, and the budget is 16 bytes an event. The copy holds
		// only the kept entries, so an evicted prefix is released here.
		h = append(make([]Entry, 0, len(h)+len(h)/4+4), h...)
		if int(user) < len(s.fronts) {
			s.fronts[user].dead = 0
		}
	}
	s.users[user] = append(h, e)
	s.events++
	if s.age != nil && len(h) == 0 {
		s.age.push(s, user)
	}
}

// EvictOldest removes the oldest entry of user and returns it; false when
// the user has none. The entry that becomes the oldest starts a session.
func (s *Store) EvictOldest(user int32) (Entry, bool) {
	if user < 0 || int(user) >= len(s.users) || len(s.users[user]) == 0 {
		return Entry{}, false
	}
	for int(user) >= len(s.fronts) {
		s.fronts = append(s.fronts, front{})
	}
	h := s.users[user]
	old := h[0]
	h = h[1:]
	f := &s.fronts[user]
	f.start++
	f.dead++
	switch {
	case len(h) == 0:
		h, f.dead = nil, 0
	case int(f.dead) > len(h):
		// More of the array is evicted than kept: keep a copy of the rest.
		h, f.dead = append(make([]Entry, 0, len(h)), h...), 0
	}
	if len(h) > 0 {
		h[0].Flags |= NewSession // a history begins with a session, as a replay of what is kept would
	}
	s.users[user] = h
	s.events--
	s.evicted++
	if s.age != nil {
		if len(h) == 0 {
			s.age.remove(s, user)
		} else {
			s.age.fix(s, user)
		}
	}
	return old, true
}

// Compact moves the histories into exactly sized arrays (16 bytes an event,
// no slack); used after a rebuild. Users share arrays of up to slabEntries
// entries, so that an array is released once every user in it has grown
// or been evicted out of it. Each user's slice is capped at its length, so
// a later Append copies that user's history out on its own.
func (s *Store) Compact() {
	var sl slabs
	for u, h := range s.users {
		s.users[u] = sl.place(h, s.events)
	}
	for u := range s.fronts {
		s.fronts[u].dead = 0
	}
}

// slabs hands out exactly sized slices of shared arrays.
type slabs struct{ cur []Entry }

// place returns a copy of h in a shared array (nil when empty), capped at its
// length; total sizes the first array when it is small.
func (sl *slabs) place(h []Entry, total int) []Entry {
	if len(h) == 0 {
		return nil
	}
	if len(h) > cap(sl.cur)-len(sl.cur) {
		sl.cur = make([]Entry, 0, max(len(h), min(slabEntries, total)))
	}
	off := len(sl.cur)
	sl.cur = append(sl.cur, h...)
	return sl.cur[off:len(sl.cur):len(sl.cur)]
}

// slabEntries is the size of the arrays Compact shares between users: 1 MiB.
const slabEntries = 1 << 16

// User returns the kept history of user, oldest first. The slice must not be
// modified and is valid until the next Append or EvictOldest.
func (s *Store) User(user int32) []Entry {
	if user < 0 || int(user) >= len(s.users) {
		return nil
	}
	return s.users[user]
}

// Start is how many entries of user were evicted: the position of the first
// kept entry among all the user ever had.
func (s *Store) Start(user int32) uint32 {
	if user < 0 || int(user) >= len(s.fronts) {
		return 0
	}
	return s.fronts[user].start
}

// Users is the number of user slots.
func (s *Store) Users() int { return len(s.users) }

// Events is the number of entries kept.
func (s *Store) Events() int { return s.events }

// Evicted is the number of entries evicted since the store was empty.
func (s *Store) Evicted() uint64 { return s.evicted }

// Bytes is the memory held by the histories (entries by capacity, evicted
// entries still at the front of their arrays, the per-user slice headers and
// eviction counters). After Compact, slices share arrays and their
// capacities add up to their sizes.
func (s *Store) Bytes() int64 {
	n := int64(cap(s.users))*24 + int64(cap(s.fronts))*8
	for _, h := range s.users {
		n += int64(cap(h)) * 16
	}
	for _, f := range s.fronts {
		n += int64(f.dead) * 16
	}
	if s.age != nil {
		n += int64(cap(s.age.heap)+cap(s.age.pos)) * 4
	}
	return n
}

// TrackAge turns on the index of the users by the time of their oldest
// entry (Oldest). It costs 8 bytes a user.
func (s *Store) TrackAge() {
	s.age = &ageHeap{}
	for u, h := range s.users {
		if len(h) > 0 {
			s.age.push(s, int32(u))
		}
	}
}

// Oldest returns the user whose oldest kept entry has the earliest time (the
// lowest user id among equal times) and that time; false when every history
// is empty or age tracking is off.
func (s *Store) Oldest() (user int32, t uint32, ok bool) {
	if s.age == nil || len(s.age.heap) == 0 {
		return 0, 0, false
	}
	u := s.age.heap[0]
	return u, s.users[u][0].Time, true
}

// ageHeap is a binary min-heap of the users with a non-empty history, by
// (time of their oldest entry, user id): a total order, so the user on top
// does not depend on how the heap was built.
type ageHeap struct {
	heap []int32
	pos  []int32 // by user: index in heap, -1 when absent
}

func (a *ageHeap) less(s *Store, i, j int) bool {
	ui, uj := a.heap[i], a.heap[j]
	ti, tj := s.users[ui][0].Time, s.users[uj][0].Time
	if ti != tj {
		return ti < tj
	}
	return ui < uj
}

func (a *ageHeap) swap(i, j int) {
	a.heap[i], a.heap[j] = a.heap[j], a.heap[i]
	a.pos[a.heap[i]] = int32(i)
	a.pos[a.heap[j]] = int32(j)
}

func (a *ageHeap) up(s *Store, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(s, i, p) {
			return
		}
		a.swap(i, p)
		i = p
	}
}

func (a *ageHeap) down(s *Store, i int) {
	for {
		l := 2*i + 1
		if l >= len(a.heap) {
			return
		}
		m := l
		if r := l + 1; r < len(a.heap) && a.less(s, r, l) {
			m = r
		}
		if !a.less(s, m, i) {
			return
		}
		a.swap(i, m)
		i = m
	}
}

func (a *ageHeap) push(s *Store, u int32) {
	for int(u) >= len(a.pos) {
		a.pos = append(a.pos, -1)
	}
	a.pos[u] = int32(len(a.heap))
	a.heap = append(a.heap, u)
	a.up(s, len(a.heap)-1)
}

func (a *ageHeap) remove(s *Store, u int32) {
	i := int(a.pos[u])
	last := len(a.heap) - 1
	if i != last {
		a.swap(i, last)
	}
	a.heap = a.heap[:last]
	a.pos[u] = -1
	if i != last {
		a.down(s, i)
		a.up(s, i)
	}
}

// fix restores the order after user's oldest entry changed.
func (a *ageHeap) fix(s *Store, u int32) {
	i := int(a.pos[u])
	a.down(s, i)
	a.up(s, i)
}

// Encode writes the histories to a snapshot.
func (s *Store) Encode(e *snapshot.Encoder) {
	lens := make([]uint32, len(s.users))
	starts := make([]uint32, len(s.users))
	items := make([]int32, 0, s.events)
	times := make([]uint32, 0, s.events)
	millis := make([]uint32, 0, s.events)
	weights := make([]float32, 0, s.events)
	types := make([]uint8, 0, s.events)
	for u, h := range s.users {
		lens[u] = uint32(len(h))
		starts[u] = s.Start(int32(u))
		for _, x := range h {
			items = append(items, x.Item)
			times = append(times, x.Time)
			millis = append(millis, uint32(x.Milli))
			weights = append(weights, x.Weight)
			types = append(types, uint8(x.Type)|x.Flags<<7)
		}
	}
	e.Uint(s.evicted)
	e.Slice(lens, len(lens))
	e.Slice(starts, len(starts))
	e.Slice(items, len(items))
	e.Slice(times, len(times))
	e.Slice(millis, len(millis))
	e.Slice(weights, len(weights))
	e.Slice(types, len(types))
}

// Decode reads histories written by Encode, compacted as by Compact. Age
// tracking is off; turn it on with TrackAge.
func Decode(d *snapshot.Decoder) *Store {
	evicted := d.Uint()
	lens := snapshot.Uint32s(d)
	starts := snapshot.Uint32s(d)
	items := snapshot.Int32s(d)
	times := snapshot.Uint32s(d)
	millis := snapshot.Uint32s(d)
	weights := snapshot.Float32s(d)
	types := snapshot.Uint8s(d)
	n := len(items)
	d.Check(len(times) == n && len(millis) == n && len(weights) == n && len(types) == n, "history columns differ in length")
	d.Check(len(starts) == len(lens), "history start column differs in length")
	var total int
	for _, l := range lens {
		total += int(l)
	}
	d.Check(total == n, "history lengths do not add up")
	for _, m := range millis {
		if m > 999 {
			d.Check(false, "history milliseconds out of range")
			break
		}
	}
	if d.Err() != nil {
		return &Store{}
	}
	s := &Store{users: make([][]Entry, len(lens)), events: n, evicted: evicted}
	var sl slabs
	var h []Entry
	off := 0
	for u, l := range lens {
		h = h[:0]
		for k := off; k < off+int(l); k++ {
			h = append(h, Entry{Item: items[k], Time: times[k], Milli: uint16(millis[k]), Weight: weights[k], Type: event.Type(types[k] & 0x7f), Flags: types[k] >> 7})
		}
		s.users[u] = sl.place(h, n)
		off += int(l)
		if starts[u] != 0 {
			for u >= len(s.fronts) {
				s.fronts = append(s.fronts, front{})
			}
			s.fronts[u].start = starts[u]
		}
	}
	return s
}
