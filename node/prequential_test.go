package node

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
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
// The engine's default configuration must reach HitRate@10 0.2097, above the
// reference online item-kNN (0.1735).
func TestPrequentialHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 100,000 events over HTTP")
	}
	shared.SkipUnderRace(t) // 160,000 requests: minutes under the detector
	prequentialHTTP(t, defaultConfig(t), "ml-100k", 10, "", 0.2097, 0)
}

// TestPrequentialHTTPSessions is the same replay on e-commerce sessions
// (yoochoose-clicks-100k: the session is the user), at K=20. The default
// answer must reach HitRate@20 0.40 and MRR@20 0.165, above the reference
// online item-kNN over each session's last 20 items (0.375 / 0.157).
func TestPrequentialHTTPSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 82,000 events over HTTP")
	}
	shared.SkipUnderRace(t)
	prequentialHTTP(t, defaultConfig(t), "yoochoose-clicks-100k", 20, "", 0.40, 0.165)
}

// prequentialHTTP replays the data set over HTTP, scoring HitRate@k and
// MRR@k, which must reach hrFloor and mrrFloor.
func prequentialHTTP(t *testing.T, cfg config.Config, set string, k int, what string, hrFloor, mrrFloor float64) {
	d, err := dataset.Load(shared.Dataset(t, set), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	if len(d.Items) > 0 {
		if code := call(t, "PUT", n.URL+"/v1/items", d.Items, nil); code != http.StatusOK {
			t.Fatalf("PUT /v1/items: %d", code)
		}
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
			if code := call(t, "GET", fmt.Sprintf("%s/v1/users/%s/recommendations?n=%d", n.URL, url.PathEscape(e.UserID), k), nil, &rec); code != http.StatusOK {
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
		var reply struct{ Accepted, Duplicates int }
		if code := call(t, "POST", n.URL+"/v1/events", []event.Input{e}, &reply); code != http.StatusOK || reply.Accepted+reply.Duplicates != 1 {
			t.Fatalf("POST event: %d, accepted %d, duplicates %d", code, reply.Accepted, reply.Duplicates)
		}
	}
	hr := float64(hits) / float64(scored)
	mrr := rr / float64(scored)
	msg := fmt.Sprintf("%s prequential over HTTP%s: scored %d, HitRate@%d %.4f, MRR@%d %.4f, %.1fs for the scored part; mf %+v; ranker: %s",
		set, what, scored, k, hr, k, mrr, time.Since(start).Seconds(), mfStats(t, n),
		rankerLines(scrape(t, n)))
	t.Log(msg)
	if out := os.Getenv("STREAMREC_EVAL_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(msg+"\n"), 0o644)
	}
	if hr < hrFloor || mrr < mrrFloor {
		t.Errorf("HitRate@%d %.4f, MRR@%d %.4f: below the floor %.4f / %.4f", k, hr, k, mrr, hrFloor, mrrFloor)
	}
}

// rankerLines are the ranker's metric samples of a scrape, on one line.
func rankerLines(scrape string) string {
	var out []string
	for _, l := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(l, "streamrec_ranker_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
