package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/experiment"
)

// expReply is a recommendation answer with its experiment parts.
type expReply struct {
	UserID           string            `json:"user_id"`
	RecommendationID string            `json:"recommendation_id"`
	Experiments      map[string]string `json:"experiments"`
	Items            []struct {
		Item   string `json:"item_id"`
		Source string `json:"source"`
	} `json:"items"`
}

// quietConfig is the default configuration without background training,
// so that answers depend on the log alone.
func quietConfig(t testing.TB) config.Config {
	cfg := defaultConfig(t)
	cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery, cfg.MF.Quiet = 0, 0, 0
	cfg.Ranker.Enabled = false
	return cfg
}

const trendingOnly = `{"name":"trend","planned_users":1000,"variants":[
	{"name":"control","share":0.5},
	{"name":"trending","share":0.5,"config":{"blend":{"trending":1}}}]}`

// userOf finds a user the experiment puts in variant.
func userOf(t *testing.T, n *testNode, exp, variant string) string {
	t.Helper()
	for i := range 2000 {
		u := fmt.Sprintf("u%d", i)
		var r struct {
			Experiments []map[string]string `json:"experiments"`
		}
		call(t, "GET", n.URL+"/v1/users/"+u+"/experiments", nil, &r)
		for _, a := range r.Experiments {
			if a["experiment"] == exp && a["variant"] == variant {
				return u
			}
		}
	}
	t.Fatalf("no user in %s/%s", exp, variant)
	return ""
}

func TestExperimentsEndToEnd(t *testing.T) {
	cfg := quietConfig(t)
	n := startNode(t, cfg)
	seed(t, n, 0)
	if code := call(t, "POST", n.URL+"/v1/experiments", trendingOnly, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/experiments: %d", code)
	}
	var list struct {
		Experiments []experiment.Definition `json:"experiments"`
	}
	call(t, "GET", n.URL+"/v1/experiments", nil, &list)
	if len(list.Experiments) != 1 || list.Experiments[0].Salt != "trend" || list.Experiments[0].State != experiment.Running {
		t.Fatalf("GET /v1/experiments: %+v", list)
	}

	// Every answer names the variant and carries a recommendation id; the
	// trending variant answers from trending alone.
	ctl, trt := userOf(t, n, "trend", "control"), userOf(t, n, "trend", "trending")
	var a, b expReply
	call(t, "GET", n.URL+"/v1/users/"+ctl+"/recommendations?n=5", nil, &a)
	call(t, "GET", n.URL+"/v1/users/"+trt+"/recommendations?n=5", nil, &b)
	if a.Experiments["trend"] != "control" || b.Experiments["trend"] != "trending" || a.RecommendationID == "" || a.RecommendationID == b.RecommendationID {
		t.Fatalf("answers do not name their variants and ids: %+v / %+v", a, b)
	}
	for _, it := range b.Items {
		if it.Source != "trending" {
			t.Fatalf("the trending variant answered %q from %s", it.Item, it.Source)
		}
	}
	var rk expReply
	call(t, "POST", n.URL+"/v1/users/"+trt+"/rank", `{"items":["i1","i2","i5"]}`, &rk)
	if rk.Experiments["trend"] != "trending" || rk.RecommendationID == "" {
		t.Fatalf("a rank answer does not name its variant: %+v", rk)
	}

	// Impressions, then an attributed click and purchase.
	if len(a.Items) == 0 {
		t.Fatal("the control user got nothing to show")
	}
	shown := a.Items[0].Item
	imp := fmt.Sprintf(`{"recommendation_id":%q,"user_id":%q,"items":[%q]}`, a.RecommendationID, ctl, shown)
	if code := call(t, "POST", n.URL+"/v1/impressions", imp, nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/impressions: %d", code)
	}
	post(t, n, fmt.Sprintf(`[{"user_id":%q,"item_id":%q,"type":"click","context":{"recommendation_id":%q}},
		{"user_id":%q,"item_id":%q,"type":"purchase","value":30}]`, ctl, shown, a.RecommendationID, ctl, shown))
	// Another shown item, clicked 40 minutes after it was shown without
	// naming the answer: past the click window (30 min), not attributed.
	if len(a.Items) < 2 {
		t.Fatal("the control user got one item; the test needs two")
	}
	other := a.Items[1].Item
	imp2 := fmt.Sprintf(`{"recommendation_id":%q,"user_id":%q,"items":[%q]}`, a.RecommendationID, ctl, other)
	if code := call(t, "POST", n.URL+"/v1/impressions", imp2, nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/impressions: %d", code)
	}
	late := time.Now().Add(40 * time.Minute).UTC().Format(time.RFC3339)
	post(t, n, fmt.Sprintf(`[{"user_id":%q,"item_id":%q,"type":"click","timestamp":%q}]`, ctl, other, late))
	// shown=true records the answer itself.
	var c expReply
	call(t, "GET", n.URL+"/v1/users/"+trt+"/recommendations?n=3&shown=true", nil, &c)
	res := results(t, n, "trend")
	v := res.Variants
	if v[0].Users != 1 || v[0].Impressions != 2 || v[0].Clicks != 1 || v[0].Conversions != 1 || v[0].Value != 30 {
		t.Fatalf("control figures %+v, want 1 user, 2 impressions, 1 click (the late one is not), 1 conversion worth 30", v[0])
	}
	if v[1].Users != 1 || v[1].Impressions != int64(len(c.Items)) {
		t.Fatalf("trending figures %+v, want the %d items shown=true recorded", v[1], len(c.Items))
	}
	if len(res.Comparisons) != 3 || res.Methods["sequential"] == "" {
		t.Fatalf("results carry %d comparisons: %+v", len(res.Comparisons), res)
	}

	// Results come from the log: the same after a restart from the
	// snapshot, and after one that replays the whole log.
	before := res.Variants
	n.stop()
	n = startNode(t, withData(cfg, n.cfg.Data))
	if after := results(t, n, "trend").Variants; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("results changed across a restart:\n%+v\n%+v", before, after)
	}
	n.stop()
	if err := os.RemoveAll(filepath.Join(n.cfg.Data, "snapshots")); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, withData(cfg, n.cfg.Data))
	if after := results(t, n, "trend").Variants; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("results changed when replayed from the log:\n%+v\n%+v", before, after)
	}
	if got := userOf(t, n, "trend", "trending"); got != trt {
		t.Fatalf("assignment changed across a restart: %s, was %s", got, trt)
	}

	// Changing traffic keeps users; changing shares would move them.
	if code := call(t, "PATCH", n.URL+"/v1/experiments/trend", `{"shares":{"control":0.4,"trending":0.6}}`, nil); code != http.StatusConflict {
		t.Fatalf("a share change that moves users: %d, want 409", code)
	}
	if code := call(t, "PATCH", n.URL+"/v1/experiments/trend", `{"traffic":0.5}`, nil); code != http.StatusOK {
		t.Fatalf("PATCH traffic: %d", code)
	}
	if code := call(t, "PATCH", n.URL+"/v1/experiments/trend", `{"state":"stopped"}`, nil); code != http.StatusOK {
		t.Fatalf("PATCH stop: %d", code)
	}
	var none expReply
	call(t, "GET", n.URL+"/v1/users/"+trt+"/recommendations?n=3", nil, &none)
	if len(none.Experiments) != 0 {
		t.Fatalf("a stopped experiment still assigns: %+v", none)
	}
}

func withData(cfg config.Config, dir string) config.Config {
	cfg.Data = dir
	return cfg
}

func results(t *testing.T, n *testNode, name string) experiment.Results {
	t.Helper()
	var res experiment.Results // null numbers (no estimate yet) decode as 0
	if code := call(t, "GET", n.URL+"/v1/experiments/"+name+"/results", nil, &res); code != http.StatusOK {
		t.Fatalf("GET results: %d", code)
	}
	return res
}

// TestExperimentBadInput: every bad request is a 4xx JSON error naming the
// problem, and nothing is written to the log.
func TestExperimentBadInput(t *testing.T) {
	n := startNode(t, quietConfig(t))
	seed(t, n, 0)
	call(t, "POST", n.URL+"/v1/experiments", trendingOnly, nil)
	var a expReply
	call(t, "GET", n.URL+"/v1/users/u1/recommendations", nil, &a)
	valid := fmt.Sprintf(`{"recommendation_id":%q,"user_id":"u1","items":["i1"]}`, a.RecommendationID)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"unknown experiment", "GET", "/v1/experiments/nope", "", 404, "unknown_experiment", `"nope"`},
		{"unknown experiment results", "GET", "/v1/experiments/nope/results", "", 404, "unknown_experiment", `"nope"`},
		{"patch unknown", "PATCH", "/v1/experiments/nope", `{"state":"stopped"}`, 404, "unknown_experiment", `"nope"`},
		{"shares not summing to 1", "POST", "/v1/experiments", `{"name":"x","variants":[{"name":"a","share":0.5},{"name":"b","share":0.6}]}`, 400, "invalid_experiment", "sum to 1"},
		{"name taken", "POST", "/v1/experiments", trendingOnly, 409, "experiment_exists", `"trend"`},
		{"unknown source", "POST", "/v1/experiments", `{"name":"y","variants":[{"name":"a","share":0.5},{"name":"b","share":0.5,"config":{"blend":{"nope":1}}}]}`, 400, "invalid_experiment", `"nope"`},
		{"unknown field", "POST", "/v1/experiments", `{"name":"z","colour":1,"variants":[]}`, 400, "invalid_json", "colour"},
		{"patch bad state", "PATCH", "/v1/experiments/trend", `{"state":"paused"}`, 400, "invalid_experiment", "state"},
		{"patch unknown variant", "PATCH", "/v1/experiments/trend", `{"shares":{"x":1}}`, 400, "invalid_experiment", `"x"`},
		{"unknown recommendation", "POST", "/v1/impressions", `{"recommendation_id":"AAAAAAAAAAAAAAAAAAAAAAAAAAA","user_id":"u1","items":["i1"]}`, 422, "unknown_recommendation", "not issued"},
		{"recommendation of another user", "POST", "/v1/impressions", strings.Replace(valid, `"u1"`, `"u2"`, 1), 422, "unknown_recommendation", `"u2"`},
		{"impression without items", "POST", "/v1/impressions", strings.Replace(valid, `["i1"]`, `[]`, 1), 400, "invalid_impression", "items"},
		{"impression without id", "POST", "/v1/impressions", `{"user_id":"u1","items":["i1"]}`, 400, "invalid_impression", "recommendation_id"},
		{"empty impression array", "POST", "/v1/impressions", `[]`, 400, "invalid_impressions", "no impression"},
		{"shown not a bool", "GET", "/v1/users/u1/recommendations?shown=yes", "", 400, "invalid_parameter", "shown"},
		{"malformed user", "GET", "/v1/users/%20/experiments", "", 400, "invalid_id", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := n.Store.LastSeq()
			var body any
			if c.body != "" {
				body = c.body
			}
			var e errorReply
			if code := call(t, c.method, n.URL+c.path, body, &e); code != c.status {
				t.Fatalf("%s %s: %d, want %d (%+v)", c.method, c.path, code, c.status, e)
			}
			if e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.says) {
				t.Fatalf("error %q %q, want code %q naming %q", e.Error.Code, e.Error.Message, c.code, c.says)
			}
			if after := n.Store.LastSeq(); after != before {
				t.Fatalf("a refused request wrote %d records to the log", after-before)
			}
		})
	}
}

// TestExperimentFromConfigFile: an experiment defined in the file is
// written to the log once, kept across restarts, and a change keeps users.
func TestExperimentFromConfigFile(t *testing.T) {
	cfg := quietConfig(t)
	var d experiment.Definition
	if err := json.Unmarshal([]byte(trendingOnly), &d); err != nil {
		t.Fatal(err)
	}
	cfg.Experiments.Define = []experiment.Definition{d}
	n := startNode(t, cfg)
	seq := n.Store.LastSeq()
	if seq != 1 {
		t.Fatalf("the log holds %d records after the first start, want the definition", seq)
	}
	u := userOf(t, n, "trend", "trending")
	n.stop()
	n = startNode(t, withData(cfg, n.cfg.Data))
	if n.Store.LastSeq() != seq {
		t.Fatal("an unchanged definition was written again at restart")
	}
	n.stop()
	half := 0.5
	cfg.Experiments.Define[0].Traffic = &half
	n = startNode(t, withData(cfg, n.cfg.Data))
	if n.Store.LastSeq() != seq+1 {
		t.Fatal("a changed definition was not written at restart")
	}
	var got experiment.Definition
	call(t, "GET", n.URL+"/v1/experiments/trend", nil, &got)
	if *got.Traffic != 0.5 {
		t.Fatalf("definition after the change: %+v", got)
	}
	var r struct {
		Experiments []map[string]string `json:"experiments"`
	}
	call(t, "GET", n.URL+"/v1/users/"+u+"/experiments", nil, &r)
	for _, a := range r.Experiments {
		if a["variant"] != "trending" {
			t.Fatalf("a traffic change moved %s from trending to %s", u, a["variant"])
		}
	}

	// Stopped through the API: an unchanged file leaves it stopped.
	if code := call(t, "PATCH", n.URL+"/v1/experiments/trend", `{"state":"stopped"}`, nil); code != http.StatusOK {
		t.Fatalf("PATCH stop: %d", code)
	}
	n.stop()
	n = startNode(t, withData(cfg, n.cfg.Data))
	call(t, "GET", n.URL+"/v1/experiments/trend", nil, &got)
	if got.State != experiment.Stopped {
		t.Fatalf("a restart with the same file undid the API's stop: %+v", got)
	}
	n.stop()

	// A new salt in the file would move users: the start fails, naming it.
	cfg.Experiments.Define[0].Salt = "another"
	if err := startFails(t, withData(cfg, n.cfg.Data)); err == nil || !strings.Contains(err.Error(), "trend") || !strings.Contains(err.Error(), "salt") {
		t.Fatalf("a changed salt: %v, want the start refused naming the experiment and its salt", err)
	}
}

// startFails starts a node that must fail to become ready, and returns why.
func startFails(t *testing.T, cfg config.Config) error {
	t.Helper()
	n, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- n.Serve(ctx, l) }()
	select {
	case <-n.Ready():
		cancel()
		<-done
		return nil
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		return nil
	}
}
