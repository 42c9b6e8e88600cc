package node

import (
	"context"
	"github.com/streamrec/streamrec/ranker"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/recommend"
)

type healthReply struct {
	Engine recommend.Stats `json:"engine"`
}

func mfStats(t *testing.T, n *testNode) recommend.MFStats {
	t.Helper()
	var h healthReply
	call(t, "GET", n.URL+"/healthz", nil, &h)
	return h.Engine.MF
}

// waitTrained polls until the served model was trained through at least
// seq records.
func waitTrained(t *testing.T, n *testNode, seq uint64) recommend.MFStats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s := mfStats(t, n); s.Trained && s.Seq >= seq {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no model trained through record %d within a minute: %+v", seq, mfStats(t, n))
	return recommend.MFStats{}
}

// TestBackgroundTrainingServesAndSurvivesRestart: the server trains mf by
// itself once enough events arrived, serves it (items say "mf"), reports
// it in metrics, writes the model file, and after a restart serves the same
// model at once, without training again.
func TestBackgroundTrainingServesAndSurvivesRestart(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents = 200
	cfg.MF.TrainEvery = 0
	cfg.MF.Factors, cfg.MF.Iterations = 8, 5
	cfg.Blend["mf"] = 5 // let mf lead, so that its items show
	n := startNode(t, cfg)
	if s := mfStats(t, n); s.Trained {
		t.Fatalf("trained before any event: %+v", s)
	}
	seed(t, n, 0) // 240 events and a catalogue
	last := n.Store.LastSeq()
	first := waitTrained(t, n, 200)
	if first.Events == 0 || first.Seconds <= 0 {
		t.Fatalf("stats: %+v", first)
	}
	if _, err := os.Stat(ModelFile(cfg.Data)); err != nil {
		t.Fatalf("model file: %v", err)
	}
	// Events after the training are served at once by fold-in; the state
	// to compare after the restart includes them.
	post(t, n, `[{"user_id":"u7","item_id":"i3","type":"purchase"},{"user_id":"u7","item_id":"i11","type":"purchase"},{"user_id":"u7","item_id":"i19","type":"purchase"}]`)
	want := state(t, n)
	trained := mfStats(t, n)
	if trained.FoldIns == 0 {
		t.Fatalf("no fold-in: %+v", trained)
	}
	text := scrape(t, n)
	for _, want := range []string{`streamrec_mf_trainings_total{outcome="ok"}`, "streamrec_mf_model_age_seconds", "streamrec_mf_training_duration_seconds_count", "streamrec_mf_trained_through_sequence", "streamrec_mf_fold_ins_total"} {
		if !strings.Contains(text, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
	sources := map[string]int{}
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		for _, it := range recs(t, n, u, "?n=10").Items {
			sources[it.Source]++
		}
	}
	if sources["mf"] == 0 {
		t.Fatalf("no mf item in the blend: %v", sources)
	}
	n.stop()

	n = startNode(t, cfg)
	got := mfStats(t, n)
	if !got.Trained || got.Seq != trained.Seq || !got.TrainedAt.Equal(trained.TrainedAt) {
		t.Fatalf("after restart: %+v, before: %+v", got, trained)
	}
	if s := state(t, n); s != want {
		t.Fatalf("answers changed across the restart:\nbefore:\n%s\nafter:\n%s", want, s)
	}
	// The restarted model follows the very next events of a user.
	before := recs(t, n, "u9", "?n=10")
	post(t, n, `[{"user_id":"u9","item_id":"i2","type":"purchase"},{"user_id":"u9","item_id":"i12","type":"purchase"},{"user_id":"u9","item_id":"i22","type":"purchase"}]`)
	after := recs(t, n, "u9", "?n=10")
	if len(before.Items) == 0 || strings.Join(ids(before), ",") == strings.Join(ids(after), ",") {
		t.Fatalf("three purchases changed nothing: %v", ids(after))
	}
	if last == 0 {
		t.Fatal("nothing was logged")
	}
}

// TestShutdownDuringTrainingStopsAtOnce: a SIGTERM while a long training
// runs stops it within a chunk of rows, neither waiting for it nor
// reporting a model it did not save.
func TestShutdownDuringTrainingStopsAtOnce(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents = 200
	cfg.MF.TrainEvery = 0
	cfg.MF.Factors, cfg.MF.Iterations = 16, 100_000_000 // would run for hours
	n := startNode(t, cfg)
	seed(t, n, 0)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(scrape(t, n), "streamrec_mf_training_progress_ratio ") || strings.Contains(scrape(t, n), "streamrec_mf_training_progress_ratio 0\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the training never started:\n%s", grepLines(scrape(t, n), "streamrec_mf_training"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	stopped := make(chan struct{})
	go func() { n.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown waited for a training that would run for hours")
	}
	t.Logf("stopped %s after the shutdown began, mid-training", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(ModelFile(cfg.Data)); !os.IsNotExist(err) {
		t.Fatalf("a model file exists for a training that never finished: %v", err)
	}
}

func TestCountIntervalDoublesWhileYoung(t *testing.T) {
	for _, tc := range []struct{ tried, first, every, want uint64 }{
		{0, 10_000, 100_000, 10_000},
		{10_000, 10_000, 100_000, 10_000}, // trains at 20,000
		{20_000, 10_000, 100_000, 20_000}, // at 40,000
		{80_000, 10_000, 100_000, 80_000}, // at 160,000
		{160_000, 10_000, 100_000, 100_000},
		{0, 0, 100_000, 100_000},
		{0, 500_000, 100_000, 100_000},
	} {
		if got := countInterval(tc.tried, tc.first, tc.every); got != tc.want {
			t.Errorf("countInterval(%d, %d, %d) = %d, want %d", tc.tried, tc.first, tc.every, got, tc.want)
		}
	}
}

// TestTrainingAfterAQuietBulkLoad: with the count schedule far away, a bulk
// load followed by a quiet second trains mf all the same.
func TestTrainingAfterAQuietBulkLoad(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents, cfg.MF.FirstTrainEvents, cfg.MF.TrainEvery = 1<<40, 1<<40, 0
	cfg.MF.Quiet, cfg.MF.QuietEvents = config.Duration(time.Second), 100
	cfg.MF.Factors, cfg.MF.Iterations = 8, 5
	cfg.Ranker.Enabled = false
	n := startNode(t, cfg)
	seed(t, n, 0) // 240 events
	if s := waitTrained(t, n, 200); s.Events == 0 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestScheduleTrainsOnTheEndOfALoad: a load still arriving when the count
// threshold starts a training, and still arriving while it runs, gets one
// more training at the next quiet moment on what came after, though that is
// fewer than the quiet threshold's records; then none.
func TestScheduleTrainsOnTheEndOfALoad(t *testing.T) {
	var n atomic.Uint64
	var loading atomic.Bool
	loading.Store(true)
	applied := func() uint64 { // a record more at every look while the load runs
		if loading.Load() {
			return n.Add(1)
		}
		return n.Load()
	}
	s := schedule{next: func(tried uint64) uint64 { return tried + 10 }, quiet: 50 * time.Millisecond, quietRecords: 1000}
	var mu sync.Mutex
	var trained []uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, 5*time.Millisecond, applied, 0, func(records uint64) {
			mu.Lock()
			first := len(trained) == 0
			trained = append(trained, records)
			mu.Unlock()
			if first {
				loading.Store(false)
				n.Add(5) // the rest of the load, during the training
			}
		})
	}()
	got := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(trained)
	}
	for deadline := time.Now().Add(5 * time.Second); len(got()) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // four quiet periods more: nothing new, no training
	cancel()
	<-done
	if tr := got(); len(tr) != 2 || tr[1] != tr[0]+5 {
		t.Fatalf("trainings at %v records, want two, the second 5 records after the first: the end of the load must be trained on, once", tr)
	}
}

// TestSchedulePrefixTakesTheThreshold: a training the count starts over a
// prefix of the log takes the last threshold passed (the ranker's schedule:
// 10,000 records, then each time the log doubles), whatever the tick found
// applied, so the same log gives the same model however fast it came; a
// schedule over the whole state takes all applied.
func TestSchedulePrefixTakesTheThreshold(t *testing.T) {
	next := ranker.Config{FirstRecords: 10_000, EveryRecords: 100_000}.Next
	for _, tc := range []struct {
		prefix  bool
		applied []uint64 // what each tick finds
		want    []uint64
	}{
		{true, []uint64{9_999, 25_000, 25_000, 41_000, 79_999, 200_000}, []uint64{20_000, 40_000, 160_000}},
		{false, []uint64{9_999, 25_000, 25_000, 41_000, 79_999, 200_000}, []uint64{25_000, 79_999, 200_000}},
	} {
		var i int
		ctx, cancel := context.WithCancel(context.Background())
		applied := func() uint64 { // run's goroutine only
			if i == len(tc.applied)+5 {
				cancel() // every tick seen, and a few more
			}
			i++
			return tc.applied[min(i, len(tc.applied))-1]
		}
		var trained []uint64
		s := schedule{next: next, prefix: tc.prefix}
		s.run(ctx, time.Millisecond, applied, 0, func(records uint64) { trained = append(trained, records) })
		if !slices.Equal(trained[:min(len(trained), len(tc.want))], tc.want) {
			t.Errorf("prefix %v: trainings at %v, want %v first", tc.prefix, trained, tc.want)
		}
	}
}
