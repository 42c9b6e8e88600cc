package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
)

// clusterConfig is a replica of a cluster on brokers: its own data
// directory, background training off (each replica would train its own
// model at its own moment).
func clusterConfig(t *testing.T, brokers []string, dir string) config.Config {
	cfg := quietConfig(t)
	cfg.Data = dir
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Topic = "log"
	return cfg
}

// tokenOf posts events to a replica and returns the write's consistency
// token.
func tokenOf(t *testing.T, n *testNode, body string) string {
	t.Helper()
	resp, raw := do(t, "POST", n.URL+"/v1/events", "", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, raw)
	}
	tok := resp.Header.Get("X-Streamrec-Token")
	if tok == "" || !strings.Contains(raw, `"token":"`+tok+`"`) {
		t.Fatalf("no consistency token in %v / %s", resp.Header, raw)
	}
	return tok
}

// answers is what a replica answers a sample of users, after token.
func answers(t *testing.T, n *testNode, token string, users []string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		var r recReply
		if code := call(t, "GET", n.URL+"/v1/users/"+u+"/recommendations?n=5&after="+token, nil, &r); code != http.StatusOK {
			t.Fatalf("GET recommendations of %s: %d", u, code)
		}
		fmt.Fprintf(&b, "%s %v\n", u, pairs(r))
	}
	return b.String()
}

// TestClusterOnKafka runs three replicas on one log in a 3-broker
// in-process Kafka cluster (kfake): a write on any replica is read on any
// other with its token; a catalogue write on one is on all; an event sent
// twice to two replicas at once is applied once, alike everywhere; the
// replicas answer identically after the same records; a replica stopped
// while others write catches up on restart, and a new one with an empty
// data directory catches up from the start of the log.
func TestClusterOnKafka(t *testing.T) {
	brokers := shared.Kafka(t).ListenAddrs()
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")}
	a := startNode(t, clusterConfig(t, brokers, dirs[0]))
	b := startNode(t, clusterConfig(t, brokers, dirs[1]))
	c := startNode(t, clusterConfig(t, brokers, dirs[2]))

	// The shop on a (catalogue and events), alice's view on b: c reads
	// them all with b's token.
	seedShop(t, a)
	tok := tokenOf(t, b, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	var r recReply
	if code := call(t, "GET", c.URL+"/v1/users/alice/recommendations?n=1&after="+tok, nil, &r); code != http.StatusOK || !slices.Equal(pairs(r), []string{"case/item_knn"}) {
		t.Fatalf("c after b's token answers %d %v, want case from item_knn (alice's view on b)", code, pairs(r))
	}
	var item struct{ ID string }
	if code := call(t, "GET", c.URL+"/v1/items/case", nil, &item); code != http.StatusOK || item.ID != "case" {
		t.Fatalf("c does not hold a's catalogue write: %d %+v", code, item)
	}

	// The same event_id sent to two replicas at once: applied once.
	var wg sync.WaitGroup
	for _, n := range []*testNode{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			callNoT("POST", n.URL+"/v1/events", []map[string]string{{"event_id": "twice", "user_id": "bob", "item_id": "socks", "type": "view"}}, nil)
		}()
	}
	wg.Wait()
	tok = tokenOf(t, c, `[{"user_id":"bob","item_id":"case","type":"view"}]`)
	for _, n := range []*testNode{a, b, c} {
		var evs struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		call(t, "GET", n.URL+"/v1/users/bob/events?after="+tok, nil, &evs)
		twice := 0
		for _, e := range evs.Events {
			if e.EventID == "twice" {
				twice++
			}
		}
		if twice != 1 || len(evs.Events) != 2 {
			t.Fatalf("%s holds bob's events %+v: want the repeated one once, and the other", n.URL, evs.Events)
		}
	}

	users := []string{"alice", "bob", "u1", "p3", "nobody"}
	want := answers(t, a, tok, users)
	for _, n := range []*testNode{b, c} {
		if got := answers(t, n, tok, users); got != want {
			t.Fatalf("replicas disagree after the same records:\n%s\n%s", want, got)
		}
	}

	// c stops; a and b go on writing; c catches up on restart.
	c.stop()
	for i := range 50 {
		tok = tokenOf(t, []*testNode{a, b}[i%2], fmt.Sprintf(`[{"user_id":"w%d","item_id":"phone","type":"view"},{"user_id":"alice","item_id":"i%d","type":"view"}]`, i%7, i))
	}
	c = startNode(t, clusterConfig(t, brokers, dirs[2]))
	users = append(users, "w3")
	want = answers(t, a, tok, users)
	if got := answers(t, c, tok, users); got != want {
		t.Fatalf("the restarted replica disagrees:\n%s\n%s", want, got)
	}
	// A new replica, empty data directory: from the start of the log.
	d := startNode(t, clusterConfig(t, brokers, filepath.Join(root, "d")))
	if d.Writer.Applied() < mustUint(t, tok) {
		t.Fatalf("the new replica was ready at %d, before the log's %s", d.Writer.Applied(), tok)
	}
	if got := answers(t, d, tok, users); got != want {
		t.Fatalf("the new replica disagrees:\n%s\n%s", want, got)
	}

	// A token no replica has reached yet: 503 with Retry-After, soon.
	start := time.Now()
	resp, raw := do(t, "GET", a.URL+"/v1/users/alice/recommendations?after=999999999", "", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(raw, "not_caught_up") {
		t.Fatalf("a token from the future: %d %v %s", resp.StatusCode, resp.Header, raw)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("a read waited %s for a token", waited)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	if _, err := fmt.Sscan(s, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestClusterOneTrainer: with a shared models directory, exactly one of
// three replicas trains (elected through Kafka group membership), and every
// replica serves the model it publishes; when the trainer stops, another
// is elected, trains on what came since, and the rest serve its model.
func TestClusterOneTrainer(t *testing.T) {
	brokers := shared.Kafka(t).ListenAddrs()
	root := t.TempDir()
	models := filepath.Join(root, "shared-models")
	conf := func(name string) config.Config {
		cfg := defaultConfig(t)
		cfg.Data = filepath.Join(root, name)
		cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.Kafka.ModelsDir = brokers, "log", models
		cfg.Kafka.SessionTimeout = config.Duration(time.Second)
		cfg.MF.FirstTrainEvents, cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery = 1000, 1000, 0
		cfg.MF.Quiet, cfg.MF.QuietEvents = config.Duration(300*time.Millisecond), 100
		cfg.MF.Iterations = 3
		cfg.Ranker.Enabled = false
		return cfg
	}
	nodes := []*testNode{startNode(t, conf("a")), startNode(t, conf("b")), startNode(t, conf("c"))}
	post := func(n *testNode, round int) {
		evs := dataset.Synthetic(dataset.SynthConfig{Users: 200, Items: 300, Events: 3000, Seed: uint64(round + 1), Start: time.Unix(1_700_000_000+int64(round)*100_000, 0), Step: time.Second})
		for i := 0; i < len(evs); i += 500 {
			if code := call(t, "POST", n.URL+"/v1/events", evs[i:i+500], nil); code != http.StatusOK {
				t.Fatalf("POST events: %d", code)
			}
		}
	}
	// servedAll waits until every node serves a model trained on more than
	// after records, the same one everywhere.
	servedAll := func(ns []*testNode, after uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var seqs []uint64
			for _, n := range ns {
				if m := n.Engine.MFTrained(); m != nil && m.Seq > after {
					seqs = append(seqs, m.Seq)
				}
			}
			if len(seqs) == len(ns) && !slices.ContainsFunc(seqs, func(s uint64) bool { return s != seqs[0] }) {
				return seqs[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("not every replica serves one model trained past %d: %v", after, seqs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	leaders := func(ns []*testNode) []int {
		var out []int
		for i, n := range ns {
			if n.leading.Load() {
				out = append(out, i)
			}
		}
		return out
	}
	post(nodes[0], 0)
	// The recommendation id key is in the shared directory: an impression
	// of an answer of one replica is taken by another.
	var ans expReply
	call(t, "GET", nodes[0].URL+"/v1/users/someone/recommendations?n=1", nil, &ans)
	imp := fmt.Sprintf(`{"recommendation_id":%q,"user_id":"someone","items":["x"]}`, ans.RecommendationID)
	if code := call(t, "POST", nodes[2].URL+"/v1/impressions", imp, nil); code != http.StatusAccepted {
		t.Fatalf("an impression of replica a's answer posted to replica c: %d", code)
	}
	first := servedAll(nodes, 0)
	lead := leaders(nodes)
	if len(lead) != 1 {
		t.Fatalf("replicas %v lead, want exactly one", lead)
	}
	t.Logf("replica %d trains; every replica serves its model, trained through %d", lead[0], first)

	// The trainer stops: another is elected and trains on what comes next.
	nodes[lead[0]].stop()
	rest := slices.Delete(slices.Clone(nodes), lead[0], lead[0]+1)
	post(rest[0], 1)
	second := servedAll(rest, first)
	if l := leaders(rest); len(l) != 1 {
		t.Fatalf("after the trainer stopped, replicas %v lead, want exactly one", l)
	}
	t.Logf("after the trainer stopped, the new one's model (through %d) is served by both", second)
}

// TestSourceTopic: a replica consumes the application's own event topic
// into the log: a JSON event, a JSON array and NDJSON are all applied;
// an invalid event and a message that is not JSON go to the dead-letter
// topic with the reason (the valid events of a message still go in); the
// offsets are committed, so a restart reads nothing twice.
func TestSourceTopic(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(2, "app-events"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	cfg := clusterConfig(t, brokers, filepath.Join(t.TempDir(), "a"))
	cfg.Kafka.SourceTopic, cfg.Kafka.DeadLetterTopic = "app-events", "app-dead"
	n := startNode(t, cfg)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("app-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	msgs := []string{
		`{"user_id":"ann","item_id":"a","type":"view"}`,
		`[{"user_id":"ann","item_id":"b","type":"view"},{"user_id":"bob","item_id":"a","type":"click"}]`,
		"{\"user_id\":\"ann\",\"item_id\":\"c\",\"type\":\"view\"}\n{\"user_id\":\"ann\",\"item_id\":\"d\",\"type\":\"cart\"}",
		`[{"user_id":"bob","item_id":"b","type":"view"},{"user_id":"bob","item_id":"x","type":"teleport"}]`,
		`not json at all`,
	}
	for _, m := range msgs {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte(m)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(user string) int {
		var r struct {
			Events []json.RawMessage `json:"events"`
		}
		call(t, "GET", n.URL+"/v1/users/"+user+"/events?n=100", nil, &r)
		return len(r.Events)
	}
	deadline := time.Now().Add(15 * time.Second)
	for count("ann") < 4 || count("bob") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("from the topic: ann %d events (want 4), bob %d (want 2)", count("ann"), count("bob"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The dead letters: the message with the bad type, and the garbage.
	dl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("app-dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	var reasons []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(reasons) < 2 && ctx.Err() == nil {
		dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "reason" {
					reasons = append(reasons, string(r.Value)+" ← "+string(h.Value))
				}
			}
		})
	}
	if len(reasons) != 2 || !strings.Contains(strings.Join(reasons, "\n"), "teleport") || !strings.Contains(strings.Join(reasons, "\n"), "not json") {
		t.Fatalf("dead letters: %q", reasons)
	}
	// A restart reads nothing twice: the offsets were committed.
	n.stop()
	n = startNode(t, withData(cfg, n.cfg.Data))
	time.Sleep(2 * time.Second)
	if a, b := count("ann"), count("bob"); a != 4 || b != 2 {
		t.Fatalf("after a restart ann has %d events, bob %d: want 4 and 2 (nothing read twice)", a, b)
	}
}

// TestClusterRefusesAnotherLog: a data directory that followed one log is
// not followed on into another (a topic made again, another cluster's)
// whose records differ: the start fails, naming why.
func TestClusterRefusesAnotherLog(t *testing.T) {
	first, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	root := t.TempDir()
	a := startNode(t, clusterConfig(t, first.ListenAddrs(), filepath.Join(root, "a")))
	tokenOf(t, a, `[{"user_id":"x","item_id":"1","type":"view"},{"user_id":"x","item_id":"2","type":"view"}]`)
	a.stop()
	b := startNode(t, clusterConfig(t, second.ListenAddrs(), filepath.Join(root, "b")))
	tokenOf(t, b, `[{"user_id":"y","item_id":"7","type":"view"},{"user_id":"y","item_id":"8","type":"view"},{"user_id":"y","item_id":"9","type":"view"}]`)
	err = startFails(t, clusterConfig(t, second.ListenAddrs(), filepath.Join(root, "a")))
	if err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("a's data directory on the second log: %v, want the start refused", err)
	}
}

// TestClusterBrokersDown: when the brokers take no write, a POST is
// answered 503 within timeouts.durable (not held until they come back),
// and the replica says so until a write goes through again.
func TestClusterBrokersDown(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cfg := clusterConfig(t, kc.ListenAddrs(), filepath.Join(t.TempDir(), "a"))
	cfg.Timeouts.Durable = config.Duration(time.Second)
	n := startNode(t, cfg)
	tokenOf(t, n, `[{"user_id":"x","item_id":"1","type":"view"}]`)
	var down atomic.Bool
	down.Store(true)
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if down.Load() {
			return nil, errors.New("broker down"), true // the connection is closed
		}
		return nil, nil, false
	})
	start := time.Now()
	resp, raw := do(t, "POST", n.URL+"/v1/events", "", `[{"user_id":"x","item_id":"2","type":"view"}]`)
	if took := time.Since(start); resp.StatusCode != http.StatusServiceUnavailable || took > 5*time.Second {
		t.Fatalf("with the brokers down: %d after %s: %s", resp.StatusCode, took.Round(time.Millisecond), raw)
	}
	if err := n.Writer.Health(); err == nil {
		t.Fatal("the replica reports no trouble while the brokers take no write")
	}
	down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, _ := do(t, "POST", n.URL+"/v1/events", "", `[{"user_id":"x","item_id":"3","type":"view"}]`)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not recover after the brokers came back: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
