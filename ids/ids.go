// Package ids maps the string ids of the API edge to dense int32 ids used
// inside the models, and back.
//
// Invariant: ids are handed out 0, 1, 2, ... in the order strings are first
// seen, so replaying the same log yields the same ids. A Dict is not safe for
// concurrent mutation; callers hold their own lock.
package ids

import "github.com/streamrec/streamrec/snapshot"

// Dict is a two-way mapping between strings and dense int32 ids.
type Dict struct {
	byName map[string]int32
	names  []string
}

// New returns an empty Dict.
func New() *Dict { return &Dict{byName: make(map[string]int32)} }

// Lookup returns the id of s and whether it is known.
func (d *Dict) Lookup(s string) (int32, bool) {
	id, ok := d.byName[s]
	return id, ok
}

// Intern returns the id of s, assigning the next one if s is new.
func (d *Dict) Intern(s string) int32 {
	if id, ok := d.byName[s]; ok {
		return id
	}
	id := int32(len(d.names))
	d.byName[s] = id
	d.names = append(d.names, s)
	return id
}

// Name returns the string of id. It panics if id was never handed out.
func (d *Dict) Name(id int32) string { return d.names[id] }

// Names returns the strings of ids 0 to n−1. The slice shares the Dict's
// array: those entries never change, so it may be read after the caller's
// lock is released, while the Dict grows.
func (d *Dict) Names(n int) []string { return d.names[:n:n] }

// Len is the number of ids handed out.
func (d *Dict) Len() int { return len(d.names) }

// Encode writes the names in id order.
func (d *Dict) Encode(e *snapshot.Encoder) {
	e.Uint(uint64(len(d.names)))
	for _, n := range d.names {
		e.String(n)
	}
}

// Decode reads a Dict written by Encode.
func Decode(dec *snapshot.Decoder) *Dict {
	n := dec.Len(1)
	d := &Dict{byName: make(map[string]int32, n), names: make([]string, 0, n)}
	for range n {
		s := dec.String()
		if dec.Err() != nil {
			break
		}
		if _, dup := d.byName[s]; dup {
			dec.Check(false, "duplicate id "+s)
			break
		}
		d.Intern(s)
	}
	return d
}
