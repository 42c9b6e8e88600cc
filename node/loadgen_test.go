package node

import (
	"context"
	"testing"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/dataset"
)

// TestBenchServeAgainstServer runs the open-loop load generator against a
// real server for a second.
func TestBenchServeAgainstServer(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seed(t, n, 0)
	res, err := bench.Serve(context.Background(), bench.ServeConfig{
		URL: n.URL, Rate: 400, Duration: time.Second, Conns: 4, N: 5,
		Users: []string{"u1", "u2", "nobody"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 400 || res.Errors != 0 {
		t.Fatalf("requests %d errors %d", res.Requests, res.Errors)
	}
	if l := res.Latency; !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) || l.Count != 400 {
		t.Fatalf("percentiles out of order: %+v", res)
	}
	if res.Rate < 300 || res.Rate > 450 {
		t.Fatalf("achieved %.0f req/s, asked for 400", res.Rate)
	}
	if res.Service.P50 > res.Latency.P50+0.001 {
		t.Fatalf("service time above latency from due time: %+v", res)
	}

	// A server that went away: every request is an error, none is lost.
	n.stop()
	res, err = bench.Serve(context.Background(), bench.ServeConfig{URL: n.URL, Rate: 100, Duration: time.Second, Conns: 2, N: 5, Users: []string{"u1"}})
	if err == nil {
		t.Fatalf("no server, yet no error: %+v", res)
	}
	if _, err := bench.Serve(context.Background(), bench.ServeConfig{URL: "ftp://x", Rate: 1, Duration: time.Second, Conns: 1, N: 1, Users: []string{"u"}}); err == nil {
		t.Fatal("a non-http URL must be refused")
	}
}

func TestBenchIngestAgainstServer(t *testing.T) {
	n := startNode(t, keyedConfig(t))
	src := dataset.Synthetic(dataset.SynthConfig{Users: 50, Items: 40, Events: 300, Seed: 9})
	res, err := bench.Ingest(context.Background(), bench.IngestConfig{
		URL: n.URL, Events: src, BatchSize: 50, Concurrency: 2, Duration: 300 * time.Millisecond, Key: ingestKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Batches == 0 || res.Accepted+res.Duplicates != res.Batches*50 {
		t.Fatalf("%+v", res)
	}
	// What the generator counted as accepted is what the log holds.
	if got := n.Store.LastSeq(); got != uint64(res.Accepted) {
		t.Fatalf("log holds %d records, bench counted %d accepted", got, res.Accepted)
	}
	// Without the key every batch fails, and the run says so.
	if _, err := bench.Ingest(context.Background(), bench.IngestConfig{URL: n.URL, Events: src, BatchSize: 50, Concurrency: 1, Duration: 100 * time.Millisecond}); err == nil {
		t.Fatal("unauthorised ingest reported success")
	}
}

// TestBenchFreshnessAgainstServer: our server reflects every event in the
// very next request.
func TestBenchFreshnessAgainstServer(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seed(t, n, 0)
	res, err := bench.Freshness(context.Background(), bench.FreshnessConfig{
		URL: n.URL, Items: []string{"i0", "i1", "i2", "i5", "i7"}, Samples: 20, Type: "view", N: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != 20 || res.Reflected != 20 || res.FirstRequest != 20 || res.Latency.Count != 20 {
		t.Fatalf("%+v", res)
	}
}
