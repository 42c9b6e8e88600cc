package node

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
)

type recReply struct {
	Items []struct {
		Item   string  `json:"item_id"`
		Score  float64 `json:"score"`
		Source string  `json:"source"`
	} `json:"items"`
}

// TestPrequentialHTTP replays ml-100k through the live HTTP path: the first
// 20% of events in batches, then for every later event a recommendation
// request first and the event after. Repeat consumptions are not scored.
// The engine's default configuration must beat the reference online item-kNN
// (HitRate@10 0.1735).
func TestPrequentialHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 100,000 events over HTTP")
	}
	shared.SkipUnderRace(t) // 160,000 requests: minutes under the detector
	prequentialHTTP(t, defaultConfig(t), "")
}

// TestPrequentialHTTPWithMF is the same replay with the server's background
// training every 20,000 records (the default schedule would train once, at
// the very end): matrix factorisation trained while requests and events
// flow, every event folded in by the next request. Trainings finish when
// they finish, so the figure varies a little from run to run.
func TestPrequentialHTTPWithMF(t *testing.T) {
	if testing.Short() || shared.Race {
		// Trainings under the race detector take minutes; .ci/run runs this
		// test again without it.
		t.Skip("replays 100,000 events over HTTP with background training: run without -race or -short")
	}
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery = 20_000, 0
	prequentialHTTP(t, cfg, " (mf retrained every 20,000 records)")
}

func prequentialHTTP(t *testing.T, cfg config.Config, what string) {
	d, err := dataset.Load(shared.Dataset(t, "ml-100k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	if code := call(t, "PUT", n.URL+"/v1/items", d.Items, nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/items: %d", code)
	}
	warm := len(d.Events) / 5
	for i := 0; i < warm; i += 500 {
		var reply struct{ Accepted int }
		if code := call(t, "POST", n.URL+"/v1/events", d.Events[i:min(i+500, warm)], &reply); code != http.StatusOK {
			t.Fatalf("POST batch %d: %d", i, code)
		}
	}
	seen := map[[2]string]bool{}
	for _, e := range d.Events[:warm] {
		seen[[2]string{e.UserID, e.ItemID}] = true
	}
	start := time.Now()
	var hits, scored int
	var rr float64
	for _, e := range d.Events[warm:] {
		key := [2]string{e.UserID, e.ItemID}
		if !seen[key] {
			var rec recReply
			if code := call(t, "GET", n.URL+"/v1/users/"+url.PathEscape(e.UserID)+"/recommendations?n=10", nil, &rec); code != http.StatusOK {
				t.Fatalf("GET recommendations: %d", code)
			}
			scored++
			for rank, it := range rec.Items {
				if it.Item == e.ItemID {
					hits++
					rr += 1 / float64(rank+1)
					break
				}
			}
		}
		seen[key] = true
		var reply struct{ Accepted int }
		if code := call(t, "POST", n.URL+"/v1/events", []event.Input{e}, &reply); code != http.StatusOK || reply.Accepted != 1 {
			t.Fatalf("POST event: %d, accepted %d", code, reply.Accepted)
		}
	}
	hr := float64(hits) / float64(scored)
	msg := fmt.Sprintf("ml-100k prequential over HTTP%s: scored %d, HitRate@10 %.4f, MRR@10 %.4f, %.1fs for the scored part; mf %+v",
		what, scored, hr, rr/float64(scored), time.Since(start).Seconds(), mfStats(t, n))
	t.Log(msg)
	if out := os.Getenv("STREAMREC_EVAL_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(msg+"\n"), 0o644)
	}
	if hr < 0.1735 {
		t.Errorf("HitRate@10 %.4f is below the reference online item-kNN's 0.1735", hr)
	}
}
