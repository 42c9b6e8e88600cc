package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/shared"
)

// redisServer is a real redis-server on a loopback port (Debian's; .ci/run
// installs it).
type redisServer struct {
	cmd  *exec.Cmd
	port int
	dir  string
}

func startRedis(t *testing.T, port int) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server; .ci/run installs it)")
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{cmd: cmd, port: port, dir: dir}
	t.Cleanup(r.kill)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) kill() {
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// cached asks for user's recommendations and reports the items and whether
// the shared cache answered.
func cached(t *testing.T, n *testNode, user, query string) ([]string, string) {
	t.Helper()
	resp, err := http.Get(n.URL + "/v1/users/" + user + "/recommendations" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r recReply
	if err := jsonDecode(resp, &r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET recommendations: %d %v", resp.StatusCode, err)
	}
	return pairs(r), resp.Header.Get("X-Streamrec-Cache")
}

// TestSharedCache: two replicas on one Kafka log share a response cache in
// a real redis-server. An answer one replica computed is served by the
// other from the cache; the user's own event, a hidden item or an
// experiment change are never answered from a stale entry (they are in the
// key); Redis killed, answers stay right (from each replica's own state);
// Redis back, the cache is used again.
func TestSharedCache(t *testing.T) {
	kc := shared.Kafka(t)
	rd := startRedis(t, 0)
	root := t.TempDir()
	conf := func(name string) func() *testNode {
		return func() *testNode {
			cfg := clusterConfig(t, kc.ListenAddrs(), filepath.Join(root, name))
			cfg.Redis.URL = rd.url()
			return startNode(t, cfg)
		}
	}
	a, b := conf("a")(), conf("b")()
	seedShop(t, a)
	tok := tokenOf(t, a, `[{"user_id":"alice","item_id":"socks","type":"view"}]`)
	q := "?n=2&after=" + tok
	first, how := cached(t, a, "alice", q)
	if how != "miss" {
		t.Fatalf("the first answer came %q, want a miss", how)
	}
	if got, how := cached(t, b, "alice", q); how != "hit" || !slices.Equal(got, first) {
		t.Fatalf("the other replica answered %v (%s), want %v from the cache", got, how, first)
	}

	// Her own event: the next answer, on either replica, reflects it.
	tok = tokenOf(t, b, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	got, how := cached(t, a, "alice", "?n=2&after="+tok)
	if how != "miss" || !slices.Contains(got, "case/item_knn") {
		t.Fatalf("after alice's view of the phone: %v (%s), want a fresh answer with the case", got, how)
	}
	// A hidden item: no cached list still holds it.
	if code := call(t, "PUT", a.URL+"/v1/items/case", `{"categories":["shop"],"hidden":true}`, nil); code != http.StatusOK {
		t.Fatalf("hide: %d", code)
	}
	time.Sleep(200 * time.Millisecond) // b applies the catalogue write
	if got, _ := cached(t, b, "alice", "?n=2"); slices.Contains(got, "case/item_knn") {
		t.Fatalf("a hidden item served from the cache: %v", got)
	}

	// Redis killed: answers keep coming, from each replica alone.
	rd.kill()
	want, _ := cached(t, a, "carol", "?n=2&explain=false")
	for range 3 {
		got, how := cached(t, b, "carol", "?n=2&explain=false")
		if len(got) == 0 || how == "hit" || !slices.Equal(got, want) {
			t.Fatalf("with Redis down: %v (%s), want %v from the replica itself", got, how, want)
		}
	}
	// Back on the same port: the cache is used again (after the pause a
	// failure earns).
	rd = startRedis(t, rd.port)
	time.Sleep(1100 * time.Millisecond)
	cached(t, a, "dave", "?n=2")
	if _, how := cached(t, b, "dave", "?n=2"); how != "hit" {
		t.Fatalf("Redis back: %s, want the cache used again", how)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// TestSharedRateLimit: with Redis, limits.rate_per_second holds across
// replicas (one budget for a client, whichever replica it reaches); with
// Redis down each replica limits alone again.
func TestSharedRateLimit(t *testing.T) {
	kc := shared.Kafka(t)
	rd := startRedis(t, 0)
	root := t.TempDir()
	var ns []*testNode
	for _, name := range []string{"a", "b"} {
		cfg := clusterConfig(t, kc.ListenAddrs(), filepath.Join(root, name))
		cfg.Redis.URL = rd.url()
		cfg.Limits.RatePerSecond, cfg.Limits.Burst = 2, 5
		ns = append(ns, startNode(t, cfg))
	}
	burst := func() (ok, limited int) {
		for i := range 30 {
			resp, err := http.Get(ns[i%2].URL + "/v1/trending")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limited++
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("a 429 without Retry-After")
				}
			default:
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		return ok, limited
	}
	start := time.Now()
	ok, limited := burst()
	// One budget: the burst of 5 and 2 a second since, whatever the
	// machine's speed (two budgets would answer twice that).
	budget := 5 + int(2*time.Since(start).Seconds()) + 1
	t.Logf("shared: %d answered, %d limited (burst 5 across both replicas; budget %d)", ok, limited, budget)
	if ok > budget || limited == 0 {
		t.Fatalf("%d of 30 answered across two replicas with one shared budget of %d", ok, budget)
	}
	rd.kill()
	time.Sleep(3 * time.Second) // the local buckets refill
	ok, _ = burst()
	t.Logf("Redis down: %d answered (each replica its own burst of 5)", ok)
	if ok < 9 {
		t.Fatalf("with Redis down only %d answered: the replicas should limit alone, 5 each", ok)
	}
}
