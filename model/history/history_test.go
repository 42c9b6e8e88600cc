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
	r := s.Recent(3, 2)
	if len(r) != 2 || r[0].Item != 3 || r[1].Item != 4 {
		t.Fatalf("recent %v", r)
	}
	if s.User(99) != nil || s.User(-1) != nil || len(s.Recent(0, 5)) != 0 {
		t.Fatal("unknown users must have no history")
	}
}
