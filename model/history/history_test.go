package history

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/snapshot"
)

func TestEntryIs16Bytes(t *testing.T) {
	if s := unsafe.Sizeof(Entry{}); s != 16 {
		t.Fatalf("Entry is %d bytes; the memory budget is 16 bytes per event", s)
	}
}

func TestAppendRecent(t *testing.T) {
	var s Store
	for i := range int32(5) {
		s.Append(3, Entry{Item: i})
	}
	if s.Users() != 4 || s.Events() != 5 {
		t.Fatalf("users %d events %d", s.Users(), s.Events())
	}
	h := s.User(3)
	if len(h) != 5 || h[0].Item != 0 || h[4].Item != 4 {
		t.Fatalf("history %v", h)
	}
	if s.User(99) != nil || s.User(-1) != nil || len(s.User(0)) != 0 {
		t.Fatal("unknown users must have no history")
	}
}

func TestCompactKeepsHistoriesAndAppends(t *testing.T) {
	var s Store
	for i := range int32(100) {
		s.Append(i%7, Entry{Item: i})
	}
	s.Compact()
	if got := s.Bytes(); got != 100*16+int64(cap(s.users))*24 {
		t.Fatalf("compacted histories hold %d bytes", got)
	}
	s.Append(0, Entry{Item: 1000})
	h1 := s.User(1)
	if len(h1) != 15 || h1[0].Item != 1 || h1[14].Item != 99 {
		t.Fatalf("user 1 changed after user 0 grew: %v", h1)
	}
	h0 := s.User(0)
	if len(h0) != 16 || h0[15].Item != 1000 || h0[14].Item != 98 {
		t.Fatalf("user 0: %v", h0)
	}
}

func TestEvictOldestInOrder(t *testing.T) {
	var s Store
	for i := range int32(10) {
		s.Append(2, Entry{Item: i})
	}
	for want := range int32(4) {
		e, ok := s.EvictOldest(2)
		if !ok || e.Item != want {
			t.Fatalf("evicted %v %v, want item %d", e, ok, want)
		}
	}
	h := s.User(2)
	if len(h) != 6 || h[0].Item != 4 || s.Start(2) != 4 || s.Events() != 6 || s.Evicted() != 4 {
		t.Fatalf("after 4 evictions: %v start %d events %d evicted %d", h, s.Start(2), s.Events(), s.Evicted())
	}
	if _, ok := s.EvictOldest(0); ok {
		t.Fatal("evicted from an empty history")
	}
	if _, ok := s.EvictOldest(99); ok {
		t.Fatal("evicted from an unknown user")
	}
	if s.Start(0) != 0 || s.Start(99) != 0 {
		t.Fatal("users that lost nothing must start at 0")
	}
}

// TestEvictionReleasesMemory: a user held at a cap keeps an array near the
// cap (evicted entries are not kept behind the slice forever), and a
// history that only shrinks is copied out once most of it is gone.
func TestEvictionReleasesMemory(t *testing.T) {
	var s Store
	const keep = 100
	for i := range int32(100_000) {
		if len(s.User(0)) >= keep {
			s.EvictOldest(0)
		}
		s.Append(0, Entry{Item: i})
	}
	h := s.User(0)
	if len(h) != keep || h[0].Item != 100_000-keep || h[keep-1].Item != 99_999 {
		t.Fatalf("kept %d entries from %d", len(h), h[0].Item)
	}
	// Bytes counts the evicted entries still at the array's front.
	if b := s.Bytes(); b > 2*keep*16+64 {
		t.Fatalf("a history capped at %d holds %d bytes", keep, b)
	}
	for range 90 {
		s.EvictOldest(0)
	}
	if b, h := s.Bytes(), s.User(0); b > 20*16+64 || len(h) != 10 || cap(h) > 20 {
		t.Fatalf("10 entries left in %d bytes (cap %d)", b, cap(h))
	}
	for range 10 {
		s.EvictOldest(0)
	}
	if s.User(0) != nil || s.Events() != 0 {
		t.Fatal("an emptied history still holds an array")
	}
}

// TestCompactThenEvict: users share compacted arrays; evicting from one
// leaves the others intact.
func TestCompactThenEvict(t *testing.T) {
	var s Store
	for i := range int32(1000) {
		s.Append(i%3, Entry{Item: i})
	}
	s.Compact()
	for range 300 {
		s.EvictOldest(1)
	}
	s.Append(1, Entry{Item: -1})
	if h := s.User(0); len(h) != 334 || h[0].Item != 0 || h[333].Item != 999 {
		t.Fatalf("user 0 changed: %d entries", len(h))
	}
	if h := s.User(1); len(h) != 34 || h[0].Item != 901 || h[33].Item != -1 || s.Start(1) != 300 {
		t.Fatalf("user 1: %d entries from %d", len(h), h[0].Item)
	}
	if h := s.User(2); len(h) != 333 || h[0].Item != 2 {
		t.Fatalf("user 2 changed: %d entries", len(h))
	}
}

// TestOldestFollowsFronts: with age tracking, Oldest names the user whose
// oldest kept entry is the earliest (the lower id on ties), through appends,
// evictions and emptied histories, like a scan over all users.
func TestOldestFollowsFronts(t *testing.T) {
	var s Store
	s.TrackAge()
	rng := rand.New(rand.NewPCG(1, 2))
	scan := func() (int32, uint32, bool) {
		best, bt, ok := int32(0), uint32(0), false
		for u := range int32(s.Users()) {
			h := s.User(u)
			if len(h) > 0 && (!ok || h[0].Time < bt) {
				best, bt, ok = u, h[0].Time, true
			}
		}
		return best, bt, ok
	}
	for i := range 20_000 {
		u := int32(rng.IntN(50))
		if rng.IntN(3) == 0 {
			s.EvictOldest(u)
		} else {
			s.Append(u, Entry{Time: uint32(rng.IntN(1000))}) // out of order on purpose
		}
		if rng.IntN(7) == 0 {
			if ou, _, ok := s.Oldest(); ok {
				s.EvictOldest(ou)
			}
		}
		gu, gt, gok := s.Oldest()
		wu, wt, wok := scan()
		if gu != wu || gt != wt || gok != wok {
			t.Fatalf("step %d: Oldest %d@%d %v, scan %d@%d %v", i, gu, gt, gok, wu, wt, wok)
		}
	}
}

func TestEncodeDecodeKeepsStarts(t *testing.T) {
	var s Store
	for i := range int32(50) {
		s.Append(i%4, Entry{Item: i, Time: uint32(i), Milli: uint16(i * 7), Weight: 1.5, Type: event.View})
	}
	for range 5 {
		s.EvictOldest(3)
	}
	var buf bytes.Buffer
	enc := snapshot.NewEncoder(&buf)
	s.Encode(enc)
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := Decode(snapshot.NewDecoder(&buf, int64(buf.Len())))
	if r.Events() != s.Events() || r.Evicted() != 5 || r.Start(3) != 5 || r.Start(2) != 0 {
		t.Fatalf("decoded: events %d evicted %d start %d", r.Events(), r.Evicted(), r.Start(3))
	}
	for u := range int32(4) {
		if !slices.Equal(r.User(u), s.User(u)) {
			t.Fatalf("user %d: %v != %v", u, r.User(u), s.User(u))
		}
	}
}
