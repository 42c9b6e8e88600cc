package node

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/internal/shared"
)

// TestGzipBodies: ingest clients commonly compress; a gzip body is read,
// a body that claims gzip but is not is a 400 naming it.
func TestGzipBodies(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(`[{"user_id":"g","item_id":"a","type":"view"},{"user_id":"g","item_id":"b","type":"view"}]`))
	zw.Close()
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"gzip events", zb.Bytes(), 200, `"accepted":2`},
		{"not gzip", []byte(`[{"user_id":"g"}]`), 400, "not gzip data"},
	} {
		req, _ := http.NewRequest("POST", n.URL+"/v1/events", bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, body := doReq(t, req)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	var evs struct{ Events []any }
	call(t, "GET", n.URL+"/v1/users/g/events", nil, &evs)
	if len(evs.Events) != 2 {
		t.Fatalf("stored %d events from the gzip body, want 2", len(evs.Events))
	}
}

func doReq(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.String()
}

// TestAuthFailuresCountedLoggedAndLimited: refused requests show up in the
// request metric, and an address that keeps sending wrong keys is slowed to
// the configured rate, while a right key from elsewhere still works.
func TestAuthFailuresCountedLoggedAndLimited(t *testing.T) {
	cfg := keyedConfig(t)
	cfg.Limits.AuthFailuresPerSecond = 0.5
	cfg.Limits.AuthFailureBurst = 3
	n := startNode(t, cfg)
	for i := range 3 {
		if resp, body := do(t, "GET", n.URL+"/v1/trending", "wrong-key-0123456789", ""); resp.StatusCode != 401 {
			t.Fatalf("wrong key %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := do(t, "GET", n.URL+"/v1/trending", "another-wrong-key-0123", "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "wrong API key") {
		t.Fatalf("guessing was not limited: %d %s", resp.StatusCode, body)
	}
	// The scheme is case-insensitive, and X-API-Key works too. (Every
	// request here comes from 127.0.0.1, whose failure bucket is empty now:
	// right keys are not charged.)
	for _, h := range [][2]string{{"Authorization", "Bearer " + readKey}, {"Authorization", "bearer " + readKey}, {"X-API-Key", readKey}} {
		req, _ := http.NewRequest("GET", n.URL+"/v1/trending", nil)
		req.Header.Set(h[0], h[1])
		if resp, body := doReq(t, req); resp.StatusCode != 200 {
			t.Fatalf("%s: %s: %d %s", h[0], h[1], resp.StatusCode, body)
		}
	}
	m := scrapeWith(t, n, adminKey)
	for _, want := range []string{
		`streamrec_http_requests_total{code="401",method="GET",route="/v1/trending"} 3`,
		`streamrec_http_requests_total{code="429",method="GET",route="/v1/trending"} 1`,
		`streamrec_http_requests_total{code="200",method="GET",route="/v1/trending"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s:\n%s", want, grepLines(m, "streamrec_http_requests_total"))
		}
	}
}

func scrapeWith(t *testing.T, n *testNode, key string) string {
	t.Helper()
	resp, body := do(t, "GET", n.URL+"/metrics", key, "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAdminListenerFollowsTheLoopbackRule: a non-loopback admin address
// with no keys is refused unless --insecure; with keys, everything there
// (pprof included) needs the admin scope.
func TestAdminListenerFollowsTheLoopbackRule(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.AdminAddr = "0.0.0.0:0"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin_addr") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("open non-loopback admin address accepted: %v", err)
	}
	cfg.Insecure = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("--insecure: %v", err)
	}

	n := startNode(t, keyedConfig(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.ServeAdmin(l); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + l.Addr().String()
	for _, path := range []string{"/metrics", "/debug/pprof/cmdline", "/debug/vars"} {
		if resp, body := do(t, "GET", admin+path, "", ""); resp.StatusCode != 401 {
			t.Fatalf("%s without a key: %d %.100s", path, resp.StatusCode, body)
		}
		if resp, _ := do(t, "GET", admin+path, readKey, ""); resp.StatusCode != 403 {
			t.Fatalf("%s with a read key: %d", path, resp.StatusCode)
		}
		if resp, _ := do(t, "GET", admin+path, adminKey, ""); resp.StatusCode != 200 {
			t.Fatalf("%s with the admin key: %d", path, resp.StatusCode)
		}
	}
}

// TestInFlightLimit: requests beyond limits.max_in_flight_writes get a 503
// at once (with Retry-After) instead of queueing without bound; health
// checks are never refused.
func TestInFlightLimit(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Limits.MaxInFlight = 4
	cfg.Limits.MaxInFlightWrites = 2
	n := startNode(t, cfg)
	addr := strings.TrimPrefix(n.URL, "http://")
	// Two writes that never finish sending their bodies hold both write slots.
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := do(t, "POST", n.URL+"/v1/events", "", `[{"user_id":"u","item_id":"i","type":"view"}]`)
		if resp.StatusCode == 503 {
			if !strings.Contains(body, "overloaded") || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without its code or Retry-After: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third write was never refused: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := do(t, "GET", n.URL+"/v1/trending", "", ""); resp.StatusCode != 200 {
		t.Fatalf("a read was refused while only writes are full: %d", resp.StatusCode)
	}
	if resp, body := do(t, "POST", n.URL+"/v1/users/u/rank", "", `{"items":["i"]}`); resp.StatusCode != 200 {
		t.Fatalf("a rank request (a read, though a POST) was refused while only writes are full: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", n.URL+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz refused under load: %d", resp.StatusCode)
	}
}

// rss is the resident set of this process in bytes; the test is skipped
// where it cannot be read.
func rss(t *testing.T) int64 {
	t.Helper()
	cur, _ := shared.RSS()
	if cur == 0 {
		t.Skip("cannot read this process's RSS here (/proc/self/status)")
	}
	return int64(cur)
}

// TestClientsThatNeverReadDoNotAmplifyMemory repeats the attack: 50
// connections pipeline requests for a large history and never read the
// replies. Replies are streamed, so each blocked reply holds kilobytes, not
// the whole history (before: about 20 MB a connection, 1 GB in all).
func TestClientsThatNeverReadDoNotAmplifyMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := defaultConfig(t)
	n := startNode(t, cfg)
	// 1,000 events with 7 KB contexts: a 7 MB reply for n=1000.
	pad := strings.Repeat("x", 7000)
	for b := range 10 {
		var sb strings.Builder
		sb.WriteByte('[')
		for i := range 100 {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"event_id":"e%d-%d","user_id":"big","item_id":"i%d","type":"view","context":{"pad":%q}}`, b, i, b*100+i, pad)
		}
		sb.WriteByte(']')
		if st := call(t, "POST", n.URL+"/v1/events", sb.String(), nil); st != 200 {
			t.Fatalf("seed batch %d: %d", b, st)
		}
	}
	runtime.GC()
	before := rss(t)
	addr := strings.TrimPrefix(n.URL, "http://")
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(4 << 10) // and never read
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			var req bytes.Buffer
			for range 20 {
				req.WriteString("GET /v1/users/big/events?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(req.Bytes())
		}()
	}
	wg.Wait()
	// Let every handler run until its write blocks.
	time.Sleep(3 * time.Second)
	after := rss(t)
	for _, c := range conns {
		c.Close()
	}
	growth := after - before
	limit := int64(150 << 20)
	if shared.Race {
		limit = 400 << 20 // the race detector's shadow memory
	}
	t.Logf("RSS %d MB before, %d MB with 50 clients that never read (growth %d MB, limit %d MB)", before>>20, after>>20, growth>>20, limit>>20)
	if growth > limit {
		t.Fatalf("50 clients that never read grew RSS by %d MB (limit %d MB)", growth>>20, limit>>20)
	}
	// The server still answers.
	if resp, _ := do(t, "GET", n.URL+"/v1/users/big/events?n=1", "", ""); resp.StatusCode != 200 {
		t.Fatalf("after the attack: %d", resp.StatusCode)
	}
}

// TestShutdownPastTheGraceIsClean: a request still running when the
// shutdown grace ends is cut off (it was never acknowledged) and the node
// still stops cleanly: Serve returns nil, so the process exits 0.
func TestShutdownPastTheGraceIsClean(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Timeouts.Shutdown = config.Duration(300 * time.Millisecond)
	n := startNode(t, cfg)
	c, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A body that never finishes keeps its handler running.
	fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
	time.Sleep(100 * time.Millisecond)
	n.cancel()
	select {
	case err := <-n.done:
		n.cancel = nil
		if err != nil {
			t.Fatalf("a request outlasting the grace made the shutdown fail: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the shutdown waited for a request past its grace")
	}
}
