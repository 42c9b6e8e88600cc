package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/shared"
)

// clusterSetup starts a 3-broker in-process Kafka cluster (kfake; groups
// take sessions from 500 ms) for the test, builds the binary and makes a
// directory for the replicas: the brokers as --kafka-brokers takes them.
func clusterSetup(t testing.TB) (brokers, bin, root string) {
	t.Helper()
	return strings.Join(shared.Kafka(t).ListenAddrs(), ","), buildBinary(t), t.TempDir()
}

// replica is one streamrec process of a cluster.
type replica struct {
	*child
	addr, data string
}

// startReplica starts the binary in cluster mode on brokers, with its own
// data directory and background training off (each replica would train a
// model of its own at its own moment).
func startReplica(t testing.TB, bin, brokers, data, addr string) *replica {
	t.Helper()
	return startReplicaWith(t, bin, brokers, data, addr, "snapshot_every: 2000\nmf: {train_every_events: 0, train_every: 0s, quiet: 0s}\nranker: {enabled: false}\n")
}

// startReplicaWith starts a replica with the configuration file cfg.
func startReplicaWith(t testing.TB, bin, brokers, data, addr, cfg string) *replica {
	t.Helper()
	conf := data + ".yaml"
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &child{url: "http://" + addr, logs: &syncBuffer{}}
	c.cmd = exec.Command(bin, "serve", "--addr", addr, "--data", data, "--config", conf, "--kafka-brokers", brokers)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	waitReady(t, c.url, c.logs)
	return &replica{child: c, addr: addr, data: data}
}

func waitReady(t testing.TB, url string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up: %v\n%s", url, err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNginx runs nginx with the shipped deploy/nginx.conf, its upstreams
// pointed at the replicas and its listener at addr.
func startNginx(t testing.TB, addr string, replicas []*replica) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed (apt-get install nginx-light; .ci/run installs it)")
		}
		bin = "/usr/sbin/nginx"
	}
	b, err := os.ReadFile("../../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for i, r := range replicas {
		conf = strings.Replace(conf, fmt.Sprintf("replica%d:8080", i+1), r.addr, 1)
	}
	_, port, _ := strings.Cut(addr, ":")
	conf = strings.Replace(conf, "listen 8080;", "listen 127.0.0.1:"+port+";", 1)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log "+filepath.Join(dir, "logs", "error.log")+";")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, "http://"+addr, logs)
	return "http://" + addr
}

// load is a mixed load through one URL: writers post batches of events
// with ids, readers ask for recommendations. It records every event
// acknowledged, the largest consistency token, and errors by phase.
type load struct {
	url      string
	mu       sync.Mutex
	acked    map[string]string // event id → user
	token    uint64
	writes   atomic.Int64
	failed   atomic.Int64
	reads    atomic.Int64
	readFail atomic.Int64
	stop     atomic.Bool
	wg       sync.WaitGroup
}

func (l *load) run(writers, readers, users int) {
	for w := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for b := 0; !l.stop.Load(); b++ {
				var evs []string
				ids := map[string]string{}
				for i := range 20 {
					id := fmt.Sprintf("w%d-b%d-%d", w, b, i)
					u := fmt.Sprintf("user%d", (w*7+i+b*3)%users)
					ids[id] = u
					// Times 3 s apart: no two events fall in the window that
					// drops identical user/item/type events as duplicates.
					ts := 1_700_000_000 + 3*(w*1_000_000+b*20+i)
					evs = append(evs, fmt.Sprintf(`{"event_id":%q,"user_id":%q,"item_id":"item%d","type":"view","timestamp":%d}`, id, u, (b*31+i*17+w)%300, ts))
				}
				l.writes.Add(1)
				resp, err := http.Post(l.url+"/v1/events", "application/json", strings.NewReader("["+strings.Join(evs, ",")+"]"))
				if err != nil {
					l.failed.Add(1)
					continue
				}
				var r struct {
					Accepted, Duplicates int
					Token                string
				}
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				tok, terr := strconv.ParseUint(r.Token, 10, 64)
				if resp.StatusCode != 200 || err != nil || terr != nil || r.Accepted+r.Duplicates != len(evs) {
					l.failed.Add(1)
					continue
				}
				l.mu.Lock()
				for id, u := range ids {
					l.acked[id] = u
				}
				l.token = max(l.token, tok)
				l.mu.Unlock()
			}
		}()
	}
	for k := range readers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; !l.stop.Load(); i++ {
				l.reads.Add(1)
				resp, err := http.Get(fmt.Sprintf("%s/v1/users/user%d/recommendations?n=5", l.url, (i*5+k)%users))
				if err != nil {
					l.readFail.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.readFail.Add(1)
				}
			}
		}()
	}
}

// count is how many events were acknowledged so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// TestClusterFailover: three replica processes on one Kafka log (a 3-broker
// kfake cluster in this test process, over loopback) behind nginx with the
// shipped configuration, under a mixed load of writes and reads; one
// replica is killed with SIGKILL mid-load and restarted. Every event
// acknowledged before, during and after the kill is on every surviving
// replica, and on the restarted one after it caught up; the replicas
// answer alike after the same records. The error rate during the
// fail-over and the restarted replica's catch-up are reported.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas and nginx")
	}
	brokers, bin, root := clusterSetup(t)
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplica(t, bin, brokers, filepath.Join(root, fmt.Sprint("r", i+1)), freeAddr(t)))
	}
	front := startNginx(t, freeAddr(t), rs)

	const users = 200 // at most ~300 events each: /events answers up to 1,000
	l := &load{url: front, acked: map[string]string{}}
	l.run(4, 2, users)
	time.Sleep(1500 * time.Millisecond)
	before := l.count()
	w0, f0, r0, rf0 := l.writes.Load(), l.failed.Load(), l.reads.Load(), l.readFail.Load()
	victim := rs[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	killed := time.Now()
	time.Sleep(2 * time.Second)
	w1, f1, r1, rf1 := l.writes.Load(), l.failed.Load(), l.reads.Load(), l.readFail.Load()
	t.Logf("in the 2 s after the kill: %d of %d writes failed, %d of %d reads (through nginx); %d events acknowledged before it",
		f1-f0, w1-w0, rf1-rf0, r1-r0, before)

	// Restart the killed replica on its data directory while the load goes on.
	start := time.Now()
	restarted := startReplica(t, bin, brokers, victim.data, victim.addr)
	t.Logf("the restarted replica was ready %s after its start (%s after the kill)", time.Since(start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	time.Sleep(time.Second)
	l.stop.Store(true)
	l.wg.Wait()
	t.Logf("in all: %d writes (%d failed), %d reads (%d failed), %d events acknowledged", l.writes.Load(), l.failed.Load(), l.reads.Load(), l.readFail.Load(), len(l.acked))
	if l.count() <= before {
		t.Fatalf("no write was acknowledged after the kill (%d before, %d in all)", before, l.count())
	}

	for _, r := range []*replica{rs[0], rs[2], restarted} {
		got := storedIDs(t, r.url, "", users, l.token)
		for id := range l.acked {
			if !got[id] {
				t.Fatalf("event %s (user %s), acknowledged, is not on %s", id, l.acked[id], r.url)
			}
		}
	}
	// The same items in the same order (scores may differ in the fourth
	// digit: item-kNN caches an item's neighbour list until the item
	// changes, with its neighbours' norms as of that read; docs/SCALING.md).
	answer := func(url string) string {
		var b strings.Builder
		for u := range 20 {
			var r struct {
				Items []struct {
					Item   string `json:"item_id"`
					Source string `json:"source"`
				} `json:"items"`
			}
			getJSON(t, fmt.Sprintf("%s/v1/users/user%d/recommendations?n=5&after=%d", url, u, l.token), &r)
			fmt.Fprintf(&b, "user%d %v\n", u, r.Items)
		}
		return b.String()
	}
	want := answer(rs[0].url)
	for _, r := range []*replica{rs[2], restarted} {
		if got := answer(r.url); got != want {
			t.Fatalf("replicas disagree after the same records:\n%s\n%s", want, got)
		}
	}
}

// metric reads one unlabelled gauge or counter of a replica's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1 // killed, or not up yet
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("%s/metrics has no %s", url, name)
	return 0
}

// TestClusterTrainerKilled: three replica processes share a models
// directory; the one elected trains matrix factorisation and every replica
// serves its model. The trainer is killed with SIGKILL (it never leaves the
// group: the others find out when its session times out); another is
// elected, trains on the events that came since, and both survivors serve
// that new model.
func TestClusterTrainerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas")
	}
	brokers, bin, root := clusterSetup(t)
	cfg := fmt.Sprintf("kafka: {models_dir: %q, session_timeout: 1s, checkpoint_every: 0s}\n"+
		"mf: {first_train_events: 1000, train_every_events: 1000, train_every: 0s, quiet: 300ms, quiet_events: 100, iterations: 3}\n"+
		"ranker: {enabled: false}\n", filepath.Join(root, "shared"))
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplicaWith(t, bin, brokers, filepath.Join(root, fmt.Sprint("r", i+1)), freeAddr(t), cfg))
	}
	post := func(r *replica, round int) {
		for b := range 6 {
			var evs []string
			for i := range 500 {
				k := round*3000 + b*500 + i
				evs = append(evs, fmt.Sprintf(`{"user_id":"u%d","item_id":"i%d","type":"view","timestamp":%d}`, k%150, (k*7+round)%250, 1_700_000_000+k))
			}
			resp, err := http.Post(r.url+"/v1/events", "application/json", strings.NewReader("["+strings.Join(evs, ",")+"]"))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("POST events: %v %v", err, resp)
			}
			resp.Body.Close()
		}
	}
	// served waits until every replica in ns serves one model, trained on
	// more than after records, and says which replica trains.
	served := func(ns []*replica, after float64) (float64, *replica) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			var seqs []float64
			var leaders []*replica
			for _, r := range ns {
				if s := metric(t, r.url, "streamrec_mf_trained_through_sequence"); s > after {
					seqs = append(seqs, s)
				}
				if metric(t, r.url, "streamrec_trainer_elected") == 1 {
					leaders = append(leaders, r)
				}
			}
			if len(seqs) == len(ns) && len(leaders) == 1 && !slices.ContainsFunc(seqs, func(s float64) bool { return s != seqs[0] }) {
				return seqs[0], leaders[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("not every replica serves one model trained past %v, with one trainer: %v, %d trainers", after, seqs, len(leaders))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	post(rs[0], 0)
	first, trainer := served(rs, 0)
	if err := trainer.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	trainer.cmd.Wait()
	killed := time.Now()
	rest := slices.DeleteFunc(slices.Clone(rs), func(r *replica) bool { return r == trainer })
	post(rest[0], 1)
	second, next := served(rest, first)
	t.Logf("the trainer killed after its model through %v; %s was elected and both survivors serve its model through %v, %s after the kill",
		first, next.url, second, time.Since(killed).Round(time.Millisecond))
}
