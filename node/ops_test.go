package node

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestNotReadyAnswers503: before the models are loaded, /healthz is up,
// /readyz and the API answer 503 with the rebuild's progress.
func TestNotReadyAnswers503(t *testing.T) {
	n, err := Open(defaultConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/healthz", 200},
		{"/readyz", 503},
		{"/v1/users/u/recommendations", 503},
		{"/v1/trending", 503},
	} {
		rec := httptest.NewRecorder()
		n.http.Handler.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.status {
			t.Fatalf("%s: %d, want %d: %s", tc.path, rec.Code, tc.status, rec.Body)
		}
		if tc.status == 503 {
			var e errorReply
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != "starting" || !strings.Contains(e.Error.Message, "rebuilding") {
				t.Fatalf("%s: body %s", tc.path, rec.Body)
			}
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%s: no Retry-After", tc.path)
			}
		}
	}
}

func TestReadyAndHealth(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	var h struct {
		Status string `json:"status"`
		Ready  bool   `json:"ready"`
	}
	if code := call(t, "GET", n.URL+"/healthz", nil, &h); code != 200 || h.Status != "ok" || !h.Ready {
		t.Fatalf("healthz: %d %+v", code, h)
	}
	if code := call(t, "GET", n.URL+"/readyz", nil, nil); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
}

func scrape(t *testing.T, n *testNode) string {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

// TestMetrics: the scrape passes the Prometheus linter and counts what the
// traffic did.
func TestMetrics(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	post(t, n, `[{"user_id":"u","item_id":"a","type":"view"},{"user_id":"u","item_id":"b","type":"purchase"},{"user_id":"u","item_id":"b","type":"purchase"},{"user_id":"","item_id":"a","type":"view"}]`)
	recs(t, n, "u", "")
	call(t, "GET", n.URL+"/v1/nope", nil, nil)
	text := scrape(t, n)

	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		`streamrec_events_accepted_total{type="view"} 1`,
		`streamrec_events_accepted_total{type="purchase"} 1`,
		`streamrec_events_duplicate_total 1`,
		`streamrec_events_rejected_total{field="user_id"} 1`,
		`streamrec_http_requests_total{code="200",method="POST",route="/v1/events"} 1`,
		`streamrec_http_requests_total{code="200",method="GET",route="/v1/users/{id}/recommendations"} 1`,
		`streamrec_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`streamrec_log_commit_records_count 1`,
		`streamrec_model_apply_duration_seconds_count 1`,
		`streamrec_recommend_source_duration_seconds_count{source="item_knn"} 1`,
		`streamrec_recommend_source_duration_seconds_count{source="session_knn"} 1`,
		`streamrec_recommend_candidates_count{source="sequential"} 1`,
		`streamrec_model_bytes{source="history"}`,
		`streamrec_model_bytes{source="content"}`,
		`streamrec_engine_events 2`,
		`streamrec_log_last_sequence 2`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
