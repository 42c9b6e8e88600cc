package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

func sampleRecords() []event.Record {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 123, time.UTC)
	pub := t0.Add(-time.Hour)
	return []event.Record{
		{Kind: event.KindItemPut, Item: event.Item{ID: "i1", Title: "Shoe", Categories: []string{"shoes"}, Tags: []string{"red"}, Attributes: json.RawMessage(`{"price":10}`), PublishedAt: &pub}},
		{Kind: event.KindEvent, Event: event.Event{ID: "e1", User: "u1", Item: "i1", Type: event.Purchase, Value: 1, Time: t0, Weight: 10, Context: json.RawMessage(`{"device":"ios"}`)}},
		{Kind: event.KindEvent, Event: event.Event{User: "u1", Type: event.Search, Time: t0.Add(time.Second), Context: json.RawMessage(`{"query":"boots"}`)}},
		{Kind: event.KindEvent, Event: event.Event{User: "u2", Item: "i1", Type: event.View, Value: 1, Time: t0.Add(2 * time.Second), Weight: 1}},
		{Kind: event.KindUserPut, User: event.User{ID: "u1", Attributes: json.RawMessage(`{"age":30}`)}},
		{Kind: event.KindItemDelete, Item: event.Item{ID: "i1"}},
		{Kind: event.KindUserDelete, User: event.User{ID: "u1"}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for i, r := range sampleRecords() {
		b, err := EncodeRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(normal(got), normal(r)) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, r)
		}
	}
}

// normal makes records comparable: times by instant, pointers by value.
func normal(r event.Record) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestDecodeCorrupt(t *testing.T) {
	r := sampleRecords()[1]
	b, _ := EncodeRecord(nil, &r)
	for _, bad := range [][]byte{nil, {9}, {codecVersion}, {codecVersion, 77}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := DecodeRecord(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: want ErrCorrupt, got %v", bad, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b, _ := EncodeRecord(nil, &r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		// What decodes must encode and decode to the same record.
		b2, err := EncodeRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeRecord(b2)
		if err != nil || normal(r2) != normal(r) {
			t.Fatalf("round trip changed %+v into %+v (%v)", r, r2, err)
		}
	})
}

func TestAppendReplayAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := sampleRecords()
	first, err := s.Append(recs[:5])
	if err != nil || first != 1 {
		t.Fatalf("first append: seq %d, %v", first, err)
	}
	it, err := s.Item("i1")
	if err != nil || it.Title != "Shoe" || it.Categories[0] != "shoes" {
		t.Fatalf("item: %+v, %v", it, err)
	}
	u, err := s.User("u1")
	if err != nil || string(u.Attributes) != `{"age":30}` {
		t.Fatalf("user: %+v, %v", u, err)
	}
	evs, err := s.UserEvents("u1", 10)
	if err != nil || len(evs) != 2 || evs[0].Type != event.Search || evs[1].Item != "i1" {
		t.Fatalf("user events (newest first): %+v, %v", evs, err)
	}
	if evs, _ := s.UserEvents("u1", 1); len(evs) != 1 {
		t.Fatalf("n=1 gave %d events", len(evs))
	}
	if evs, _ := s.UserEvents("u", 10); len(evs) != 0 {
		t.Fatalf("a prefix of another user's id must not match: %+v", evs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.LastSeq() != 5 {
		t.Fatalf("reopened last seq %d, want 5", s.LastSeq())
	}
	first, err = s.Append(recs[5:])
	if err != nil || first != 6 {
		t.Fatalf("second append: seq %d, %v", first, err)
	}
	if _, err := s.Item("i1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted item: %v", err)
	}
	if _, err := s.User("u1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted user: %v", err)
	}
	var seqs []uint64
	var kinds []event.RecordKind
	err = s.Replay(1, func(seq uint64, r event.Record) error {
		seqs = append(seqs, seq)
		kinds = append(kinds, r.Kind)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != len(recs) {
		t.Fatalf("replayed %d records, want %d", len(seqs), len(recs))
	}
	for i := range seqs {
		if seqs[i] != uint64(i+1) || kinds[i] != recs[i].Kind {
			t.Fatalf("record %d: seq %d kind %d", i, seqs[i], kinds[i])
		}
	}
	var from3 int
	_ = s.Replay(3, func(uint64, event.Record) error { from3++; return nil })
	if from3 != len(recs)-2 {
		t.Fatalf("replay from 3 gave %d records", from3)
	}
}
