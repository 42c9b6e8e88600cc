package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

// TestIngestRate: with Rate set, the clients together send no more than
// the limiter lets through (the rate over the run, plus its burst).
func TestIngestRate(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []event.Input
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got.Add(int64(len(batch)))
		_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(batch)})
	}))
	defer srv.Close()
	evs := []event.Input{{UserID: "u", ItemID: "i", Type: "view"}}
	const rate, batch = 2000, 50
	start := time.Now()
	res, err := Ingest(context.Background(), IngestConfig{URL: srv.URL, Events: evs, BatchSize: batch, Concurrency: 3, Rate: rate, Duration: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start).Seconds()
	// Unpaced, three clients against this server send far more.
	if limit := int64(rate*took) + batch; got.Load() > limit || res.Accepted != int(got.Load()) || res.Accepted == 0 {
		t.Fatalf("%d events sent (%d accepted) in %.2fs at %d/s: want some, and at most %d", got.Load(), res.Accepted, took, rate, limit)
	}
	if _, err := Ingest(context.Background(), IngestConfig{URL: srv.URL, Events: evs, BatchSize: batch, Concurrency: 1, Rate: -1, Duration: time.Second}); err == nil {
		t.Error("a negative rate was taken")
	}
}
