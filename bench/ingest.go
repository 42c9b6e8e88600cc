package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/streamrec/streamrec/event"
)

// IngestConfig configures an ingest run.
type IngestConfig struct {
	URL         string
	Events      []event.Input // the source, sent in order and cycled
	BatchSize   int
	Concurrency int
	Rate        int // events per second across the clients (0: as fast as they go)
	Duration    time.Duration
	Key         string
	Progress    func(events int)
}

// IngestResult is what an ingest run measured.
type IngestResult struct {
	Batches    int     `json:"batches"`
	Errors     int     `json:"errors"`
	Accepted   int     `json:"accepted"`
	Duplicates int     `json:"duplicates"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"accepted_events_per_second"`
	Latency    Summary `json:"batch_latency"`
}

// Table formats a result for people.
func (r IngestResult) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ingest: %d batches (%d errors), %d events accepted, %d duplicates, %.0f events/s over %.1fs\n",
		r.Batches, r.Errors, r.Accepted, r.Duplicates, r.EventsPerS, r.Seconds)
	writeHeader(&b)
	writeRow(&b, "batch acknowledged (durable)", r.Latency)
	return b.String()
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

func request(ctx context.Context, method, url, key string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req, nil
}

// Ingest posts batches closed-loop from Concurrency clients for Duration,
// at most Rate events a second in all when Rate is set.
// Each event gets a fresh event_id and a timestamp in the last hour, so a
// cycled source is not taken for duplicates.
func Ingest(ctx context.Context, cfg IngestConfig) (IngestResult, error) {
	if len(cfg.Events) == 0 || cfg.BatchSize <= 0 || cfg.Concurrency <= 0 || cfg.Duration <= 0 || cfg.Rate < 0 {
		return IngestResult{}, errors.New("bench: ingest needs events, a positive batch size, concurrency and duration, and a rate not negative")
	}
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.BatchSize, cfg.Rate/100))
	}
	client := newClient(cfg.Concurrency)
	lat := NewLatency()
	var next, batches, errs, accepted, dups, events atomic.Int64
	base := time.Now().Add(-time.Hour)
	run := fmt.Sprint(time.Now().UnixNano())
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]event.Input, cfg.BatchSize)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if lim != nil && lim.WaitN(ctx, cfg.BatchSize) != nil {
					return
				}
				first := next.Add(int64(cfg.BatchSize)) - int64(cfg.BatchSize)
				for k := range batch {
					i := first + int64(k)
					e := cfg.Events[i%int64(len(cfg.Events))]
					e.EventID = run + "-" + fmt.Sprint(i)
					e.Timestamp = &event.Timestamp{Time: base.Add(time.Duration(i%3_000_000) * time.Millisecond)}
					batch[k] = e
				}
				body, _ := json.Marshal(batch)
				req, err := request(ctx, "POST", cfg.URL+"/v1/events", cfg.Key, body)
				if err != nil {
					errs.Add(1)
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				batches.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				var r struct{ Accepted, Duplicates int }
				err = json.NewDecoder(resp.Body).Decode(&r)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs.Add(1)
					continue
				}
				lat.Record(time.Since(t0))
				accepted.Add(int64(r.Accepted))
				dups.Add(int64(r.Duplicates))
				if n := events.Add(int64(cfg.BatchSize)); cfg.Progress != nil {
					cfg.Progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	res := IngestResult{Batches: int(batches.Load()), Errors: int(errs.Load()), Accepted: int(accepted.Load()),
		Duplicates: int(dups.Load()), Seconds: secs, EventsPerS: float64(accepted.Load()) / secs, Latency: lat.Summary()}
	if res.Batches == res.Errors {
		return res, errors.New("bench: no batch was accepted")
	}
	return res, nil
}
