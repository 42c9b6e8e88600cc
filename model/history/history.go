// Package history keeps every user's interactions in memory, compactly: one
// 16-byte Entry per event (dense item id, seconds, weight, type).
//
// Invariant: entries of a user are kept in the order they were applied (log
// order). Append is not safe for concurrent use; readers must hold the same
// lock the writer holds while appending.
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
}

// Store holds the histories of all users, indexed by dense user id.
type Store struct {
	users  [][]Entry
	events int
}

// Append adds e to the history of user.
func (s *Store) Append(user int32, e Entry) {
	for int(user) >= len(s.users) {
		s.users = append(s.users, nil)
	}
	h := s.users[user]
	if len(h) == cap(h) {
		// Grow by a quarter, not double: the histories are most of the
		// memory, and the budget is 16 bytes an event.
		h = append(make([]Entry, 0, len(h)+len(h)/4+4), h...)
	}
	s.users[user] = append(h, e)
	s.events++
}

// Compact moves every history into one exactly sized array (16 bytes an
// event, no slack); used after a rebuild. Each user's slice is capped at its
// length, so a later Append copies that user's history out on its own.
func (s *Store) Compact() {
	slab := make([]Entry, 0, s.events)
	for u, h := range s.users {
		off := len(slab)
		slab = append(slab, h...)
		s.users[u] = slab[off:len(slab):len(slab)]
	}
}

// User returns the full history of user, oldest first. The slice must not be
// modified and is valid until the next Append.
func (s *Store) User(user int32) []Entry {
	if user < 0 || int(user) >= len(s.users) {
		return nil
	}
	return s.users[user]
}

// Users is the number of user slots.
func (s *Store) Users() int { return len(s.users) }

// Events is the number of entries stored.
func (s *Store) Events() int { return s.events }

// Bytes is the memory held by the histories (entries by capacity, plus the
// per-user slice headers). After Compact, slices share one array and their
// capacities add up to its size.
func (s *Store) Bytes() int64 {
	n := int64(cap(s.users)) * 24
	for _, h := range s.users {
		n += int64(cap(h)) * 16
	}
	return n
}

// Encode writes the histories to a snapshot.
func (s *Store) Encode(e *snapshot.Encoder) {
	lens := make([]uint32, len(s.users))
	items := make([]int32, 0, s.events)
	times := make([]uint32, 0, s.events)
	weights := make([]float32, 0, s.events)
	types := make([]uint8, 0, s.events)
	for u, h := range s.users {
		lens[u] = uint32(len(h))
		for _, x := range h {
			items = append(items, x.Item)
			times = append(times, x.Time)
			weights = append(weights, x.Weight)
			types = append(types, uint8(x.Type))
		}
	}
	e.Slice(lens, len(lens))
	e.Slice(items, len(items))
	e.Slice(times, len(times))
	e.Slice(weights, len(weights))
	e.Slice(types, len(types))
}

// Decode reads histories written by Encode, compacted into one array.
func Decode(d *snapshot.Decoder) *Store {
	lens := snapshot.Uint32s(d)
	items := snapshot.Int32s(d)
	times := snapshot.Uint32s(d)
	weights := snapshot.Float32s(d)
	types := snapshot.Uint8s(d)
	n := len(items)
	d.Check(len(times) == n && len(weights) == n && len(types) == n, "history columns differ in length")
	var total int
	for _, l := range lens {
		total += int(l)
	}
	d.Check(total == n, "history lengths do not add up")
	if d.Err() != nil {
		return &Store{}
	}
	slab := make([]Entry, n)
	for i := range slab {
		slab[i] = Entry{Item: items[i], Time: times[i], Weight: weights[i], Type: event.Type(types[i])}
	}
	s := &Store{users: make([][]Entry, len(lens)), events: n}
	off := 0
	for u, l := range lens {
		s.users[u] = slab[off : off+int(l) : off+int(l)]
		off += int(l)
	}
	return s
}
