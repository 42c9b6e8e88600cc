package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
)

const benchUsage = `Usage: streamrec bench MODE [flags]

Measures a running server (ours or any URL speaking the same API).

Modes:
  serve      GET recommendations open-loop at --rate; latency from each request's due time
  ingest     POST batches of --batch events from --concurrency clients; durable events/s
  freshness  for new users: time from sending an event to the first recommendation that reflects it
  mixed      ingest and serve at once: read latency under write load

Events, users and items come from --data-from (anything streamrec import reads),
or from a Zipf generator (--zipf-users, --zipf-items).

Flags:
`

type benchFlags struct {
	cfgURL, key, dataFrom, jsonOut, evType string
	rate, conns, n, batch, concurrency     int
	samples, zipfUsers, zipfItems          int
	duration                               time.Duration
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f benchFlags
	fs.StringVar(&f.cfgURL, "url", "http://127.0.0.1:8080", "server to measure")
	fs.StringVar(&f.key, "key", "", "API key (env STREAMREC_BENCH_KEY)")
	fs.StringVar(&f.dataFrom, "data-from", "", "data set to draw users, items and events from")
	fs.IntVar(&f.zipfUsers, "zipf-users", 6040, "without --data-from: users of the Zipf generator")
	fs.IntVar(&f.zipfItems, "zipf-items", 3706, "without --data-from: items of the Zipf generator")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long to run (serve, ingest, mixed)")
	fs.IntVar(&f.rate, "rate", 5000, "serve: requests per second (open loop)")
	fs.IntVar(&f.conns, "conns", 32, "serve: keep-alive connections")
	fs.IntVar(&f.n, "n", 10, "items per recommendation request")
	fs.IntVar(&f.batch, "batch", 500, "ingest: events per request")
	fs.IntVar(&f.concurrency, "concurrency", 4, "ingest: concurrent clients")
	fs.IntVar(&f.samples, "samples", 200, "freshness: users sampled")
	fs.StringVar(&f.evType, "type", "view", "freshness: event type sent")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to this file")
	var quiet bool
	fs.BoolVar(&quiet, "quiet", false, "no progress output")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return parseFlags(fs, args[:1], stdout)
	}
	if len(args) == 0 || len(args[0]) > 0 && args[0][0] == '-' {
		fs.Usage()
		return errors.New("bench: give a MODE first (serve, ingest, freshness, mixed)")
	}
	mode := args[0]
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	progress := progressOut(stderr, quiet)
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if f.key == "" {
		f.key = os.Getenv("STREAMREC_BENCH_KEY")
	}
	switch mode {
	case "serve", "ingest", "freshness", "mixed":
	default:
		fs.Usage()
		return fmt.Errorf("bench: unknown mode %q (serve, ingest, freshness, mixed)", mode)
	}
	events, err := benchEvents(f)
	if err != nil {
		return err
	}
	out := map[string]any{"mode": mode, "url": f.cfgURL}
	var mu sync.Mutex
	runServe := func(show bool) error {
		cfg := bench.ServeConfig{URL: f.cfgURL, Rate: f.rate, Duration: f.duration, Conns: f.conns, N: f.n, Key: f.key, Users: users(events)}
		w := io.Discard
		if show {
			w = progress
		}
		b := newBar(w, int64(float64(f.rate)*f.duration.Seconds()), "serve", false)
		defer b.Stop()
		cfg.Progress = func(done int) { b.Set(done) }
		res, err := bench.Serve(ctx, cfg)
		if err != nil {
			return err
		}
		b.Finish()
		mu.Lock()
		defer mu.Unlock()
		out["serve"] = res
		fmt.Fprint(stdout, res.Table())
		return nil
	}
	runIngest := func(show bool) error {
		cfg := bench.IngestConfig{URL: f.cfgURL, Events: events, BatchSize: f.batch, Concurrency: f.concurrency, Duration: f.duration, Key: f.key}
		w := io.Discard
		if show {
			w = progress
		}
		// Progress in tenths of a second of the run: the number of events
		// it will reach is not known in advance.
		start := time.Now()
		b := newBar(w, int64(f.duration/(100*time.Millisecond)), "ingest", false)
		defer b.Stop()
		cfg.Progress = func(int) {
			b.Set64(min(int64(time.Since(start)/(100*time.Millisecond)), b.GetMax64()))
		}
		res, err := bench.Ingest(ctx, cfg)
		if err != nil {
			return err
		}
		b.Finish()
		mu.Lock()
		defer mu.Unlock()
		out["ingest"] = res
		fmt.Fprint(stdout, res.Table())
		return nil
	}
	switch mode {
	case "serve":
		err = runServe(true)
	case "ingest":
		err = runIngest(true)
	case "freshness":
		var res bench.FreshnessResult
		res, err = bench.Freshness(ctx, bench.FreshnessConfig{URL: f.cfgURL, Items: popular(events, 100), Samples: f.samples, Type: f.evType, N: f.n, Key: f.key})
		if err == nil {
			out["freshness"] = res
			fmt.Fprint(stdout, res.Table())
		}
	case "mixed":
		errc := make(chan error, 1)
		go func() { errc <- runIngest(false) }()
		err = runServe(true)
		if ierr := <-errc; err == nil {
			err = ierr
		}
	}
	if err != nil {
		return err
	}
	if f.jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(f.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// benchEvents loads the source: a data set, or the Zipf generator.
func benchEvents(f benchFlags) ([]event.Input, error) {
	if f.dataFrom != "" {
		d, err := dataset.Load(f.dataFrom, nil)
		if err != nil {
			return nil, err
		}
		if len(d.Events) == 0 {
			return nil, fmt.Errorf("bench: %s holds no events", f.dataFrom)
		}
		return d.Events, nil
	}
	if f.zipfUsers <= 1 || f.zipfItems <= 1 {
		return nil, fmt.Errorf("bench: --zipf-users and --zipf-items must be above 1")
	}
	return dataset.Synthetic(dataset.SynthConfig{Users: f.zipfUsers, Items: f.zipfItems, Events: 200_000, Seed: uint64(time.Now().UnixNano())}), nil
}

// users lists the distinct users of the events, in order of appearance.
func users(events []event.Input) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range events {
		if !seen[e.UserID] {
			seen[e.UserID] = true
			out = append(out, e.UserID)
		}
	}
	return out
}

// popular lists the k most frequent items of the events.
func popular(events []event.Input, k int) []string {
	count := map[string]int{}
	for _, e := range events {
		count[e.ItemID]++
	}
	items := make([]string, 0, len(count))
	for it := range count {
		items = append(items, it)
	}
	sort.Slice(items, func(a, b int) bool {
		if count[items[a]] != count[items[b]] {
			return count[items[a]] > count[items[b]]
		}
		return items[a] < items[b]
	})
	return items[:min(k, len(items))]
}
