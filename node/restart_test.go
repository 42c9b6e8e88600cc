package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/store"
)

// seed posts a small catalogue and varied events.
func seed(t *testing.T, n *testNode, round int) {
	t.Helper()
	call(t, "PUT", n.URL+"/v1/items", `[{"id":"i0","categories":["even"]},{"id":"i1","categories":["odd"]},{"id":"i3","hidden":true}]`, nil)
	var evs []string
	for u := range 40 {
		for k := range 6 {
			evs = append(evs, fmt.Sprintf(`{"user_id":"u%d","item_id":"i%d","type":"%s","timestamp":%d}`,
				u, (u*3+k*7+round)%25, []string{"view", "click", "cart", "purchase"}[(u+k)%4], 1700000000+round*1000+u*10+k))
		}
	}
	post(t, n, "["+strings.Join(evs, ",")+"]")
	call(t, "DELETE", n.URL+"/v1/items/i4", nil, nil)
}

// state is everything the models answer, for comparison across restarts.
func state(t *testing.T, n *testNode) string {
	t.Helper()
	var b strings.Builder
	get := func(path string) {
		var r recReply
		call(t, "GET", n.URL+path, nil, &r)
		fmt.Fprintf(&b, "%s %v\n", path, r.Items)
	}
	for u := range 40 {
		get(fmt.Sprintf("/v1/users/u%d/recommendations?n=8", u))
	}
	get("/v1/users/u3/recommendations?n=8&category=odd")
	get("/v1/trending?n=20")
	get("/v1/trending?n=20&category=even")
	get("/v1/items/i7/similar?n=10")
	return b.String()
}

func snapshotFiles(t *testing.T, data string) []string {
	names, _ := filepath.Glob(filepath.Join(data, "snapshots", "engine-*.snap"))
	return names
}

func TestGracefulRestartRestoresSnapshot(t *testing.T) {
	cfg := defaultConfig(t)
	n := startNode(t, cfg)
	seed(t, n, 0)
	want := state(t, n)
	n.stop()
	if files := snapshotFiles(t, cfg.Data); len(files) != 1 {
		t.Fatalf("a graceful stop must leave one snapshot, found %v", files)
	}

	n = startNode(t, cfg)
	if got := state(t, n); got != want {
		t.Fatalf("state changed across a restart from the snapshot:\nbefore:\n%s\nafter:\n%s", want, got)
	}
	// The restored models keep learning: the next event is reflected at once.
	before := recs(t, n, "newcomer", "?n=3")
	post(t, n, `[{"user_id":"newcomer","item_id":"i7","type":"purchase"}]`)
	after := recs(t, n, "newcomer", "?n=3")
	if len(after.Items) == 0 || after.Items[0].Source != "item_knn" || fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatalf("restored engine did not reflect a new event: before %v after %v", before.Items, after.Items)
	}
}

// TestSnapshotPlusLogTail: records logged after the snapshot (as after a
// crash) are replayed on top of it, giving exactly the state a full replay
// gives; a damaged snapshot falls back to the full replay.
func TestSnapshotPlusLogTail(t *testing.T) {
	cfg := defaultConfig(t)
	n := startNode(t, cfg)
	seed(t, n, 0)
	n.stop()

	// Events logged after the snapshot, as if the process died before the
	// next one.
	st, err := store.Open(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	var tail []event.Record
	for u := range 30 {
		tail = append(tail, event.Record{Kind: event.KindEvent, Event: event.Event{
			User: fmt.Sprintf("u%d", u), Item: fmt.Sprintf("i%d", (u*5)%25), Type: event.Purchase, Value: 1, Weight: 10,
			Time: time.Unix(1700100000+int64(u), 0).UTC()}})
	}
	if _, err := st.Append(tail); err != nil {
		t.Fatal(err)
	}
	st.Close()
	snaps := snapshotFiles(t, cfg.Data)

	n = startNode(t, cfg) // snapshot + tail
	fromSnapshot := state(t, n)
	n.stop()

	// Full replay: no snapshot at all.
	os.RemoveAll(filepath.Join(cfg.Data, "snapshots"))
	n = startNode(t, cfg)
	fromLog := state(t, n)
	n.stop()
	if fromSnapshot != fromLog {
		t.Fatalf("snapshot + tail differs from a full replay:\nsnapshot:\n%s\nlog:\n%s", fromSnapshot, fromLog)
	}
	if len(snaps) != 1 {
		t.Fatalf("expected one snapshot before the tail, found %v", snaps)
	}

	// A damaged snapshot is ignored: the log is the source of truth.
	for _, f := range snapshotFiles(t, cfg.Data) {
		b, _ := os.ReadFile(f)
		os.WriteFile(f, b[:len(b)/2], 0o644)
	}
	n = startNode(t, cfg)
	if got := state(t, n); got != fromLog {
		t.Fatalf("state after a damaged snapshot differs from a full replay")
	}
}

// TestPeriodicSnapshots: with snapshot_every set, snapshots are written while
// serving, and only the newest is kept.
func TestPeriodicSnapshots(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.SnapshotEvery = 100
	n := startNode(t, cfg)
	for round := range 3 {
		seed(t, n, round)
	}
	files := snapshotFiles(t, cfg.Data)
	if len(files) != 1 {
		t.Fatalf("want exactly the newest snapshot, found %v", files)
	}
	var seq uint64
	fmt.Sscanf(filepath.Base(files[0]), "engine-%d.snap", &seq)
	// Each round logs 243 records in three requests; a snapshot follows the
	// first commit that is 100 or more records past the previous one.
	if last := n.Store.LastSeq(); seq < 100*((last-243)/100) || seq > last {
		t.Fatalf("newest snapshot at %d, log at %d", seq, last)
	}
}

// TestRestartReadsOnlyTheTail: the de-duplication window is saved with the
// snapshot, so a restart reads only the log after it (not the last million
// records), its progress counts what it really reads, and an event_id seen
// before the restart is still a duplicate after it.
func TestRestartReadsOnlyTheTail(t *testing.T) {
	cfg := defaultConfig(t)
	n := startNode(t, cfg)
	seed(t, n, 0)
	post(t, n, `[{"event_id":"before-restart","user_id":"u1","item_id":"i9","type":"view"}]`)
	logged := n.Store.LastSeq()
	n.stop() // writes the snapshot and its window

	st, err := store.Open(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	tail := []event.Record{{Kind: event.KindEvent, Event: event.Event{User: "u2", Item: "i3", Type: event.View, Value: 1, Weight: 1, Time: time.Unix(1700200000, 0).UTC()}}}
	if _, err := st.Append(tail); err != nil {
		t.Fatal(err)
	}
	tb, _ := cfg.Table()
	var reads []uint64
	w, err := ingest.New(context.Background(), st, func() *recommend.Engine { return recommend.New(cfg.EngineConfig(tb)) },
		pipeline.NewDedup(cfg.DedupConfig()), slog.New(slog.NewTextHandler(io.Discard, nil)),
		ingest.Config{DedupIDs: cfg.Dedup.IDs, Progress: func(done, total uint64) { reads = append(reads, total) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) == 0 || reads[len(reads)-1] != 1 {
		t.Fatalf("the restart read %v records of a log of %d with a snapshot at %d: want only the 1 after it", reads, logged+1, logged)
	}
	res, err := w.Submit(context.Background(), []event.Record{{Kind: event.KindEvent, Event: event.Event{
		ID: "before-restart", User: "u1", Item: "i9", Type: event.View, Value: 1, Weight: 1, Time: time.Now().UTC()}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate[0] {
		t.Fatal("an event_id seen before the restart was stored again after it")
	}
	w.Close()
	st.Close()
}
