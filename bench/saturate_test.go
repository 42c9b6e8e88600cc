package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer answers like handler after delay and records what it was
// asked.
type countingServer struct {
	*httptest.Server
	served atomic.Int64
	mu     sync.Mutex
	paths  map[string]int
	auth   map[string]int
}

func newCountingServer(t *testing.T, delay time.Duration, handler http.Handler) *countingServer {
	s := &countingServer{paths: map[string]int{}, auth: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		s.mu.Lock()
		s.paths[r.URL.RequestURI()]++
		s.auth[r.Header.Get("Authorization")]++
		s.mu.Unlock()
		s.served.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestSaturateSlowerServer: against a fast and a deliberately slower
// server, the rounds alternate, every request is answered and counted on
// both sides, both servers get the same requests with the same headers,
// and the slower one's ratio is below 1.
func TestSaturateSlowerServer(t *testing.T) {
	body := ReferenceBody(10)
	fast := newCountingServer(t, 0, ReferenceHandler(body))
	slow := newCountingServer(t, time.Millisecond, ReferenceHandler(body))
	users := []string{"1", "2", "u/3", "4"}
	const conns, rounds = 2, 2
	var order []string
	res, err := Saturate(context.Background(), SaturateConfig{
		Reference: fast.URL, Target: slow.URL, TargetName: "slow",
		Duration: 250 * time.Millisecond, Rounds: rounds, Conns: conns, Users: users, N: 10, Key: "k",
		Round: func(i int, server string, cc *ClosedConfig) { order = append(order, server) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "reference slow reference slow"; strings.Join(order, " ") != want {
		t.Fatalf("rounds ran in the order %v, want %s", order, want)
	}
	if len(res.Rounds) != 2*rounds || len(res.Pairs) != rounds {
		t.Fatalf("%d rounds, %d pairs", len(res.Rounds), len(res.Pairs))
	}
	sent := map[string]int64{}
	var refRates, slowRates []float64
	for i, r := range res.Rounds {
		if r.Round != i/2+1 || r.Server != order[i] {
			t.Fatalf("round %d is %d %s", i, r.Round, r.Server)
		}
		if r.Requests <= 0 || r.Errors != 0 || r.FirstError != "" {
			t.Fatalf("round %+v", r)
		}
		if r.Latency.Count != int64(r.Requests) || r.BodyBytes != float64(len(body)) {
			t.Fatalf("round %d: %d latencies for %d requests, body %.1f bytes (want %d)", i, r.Latency.Count, r.Requests, r.BodyBytes, len(body))
		}
		if d := r.Seconds - 0.25; d < 0 || d > 0.2 {
			t.Fatalf("round %d lasted %.3fs", i, r.Seconds)
		}
		if got := float64(r.Requests) / r.Seconds; got != r.Rate {
			t.Fatalf("rate %.1f, requests/seconds %.1f", r.Rate, got)
		}
		if r.Server == "slow" {
			// A millisecond a request, conns at a time.
			if r.Rate > conns*1000 {
				t.Fatalf("the slow server answered %.0f req/s", r.Rate)
			}
			slowRates = append(slowRates, r.Rate)
		} else {
			refRates = append(refRates, r.Rate)
		}
		// What the servers saw: every counted request plus one warm-up
		// request a connection.
		sent[r.Server] += int64(r.Requests + conns)
	}
	if fast.served.Load() != sent["reference"] || slow.served.Load() != sent["slow"] {
		t.Fatalf("servers answered %d and %d requests, the client counted %v", fast.served.Load(), slow.served.Load(), sent)
	}
	for i, p := range res.Pairs {
		if p != slowRates[i]/refRates[i] || p >= 1 {
			t.Fatalf("pair %d: ratio %.3f, rates %.0f/%.0f", i, p, slowRates[i], refRates[i])
		}
	}
	if lo, hi := min(res.Pairs[0], res.Pairs[1]), max(res.Pairs[0], res.Pairs[1]); res.Ratio < lo || res.Ratio > hi || res.Ratio >= 1 {
		t.Fatalf("ratio %.3f outside the pairs %v", res.Ratio, res.Pairs)
	}
	if res.ReferenceRate <= res.TargetRate {
		t.Fatalf("reference %.0f req/s, slow %.0f", res.ReferenceRate, res.TargetRate)
	}
	// The same requests, with the same headers, to both.
	for _, s := range []*countingServer{fast, slow} {
		if len(s.paths) != len(users) || s.paths["/v1/users/u%2F3/recommendations?n=10"] == 0 {
			t.Fatalf("paths %v", s.paths)
		}
		if len(s.auth) != 1 || s.auth["Bearer k"] == 0 {
			t.Fatalf("authorization %v", s.auth)
		}
	}
	table := res.Table()
	for _, want := range []string{"reference", "slow", "per pair of rounds", "of the minimal server's " + Thousands(res.ReferenceRate)} {
		if !strings.Contains(table, want) {
			t.Fatalf("table lacks %q:\n%s", want, table)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

// TestClosedLoopRefused: a server that does not answer 200 fails the
// round before it starts, saying why.
func TestClosedLoopRefused(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no key", http.StatusUnauthorized)
	}))
	defer s.Close()
	_, err := ClosedLoop(context.Background(), ClosedConfig{URL: s.URL, Duration: time.Second, Conns: 2, Users: []string{"a"}, N: 10})
	if err == nil || !strings.Contains(err.Error(), "status 401") || !strings.Contains(err.Error(), "/v1/users/a/recommendations") {
		t.Fatalf("err %v", err)
	}
	if _, err := ClosedLoop(context.Background(), ClosedConfig{URL: "ftp://x", Duration: time.Second, Conns: 1, Users: []string{"a"}, N: 1}); err == nil {
		t.Fatal("ftp url accepted")
	}
}

// TestReferenceHandler: every GET gets the fixed body, shaped like a
// recommendation answer; other methods 405.
func TestReferenceHandler(t *testing.T) {
	body := ReferenceBody(10)
	var answer struct {
		UserID string `json:"user_id"`
		Items  []struct {
			Item   string  `json:"item_id"`
			Score  float64 `json:"score"`
			Source string  `json:"source"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(answer.Items) != 10 || answer.Items[9].Item == "" || answer.Items[9].Score <= 0 || answer.Items[0].Score <= answer.Items[9].Score {
		t.Fatalf("%+v", answer)
	}
	if len(body) < 400 || len(body) > 1000 {
		t.Fatalf("%d bytes", len(body))
	}
	h := ReferenceHandler(body)
	for _, path := range []string{"/v1/users/7/recommendations?n=10", "/anything"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != 200 || w.Body.String() != string(body) || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q", path, w.Code, w.Body.String())
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", w.Code)
	}
}

func TestThousandsAndMedian(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 74300.4: "74,300", 1234567: "1,234,567"} {
		if got := Thousands(x); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", x, got, want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{0.2, 0.3}); m != 0.25 {
		t.Errorf("median %v", m)
	}
}
