package node

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
)

// bulk posts users who, in a session, buy the item after the one they just
// bought (i(k) → i(k+1)), while a few items are bought by everyone much
// later: enough for the ranker to find examples in every bucket.
func bulk(t *testing.T, n *testNode, users, perUser int) {
	t.Helper()
	var evs []string
	for u := range users {
		base := 1_700_000_000 + u*600
		for k := range perUser {
			evs = append(evs, fmt.Sprintf(`{"user_id":"b%d","item_id":"i%d","type":"purchase","timestamp":%d}`, u, (u+k)%40, base+k*30))
		}
		// back two weeks later, for the popular items
		evs = append(evs, fmt.Sprintf(`{"user_id":"b%d","item_id":"hot%d","type":"purchase","timestamp":%d}`, u, u%3, base+14*86400))
		if len(evs) >= 400 {
			post(t, n, "["+strings.Join(evs, ",")+"]")
			evs = evs[:0]
		}
	}
	if len(evs) > 0 {
		post(t, n, "["+strings.Join(evs, ",")+"]")
	}
}

// TestRankerTrainsAfterABulkLoadAndSurvivesRestart: after a bulk load and a
// quiet moment the server trains its ranker by itself, reports it in the
// metrics and installs it only having saved it; a restart serves the same
// answers at once, from the saved ranker.
func TestRankerTrainsAfterABulkLoadAndSurvivesRestart(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery, cfg.MF.FirstTrainEvents = 0, 0, 0 // only the ranker trains
	cfg.Ranker.FirstTrainRecords = 1 << 40                                        // not by count: by the quiet moment
	cfg.Ranker.Quiet, cfg.Ranker.QuietRecords = config.Duration(time.Second), 1_000
	cfg.Ranker.TrainEvery = 0
	n := startNode(t, cfg)
	bulk(t, n, 400, 8)
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(scrape(t, n), "streamrec_ranker_trainings_total 1") {
		if time.Now().After(deadline) {
			t.Fatalf("no ranker trained within 90 s of a quiet bulk load:\n%s", grepLines(scrape(t, n), "streamrec_ranker"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	text := scrape(t, n)
	for _, want := range []string{"streamrec_ranker_age_seconds", `streamrec_ranker_validation_ndcg{ranker="candidate"}`, "streamrec_ranker_training_seconds", "streamrec_ranker_rejections_total"} {
		if !strings.Contains(text, want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepLines(text, "streamrec_ranker"))
		}
	}
	installed := strings.Contains(text, "streamrec_ranker_rejections_total 0")
	b, err := os.ReadFile(RankerFile(cfg.Data))
	if installed != (err == nil) {
		t.Fatalf("installed %v, but the ranker file: %v", installed, err)
	}
	if !installed {
		t.Fatalf("the ranker did not beat the configured blend on data made for it to:\n%s", grepLines(text, "streamrec_ranker"))
	}
	var saved savedRanker
	if err := json.Unmarshal(b, &saved); err != nil || saved.Ranker == nil || len(saved.Ranker.Weights) != len(saved.Ranker.Gaps)+1 {
		t.Fatalf("ranker file: %v %s", err, b)
	}
	if n.Engine.Ranker() == nil {
		t.Fatal("saved but not serving")
	}
	want := bulkState(t, n)
	n.stop()

	n = startNode(t, cfg)
	if n.Engine.Ranker() == nil {
		t.Fatal("the saved ranker is not serving after the restart")
	}
	if got := bulkState(t, n); got != want {
		t.Fatalf("answers changed across the restart:\nbefore:\n%s\nafter:\n%s", want, got)
	}
	// The trees are in the file and serve again, alike.
	if saved.Ranker.Forest == nil {
		t.Fatalf("the ranker kept no trees on data made for them (a user's next item follows from their last):\n%s", grepLines(text, "streamrec_ranker"))
	}
	before, _ := json.Marshal(saved.Ranker.Forest)
	after, _ := json.Marshal(n.Engine.Ranker().Forest)
	if string(before) != string(after) {
		t.Fatal("the restarted engine serves other trees than the saved ones")
	}
	if m := fmt.Sprintf("streamrec_ranker_trees %d", len(saved.Ranker.Forest.Trees)); !strings.Contains(scrape(t, n), m) {
		t.Fatalf("metrics lack %q:\n%s", m, grepLines(scrape(t, n), "streamrec_ranker"))
	}
}

// bulkState is what the bulk-loaded users are answered.
func bulkState(t *testing.T, n *testNode) string {
	t.Helper()
	var b strings.Builder
	for u := range 40 {
		var r recReply
		call(t, "GET", fmt.Sprintf("%s/v1/users/b%d/recommendations?n=8", n.URL, u*10), nil, &r)
		fmt.Fprintf(&b, "b%d %v\n", u*10, r.Items)
	}
	return b.String()
}
