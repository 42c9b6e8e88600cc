package history

import (
	"testing"
	"unsafe"
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
