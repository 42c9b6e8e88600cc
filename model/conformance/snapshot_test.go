package conformance

import (
	"bytes"
	"context"
	"testing"

	"github.com/streamrec/streamrec/recommend"
)

// roundTrip is a fresh engine of the same configuration restored from e's
// snapshot (and e's trained matrix factorisation, which lives in a file of
// its own, when it has one).
func roundTrip(t *testing.T, e *recommend.Engine, preset, name string, keep recommend.Retention) *recommend.Engine {
	t.Helper()
	snap := snapshotBytes(t, e)
	r := newEngine(t, preset, name, keep)
	if err := r.ReadSnapshot(bytes.NewReader(snap), int64(len(snap))); err != nil {
		t.Fatal(err)
	}
	var mf bytes.Buffer
	if ok, err := e.WriteMF(&mf); err != nil {
		t.Fatal(err)
	} else if ok {
		if _, err := r.LoadMF(context.Background(), bytes.NewReader(mf.Bytes()), int64(mf.Len())); err != nil {
			t.Fatal(err)
		}
	}
	if again := snapshotBytes(t, r); !bytes.Equal(again, snap) {
		t.Errorf("the restored engine's snapshot differs from the one it was restored from (%d bytes, %d)", len(again), len(snap))
	}
	return r
}

// TestSnapshotRoundTrip: an engine restored from a snapshot answers every
// user (for the source and the blend) and every item's similar items as
// the engine it was taken from, and still does after both apply the same
// further events.
func TestSnapshotRoundTrip(t *testing.T) {
	forEach(t, func(t *testing.T, preset, name string) {
		for _, keep := range []recommend.Retention{{}, {MaxEventsPerUser: 3}} {
			w := newWorld(t, preset, 2, true)
			e := newEngine(t, preset, name, keep)
			e.Apply(w.records())
			trainMF(t, e)
			r := roundTrip(t, e, preset, name, keep)
			sameAnswers(t, "restored", collect(t, r, w, name, 10), collect(t, e, w, name, 10), 0)
			more := w.more(3)
			e.Apply(more)
			r.Apply(more)
			sameAnswers(t, "restored, then more events", collect(t, r, w, name, 10), collect(t, e, w, name, 10), 0)
			if a, b := snapshotBytes(t, r), snapshotBytes(t, e); !bytes.Equal(a, b) {
				t.Errorf("retention %+v: after the same events, snapshots differ", keep)
			}
		}
	})
}
