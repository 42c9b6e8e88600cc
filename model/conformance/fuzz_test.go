package conformance

import (
	"bytes"
	"errors"
	"testing"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/snapshot"
)

// FuzzReadSnapshot feeds damaged snapshots of an engine with every default
// model to a fresh one: each model's decoder must refuse what it cannot
// read with snapshot.ErrCorrupt (or the configuration error), never panic,
// and a snapshot it accepts must answer requests.
func FuzzReadSnapshot(f *testing.F) {
	w := newWorld(f, event.PresetVideo, 1, true)
	c := config.Default()
	tb := presetTable(f, event.PresetVideo)
	e := recommend.New(c.EngineConfig(tb))
	e.Apply(w.records())
	var buf bytes.Buffer
	if _, err := e.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	b := buf.Bytes()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		r := recommend.New(c.EngineConfig(tb))
		err := r.ReadSnapshot(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, snapshot.ErrCorrupt) && !errors.Is(err, recommend.ErrSnapshotConfig) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for _, u := range w.users[:3] {
			r.Recommend(recommend.Request{User: u, N: 5})
			r.Rank(recommend.RankRequest{User: u, Items: w.itemIDs()[:5]})
		}
		r.Trending(5, "")
		r.Similar(w.itemIDs()[0], 5, "")
	})
}
