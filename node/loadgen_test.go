package node

import (
	"context"
	"testing"
	"time"

	"github.com/streamrec/streamrec/bench"
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
	if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
		t.Fatalf("percentiles out of order: %+v", res)
	}
	if res.Rate < 300 || res.Rate > 450 {
		t.Fatalf("achieved %.0f req/s, asked for 400", res.Rate)
	}
	if res.ServiceP50 > res.P50+0.001 {
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
