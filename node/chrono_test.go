package node

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
)

// TestChronoHTTP is the chrono protocol through the live API with the
// default configuration: load the first 80% of ml-100k's events by time,
// let the server train on its own (mf and the ranker start once the bulk
// load has gone quiet), then ask every test user — one with history in
// the training part and items new to them in the rest — for 10 items.
// The answer must reach 0.23, above trending alone (NDCG@10 0.2172 in
// process, the best single source there), EASE (0.181) and the fixed
// blend (0.159); with the ranker's trees it measured 0.2630, the weights
// alone 0.2213.
func TestChronoHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 80,000 events over HTTP and waits for the background trainings")
	}
	shared.SkipUnderRace(t)
	d, err := dataset.Load(shared.Dataset(t, "ml-100k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, defaultConfig(t))
	if len(d.Items) > 0 {
		if code := call(t, "PUT", n.URL+"/v1/items", d.Items, nil); code != http.StatusOK {
			t.Fatalf("PUT /v1/items: %d", code)
		}
	}
	cut := len(d.Events) * 8 / 10
	start := time.Now()
	for i := 0; i < cut; i += 500 {
		if code := call(t, "POST", n.URL+"/v1/events", d.Events[i:min(i+500, cut)], nil); code != http.StatusOK {
			t.Fatalf("POST batch %d: %d", i, code)
		}
	}
	loaded := time.Since(start)
	logged := n.Store.LastSeq() // the catalogue and the events
	trained := map[string]map[string]bool{}
	for _, e := range d.Events[:cut] {
		if trained[e.UserID] == nil {
			trained[e.UserID] = map[string]bool{}
		}
		trained[e.UserID][e.ItemID] = true
	}
	relevant := map[string]map[string]bool{}
	var order []string
	for _, e := range d.Events[cut:] {
		if trained[e.UserID] == nil || trained[e.UserID][e.ItemID] {
			continue
		}
		if relevant[e.UserID] == nil {
			relevant[e.UserID] = map[string]bool{}
			order = append(order, e.UserID)
		}
		relevant[e.UserID][e.ItemID] = true
	}
	// The server trains by itself (a first ranker may come from the first
	// 10,000 records while the load runs): wait until a ranker was trained
	// on the whole load (installed, or rejected by the gate: the one before
	// serves) and mf has a model.
	deadline := time.Now().Add(3 * time.Minute)
	for !(mfStats(t, n).Trained && rankerMetric(t, n, "streamrec_ranker_candidate_records") >= logged) {
		if time.Now().After(deadline) {
			t.Fatalf("no background training within 3 minutes of the load: %s", rankerLines(scrape(t, n)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	waited := time.Since(start) - loaded
	var sum float64
	for _, u := range order {
		var rec recReply
		if code := call(t, "GET", fmt.Sprintf("%s/v1/users/%s/recommendations?n=10", n.URL, url.PathEscape(u)), nil, &rec); code != http.StatusOK {
			t.Fatalf("GET recommendations: %d", code)
		}
		var dcg, ideal float64
		for i, it := range rec.Items {
			if relevant[u][it.Item] {
				dcg += 1 / math.Log2(float64(i+2))
			}
		}
		for i := range min(len(relevant[u]), 10) {
			ideal += 1 / math.Log2(float64(i+2))
		}
		sum += dcg / ideal
	}
	ndcg := sum / float64(len(order))
	t.Logf("ml-100k chrono over HTTP: %d test users, NDCG@10 %.4f; loaded in %.1fs, trained %.1fs after; ranker: %s",
		len(order), ndcg, loaded.Seconds(), waited.Seconds(), rankerLines(scrape(t, n)))
	if ndcg < 0.23 {
		t.Errorf("NDCG@10 %.4f below 0.23 (trending alone: 0.2172)", ndcg)
	}
}

// rankerMetric is the value of an unlabelled ranker metric (0 if absent).
func rankerMetric(t *testing.T, n *testNode, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(scrape(t, n), "\n") {
		var v float64
		if _, err := fmt.Sscanf(l, name+" %g", &v); err == nil {
			return uint64(v)
		}
	}
	return 0
}
