package recommend

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/snapshot"
)

func snapshotOf(t testing.TB, e *Engine) []byte {
	var buf bytes.Buffer
	if _, err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	e := newEngine(t)
	e.Apply([]event.Record{{Kind: event.KindItemPut, Item: event.Item{ID: "a", Categories: []string{"drama", "new"}}},
		{Kind: event.KindItemPut, Item: event.Item{ID: "h", Hidden: true}}})
	world(e)
	e.Apply([]event.Record{{Kind: event.KindItemDelete, Item: event.Item{ID: "c"}}, ev("x", "a", event.Watch, 3, 500)})
	b := snapshotOf(t, e)

	r := newEngine(t)
	if err := r.ReadSnapshot(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"x", "u1", "stranger"} {
		want := fmt.Sprint(e.Recommend(Request{User: user, N: 5}))
		if got := fmt.Sprint(r.Recommend(Request{User: user, N: 5})); got != want {
			t.Fatalf("%s: %s != %s", user, got, want)
		}
	}
	if fmt.Sprint(r.Trending(5, "drama")) != fmt.Sprint(e.Trending(5, "drama")) || r.Applied() != e.Applied() {
		t.Fatal("trending or applied count differ")
	}
	if !bytes.Equal(snapshotOf(t, r), b) {
		t.Fatal("a restored engine writes a different snapshot")
	}
}

func TestSnapshotOtherConfigRefused(t *testing.T) {
	e := newEngine(t)
	world(e)
	b := snapshotOf(t, e)
	tb, _ := event.Preset(event.PresetVideo)
	r := newTest(testConfig{Table: tb, ItemKNN: itemknn.Config{Window: 3}})
	if err := r.ReadSnapshot(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrSnapshotConfig) {
		t.Fatalf("want ErrSnapshotConfig, got %v", err)
	}
}

// FuzzReadSnapshot: a damaged snapshot is an error, never a panic, and an
// engine that accepted one still answers.
func FuzzReadSnapshot(f *testing.F) {
	e := newEngine(f)
	world(e)
	b := snapshotOf(f, e)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newEngine(t)
		err := r.ReadSnapshot(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, snapshot.ErrCorrupt) && !errors.Is(err, ErrSnapshotConfig) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		r.Recommend(Request{User: "u1", N: 5})
		r.Trending(5, "")
		r.Similar("a", 5, "")
	})
}
