package recommend

import (
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
)

// synthStream yields, a batch at a time, the events dataset.Synthetic makes
// for the same configuration (the same random draws in the same order), as
// records weighted by a preset table, without holding them all: for runs of
// millions of events. uniformUsers draws users uniformly instead (every
// user reaches a per-user cap at the same pace).
type synthStream struct {
	rng          *rand.Rand
	items, users *rand.Zipf
	itemPerm     []int
	userPerm     []int
	uniformUsers bool
	userNames    []string
	itemNames    []string
	types        []event.Type
	weights      []float32
	start        time.Time
	step         time.Duration
	i            int
}

func newSynthStream(cfg dataset.SynthConfig, tb *event.Table, uniformUsers bool) *synthStream {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	s := &synthStream{
		rng:          rng,
		items:        rand.NewZipf(rng, 1.1, 4, uint64(cfg.Items-1)),
		users:        rand.NewZipf(rng, 1.2, 8, uint64(cfg.Users-1)),
		itemPerm:     rng.Perm(cfg.Items),
		userPerm:     rng.Perm(cfg.Users),
		uniformUsers: uniformUsers,
		start:        cfg.Start,
		step:         cfg.Step,
	}
	if s.start.IsZero() {
		s.start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if s.step == 0 {
		s.step = time.Second
	}
	for u := range cfg.Users {
		s.userNames = append(s.userNames, "u"+strconv.Itoa(u))
	}
	for i := range cfg.Items {
		s.itemNames = append(s.itemNames, "i"+strconv.Itoa(i))
	}
	for _, name := range []string{"view", "view", "view", "view", "view", "click", "click", "cart", "purchase"} {
		t, _ := event.ParseType(name)
		s.types = append(s.types, t)
		s.weights = append(s.weights, tb.Weight(t, 1))
	}
	return s
}

// next appends n events to out.
func (s *synthStream) next(out []event.Record, n int) []event.Record {
	for range n {
		var u int
		if s.uniformUsers {
			u = s.rng.IntN(len(s.userPerm))
		} else {
			u = s.userPerm[s.users.Uint64()]
		}
		it := s.itemPerm[s.items.Uint64()]
		k := s.rng.IntN(len(s.types))
		out = append(out, event.Record{Kind: event.KindEvent, Event: event.Event{
			User: s.userNames[u], Item: s.itemNames[it], Type: s.types[k], Weight: s.weights[k],
			Time: s.start.Add(time.Duration(s.i) * s.step)}})
		s.i++
	}
	return out
}

// TestSynthStreamIsSynthetic: the stream is dataset.Synthetic's data.
func TestSynthStreamIsSynthetic(t *testing.T) {
	tb, _ := event.Preset(event.PresetEcommerce)
	cfg := dataset.SynthConfig{Users: 500, Items: 300, Events: 3000, Seed: 4}
	want := dataset.Synthetic(cfg)
	got := newSynthStream(cfg, tb, false).next(nil, cfg.Events)
	for i := range want {
		g, w := got[i].Event, want[i]
		if g.User != w.UserID || g.Item != w.ItemID || g.Type.String() != w.Type || !g.Time.Equal(w.Timestamp.Time) {
			t.Fatalf("event %d: %+v, dataset.Synthetic %+v", i, g, w)
		}
	}
}

// heapLive is the bytes of live heap objects after a full collection.
func heapLive() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// resetPeakRSS restarts the kernel's peak-RSS counter (VmHWM).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// TestRetentionMemoryFlat is the soak test: events flow through the engine
// well past the point where retention holds as many as it keeps (a per-user
// cap over a fixed set of users; a maximum age with events a second apart),
// and the live heap and the resident set, sampled after collection, stay
// flat from then on. It runs for a bounded time (under 10 s per case) and
// skips under -short and -race.
func TestRetentionMemoryFlat(t *testing.T) {
	if testing.Short() || shared.Race {
		t.Skip("soak test: run without -short and -race")
	}
	tb, _ := event.Preset(event.PresetEcommerce)
	for _, tc := range []struct {
		name    string
		keep    Retention
		users   int
		uniform bool
		kept    int // events held once retention is reached
	}{
		{"cap", Retention{MaxEventsPerUser: 100}, 3_000, true, 300_000},
		{"age", Retention{MaxAge: 300_000 * time.Second}, 50_000, false, 300_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTest(testConfig{Table: tb, Retention: tc.keep})
			src := newSynthStream(dataset.SynthConfig{Users: tc.users, Items: 10_000, Seed: 7}, tb, tc.uniform)
			var batch []event.Record
			feed := func(n int) {
				for ; n > 0; n -= 500 {
					batch = src.next(batch[:0], min(n, 500))
					e.Apply(batch)
				}
			}
			// Reach retention: the cap is reached by every user after about
			// twice the kept count at this spread; the age after its span.
			feed(2 * tc.kept)
			var heaps, rsss []uint64
			deadline := time.Now().Add(6 * time.Second)
			// At least four samples however slow the machine (a busy CI
			// must not fail it); more while time allows.
			for round := 0; round < 12 && (round < 4 || time.Now().Before(deadline)); round++ {
				feed(tc.kept / 2)
				st := e.Stats()
				if tc.name == "cap" && st.Events != tc.kept {
					t.Fatalf("%d events held, the cap keeps %d", st.Events, tc.kept)
				}
				if tc.name == "age" && (st.Events < tc.kept-1000 || st.Events > tc.kept+1) {
					t.Fatalf("%d events held, the age keeps %d", st.Events, tc.kept)
				}
				h := heapLive()
				debug.FreeOSMemory()
				r, _ := shared.RSS()
				heaps, rsss = append(heaps, h), append(rsss, r)
				m := e.Memory()
				t.Logf("%s: %d events applied, %d held, %d evicted, %d item pairs; live heap %.1f MiB (histories %.1f, item-kNN %.1f), RSS %.1f MiB",
					tc.name, st.Applied, st.Events, st.Evicted, e.knnPairs(), float64(h)/(1<<20), float64(m.History)/(1<<20), float64(m.Models[SourceItemKNN])/(1<<20), float64(r)/(1<<20))
			}
			if len(heaps) < 3 {
				t.Fatalf("only %d samples in the time allowed", len(heaps))
			}
			// Flat: no sample after the first exceeds it by more than 10%
			// (the heap) or 15% (the resident set, which also holds the
			// runtime's own structures).
			for i := range heaps {
				if float64(heaps[i]) > 1.10*float64(heaps[0]) {
					t.Fatalf("live heap grew from %d to %d bytes with retention reached", heaps[0], heaps[i])
				}
				if rsss[0] > 0 && float64(rsss[i]) > 1.15*float64(rsss[0]) {
					t.Fatalf("RSS grew from %d to %d bytes with retention reached", rsss[0], rsss[i])
				}
			}
			runtime.KeepAlive(e)
		})
	}
}

// BenchmarkMemoryAtScale applies 10M events of dataset.Synthetic's shape at
// the scale of a large shop (250,000 users, 100,000 items: Zipf item
// popularity, heavy-tailed users, four event types), streamed so that only
// the engine is in memory, and reports per event held: the live heap after
// collection, the resident set, and each model's arrays; then trains matrix
// factorisation (the defaults: 64 factors) and reports the peak resident set
// during training. keep-all holds every event; retention-default holds each
// user's latest 1,000 (the configuration's default).
//
//	go test ./recommend -run XXX -bench MemoryAtScale -benchtime 1x -timeout 60m
func BenchmarkMemoryAtScale(b *testing.B) {
	n := 10_000_000
	if s := os.Getenv("STREAMREC_MEM_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	tb, _ := event.Preset(event.PresetEcommerce)
	for _, bc := range []struct {
		name string
		keep Retention
	}{
		{"keep-all", Retention{}},
		{"retention-default", Retention{MaxEventsPerUser: 1000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				base := heapLive()
				debug.FreeOSMemory()
				rss0, _ := shared.RSS()
				e := newTest(testConfig{Table: tb, Retention: bc.keep})
				src := newSynthStream(dataset.SynthConfig{Users: 250_000, Items: 100_000, Seed: 1}, tb, false)
				var batch []event.Record
				start := time.Now()
				for left := n; left > 0; left -= 500 {
					batch = src.next(batch[:0], min(left, 500))
					e.Apply(batch)
				}
				applied := time.Since(start)
				batch = nil
				heap := heapLive() - base
				debug.FreeOSMemory()
				r, _ := shared.RSS()
				st, m := e.Stats(), e.Memory()
				held := float64(st.Events)
				b.ReportMetric(held, "events-held")
				b.ReportMetric(float64(heap)/held, "heap-B/event")
				b.ReportMetric(float64(r-rss0)/held, "rss-B/event")
				b.ReportMetric(float64(m.History)/held, "history-B/event")
				b.ReportMetric(float64(m.Models[SourceItemKNN])/held, "itemknn-B/event")
				b.ReportMetric(float64(n)/applied.Seconds(), "applied-events/s")
				b.Logf("%s: %d events applied in %v, %d held (%d users, %d items, %d item pairs); live heap %.0f MiB, RSS %.0f MiB above the start",
					bc.name, n, applied.Round(time.Millisecond), st.Events, st.Users, st.Items, e.knnPairs(), float64(heap)/(1<<20), float64(r-rss0)/(1<<20))

				resetPeakRSS()
				start = time.Now()
				if _, err := e.TrainMF(b.Context(), nil, nil); err != nil {
					b.Fatal(err)
				}
				_, peak := shared.RSS()
				trained := heapLive() - base
				b.ReportMetric(float64(peak-rss0)/held, "train-peak-rss-B/event")
				b.ReportMetric(float64(trained)/held, "trained-heap-B/event")
				b.Logf("%s: mf trained in %v; peak RSS during training %.0f MiB above the start, live heap after %.0f MiB",
					bc.name, time.Since(start).Round(time.Millisecond), float64(peak-rss0)/(1<<20), float64(trained)/(1<<20))
				runtime.KeepAlive(e)
			}
		})
	}
}
