package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/store"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

// BenchmarkHTTPIngest posts batches of 500 synthetic events (Zipf items,
// heavy-tailed users) over loopback from 4 concurrent clients; every batch is
// durable (fsync, shared by concurrent requests) and applied before its reply.
func BenchmarkHTTPIngest(b *testing.B) {
	const batch = 500
	n := startNode(b, defaultConfig(b))
	inputs := dataset.Synthetic(dataset.SynthConfig{Users: 6040, Items: 3706, Events: 200_000, Seed: 3})
	var bodies [][]byte
	for i := 0; i+batch <= len(inputs); i += batch {
		body, _ := json.Marshal(inputs[i : i+batch])
		bodies = append(bodies, body)
	}
	client := benchClient()
	var next atomic.Int64
	b.SetParallelism(2) // 2 × GOMAXPROCS(2) = 4 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[int(next.Add(1))%len(bodies)]
			resp, err := client.Post(n.URL+"/v1/events", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkHTTPRecommendLatency loads ml-latest-small, then sends
// recommendation requests open-loop at 5,000 per second for 5 seconds per
// iteration (latency is measured from each request's scheduled time, so
// queueing counts: no coordinated omission) and reports percentiles.
func BenchmarkHTTPRecommendLatency(b *testing.B) {
	const rate, seconds = 5000, 5
	dir := shared.Dataset(b, "ml-latest-small")
	d, err := dataset.Load(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	n := startNode(b, defaultConfig(b))
	client := benchClient()
	post := func(path string, v any) {
		body, _ := json.Marshal(v)
		req, _ := http.NewRequest("PUT", n.URL+path, bytes.NewReader(body))
		if path == "/v1/events" {
			req.Method = "POST"
		}
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	post("/v1/items", d.Items)
	var users []string
	seen := map[string]bool{}
	for i := 0; i < len(d.Events); i += 5000 {
		post("/v1/events", d.Events[i:min(i+5000, len(d.Events))])
	}
	for _, e := range d.Events {
		if !seen[e.UserID] {
			seen[e.UserID] = true
			users = append(users, e.UserID)
		}
	}
	b.ResetTimer()
	var all, service []time.Duration
	var errs atomic.Int64
	for b.Loop() {
		total := rate * seconds
		lat := make([]time.Duration, total)
		svc := make([]time.Duration, total)
		jobs := make(chan int, total)
		var wg sync.WaitGroup
		start := time.Now()
		interval := time.Second / rate
		// Each worker keeps one keep-alive connection and speaks HTTP/1.1 on
		// it directly: a lighter client leaves more of the 2 cores to the
		// server being measured.
		host := strings.TrimPrefix(n.URL, "http://")
		for range 32 {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for i := range jobs {
					sched := start.Add(time.Duration(i) * interval)
					sent := time.Now()
					req := "GET /v1/users/" + url.PathEscape(users[i%len(users)]) + "/recommendations?n=10 HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
					if _, err := conn.Write([]byte(req)); err != nil {
						errs.Add(1)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						errs.Add(1)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs.Add(1)
					}
					lat[i] = time.Since(sched)
					svc[i] = time.Since(sent)
				}
			}()
		}
		// Dispatch in 1 ms ticks (5 requests each at 5,000/s): finer sleeps
		// cost the load generator more than they measure.
		for i := 0; i < total; {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			for due := time.Since(start); i < total && time.Duration(i)*interval <= due; i++ {
				jobs <- i
			}
		}
		close(jobs)
		wg.Wait()
		all = append(all, lat...)
		service = append(service, svc...)
	}
	b.StopTimer()
	slices.Sort(all)
	slices.Sort(service)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(service[len(service)/2].Microseconds())/1000, "service-p50-ms")
	b.ReportMetric(float64(service[len(service)*99/100].Microseconds())/1000, "service-p99-ms")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(errs.Load()), "errors")
}

// store1M writes 1,000,000 synthetic events (ml-1m shape) to a new store.
func store1M(b *testing.B) (string, *event.Table) { return storeN(b, 1_000_000) }

// storeN writes n synthetic events (ml-1m's users and items) to a new store.
func storeN(b *testing.B, n int) (string, *event.Table) {
	dir := filepath.Join(b.TempDir(), "data")
	st, err := store.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	tb, _ := event.Preset(event.PresetEcommerce)
	p := pipeline.New(pipeline.DefaultConfig(tb))
	inputs := dataset.Synthetic(dataset.SynthConfig{Users: 6040, Items: 3706, Events: n, Seed: 5})
	recs := make([]event.Record, 0, 10000)
	for i := range inputs {
		ev, err := p.Process(&inputs[i], time.Now())
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
		if len(recs) == cap(recs) {
			if _, err := st.Append(recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if _, err := st.Append(recs); err != nil {
		b.Fatal(err)
	}
	st.Close()
	return dir, tb
}

// open1M opens the store and rebuilds the models the way a start does.
func open1M(b *testing.B, dir string, tb *event.Table) (*store.Store, *ingest.Writer) {
	return openN(b, dir, tb, 1_000_000)
}

func openN(b *testing.B, dir string, tb *event.Table, n uint64) (*store.Store, *ingest.Writer) {
	st, err := store.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	newEngine := func() *recommend.Engine { return recommend.New(recommend.Config{Table: tb}) }
	w, err := ingest.New(context.Background(), st, newEngine, pipeline.NewDedup(pipeline.DefaultDedupConfig()), log, ingest.Config{DedupIDs: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	if got := st.LastSeq(); got != n {
		b.Fatalf("the log holds %d records, want %d", got, n)
	}
	return st, w
}

// BenchmarkRebuild1MFromLog measures a start with no snapshot: every model
// rebuilt by replaying a log of 1,000,000 events.
func BenchmarkRebuild1MFromLog(b *testing.B) {
	dir, tb := store1M(b)
	for b.Loop() {
		os.RemoveAll(filepath.Join(dir, "snapshots"))
		st, w := open1M(b, dir, tb)
		b.StopTimer()
		w.Close() // writes a snapshot: not part of the measure
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rebuild")
}

// BenchmarkRestartFromSnapshot measures a start from a snapshot of 1M and
// of 10M events (the de-duplication window comes with the snapshot: the
// start reads no record of the log), and reports the time to write that
// snapshot and its size. Run one size at a time on this machine:
// -bench 'RestartFromSnapshot/10M'.
func BenchmarkRestartFromSnapshot(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			dir, tb := storeN(b, n)
			st, w := openN(b, dir, tb, uint64(n))
			start := time.Now()
			w.Close() // writes the snapshot
			write := time.Since(start)
			st.Close()
			fi, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
			var size int64
			for _, f := range fi {
				if info, err := f.Info(); err == nil {
					size += info.Size()
				}
			}
			for b.Loop() {
				st, w := openN(b, dir, tb, uint64(n))
				b.StopTimer()
				w.Close() // nothing new: no snapshot written
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/restart")
			b.ReportMetric(write.Seconds(), "s/snapshot-write")
			b.ReportMetric(float64(size)/1e6, "MB/snapshot")
		})
	}
}
