package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
)

// deleteRecords removes the topic's records before offset (what retention
// does), with the Kafka API a broker answers.
func deleteRecords(t *testing.T, brokers []string, topic string, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil || p.LowWatermark != offset {
				t.Fatalf("delete records before %d: %v (low watermark %d)", offset, err, p.LowWatermark)
			}
		}
	}
}

// TestClusterCheckpoint: the elected replica publishes checkpoints of its
// data directory to the shared one; once the topic has lost every record
// the newest checkpoint holds (retention), a new replica with an empty
// data directory starts from that checkpoint, reads only the topic's tail,
// holds the catalogue written before it, and answers exactly as the
// replica that wrote everything; one without the shared directory cannot
// start on that topic, and says why.
func TestClusterCheckpoint(t *testing.T) {
	brokers := shared.Kafka(t).ListenAddrs()
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	conf := func(name string) config.Config {
		cfg := clusterConfig(t, brokers, filepath.Join(root, name))
		cfg.Kafka.ModelsDir, cfg.Kafka.SessionTimeout = shared, config.Duration(time.Second)
		cfg.Kafka.CheckpointEvery = config.Duration(100 * time.Millisecond)
		cfg.SnapshotEvery = 1000
		return cfg
	}
	a := startNode(t, conf("a"))
	seedShop(t, a)
	post := func(round int) string {
		evs := dataset.Synthetic(dataset.SynthConfig{Users: 100, Items: 200, Events: 2500, Seed: uint64(round + 1), Start: time.Unix(1_700_000_000+int64(round)*100_000, 0), Step: time.Second})
		var tok string
		for i := 0; i < len(evs); i += 500 {
			resp, raw := do(t, "POST", a.URL+"/v1/events", "", mustJSON(t, evs[i:i+500]))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST events: %d %s", resp.StatusCode, raw)
			}
			tok = resp.Header.Get("X-Streamrec-Token")
		}
		return tok
	}
	tok := post(0)

	// a is elected (the only replica) and publishes a checkpoint of all
	// it holds.
	var cp checkpoint
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if list := checkpoints(checkpointsDir(conf("a"))); len(list) > 0 && list[0].seq >= mustUint(t, tok) {
			cp = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint through %s published", tok)
		}
	}
	if snaps, _ := filepath.Glob(filepath.Join(cp.path, "snapshots", "engine-*.snap")); len(snaps) != 1 {
		t.Fatalf("the checkpoint holds model snapshots %v, want one", snaps)
	}
	// Retention takes every record the checkpoint holds; more come after.
	deleteRecords(t, brokers, "log", int64(cp.seq))
	tok = post(1)

	b := startNode(t, conf("b"))
	// a goes on publishing: b starts from the newest checkpoint there is.
	if got := b.checkpointSeq.Load(); got < cp.seq {
		t.Fatalf("the new replica started from checkpoint %d, want %d or newer", got, cp.seq)
	}
	if b.Writer.Applied() < mustUint(t, tok) {
		t.Fatalf("the new replica was ready at %d, before the log's %s", b.Writer.Applied(), tok)
	}
	var item struct{ ID string }
	if code := call(t, "GET", b.URL+"/v1/items/case", nil, &item); code != http.StatusOK || item.ID != "case" {
		t.Fatalf("the new replica lacks the catalogue written before the checkpoint: %d %+v", code, item)
	}
	users := []string{"alice", "u1", "u7", "u42", "u99", "nobody"}
	want := answers(t, a, tok, users)
	if got := answers(t, b, tok, users); got != want {
		t.Fatalf("the replica started from the checkpoint disagrees:\n%s\n%s", want, got)
	}

	// Without the shared directory a new replica cannot start on what is
	// left of the topic.
	cfg := clusterConfig(t, brokers, filepath.Join(root, "c"))
	if err := startFails(t, cfg); err == nil || !strings.Contains(err.Error(), "gone (retention)") {
		t.Fatalf("a new replica without checkpoints on a topic that lost its start: %v, want the start refused", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSeedFromCheckpointResumes: a copy interrupted before it was complete
// is made again; one interrupted while its files were moved into place is
// finished; a data directory that holds a store is left alone.
func TestSeedFromCheckpointResumes(t *testing.T) {
	root := t.TempDir()
	cfg := config.Default()
	cfg.Kafka.Brokers, cfg.Kafka.ModelsDir = []string{"unused:9092"}, filepath.Join(root, "shared")
	cp := filepath.Join(checkpointsDir(cfg), fmt.Sprintf("%s%020d", checkpointPrefix, 42))
	files := map[string]string{"MANIFEST-000001": "m", "000002.sst": "s", "snapshots/engine-00000000000000000040.snap": "e"}
	for name, body := range files {
		write(t, filepath.Join(cp, name), body)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	holds := func(dir string) error {
		for name, body := range files {
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != body {
				return fmt.Errorf("%s: %q %v", name, got, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, seedDir)); !os.IsNotExist(err) {
			return fmt.Errorf("the staging directory is left: %v", err)
		}
		return nil
	}
	for _, tc := range []struct {
		name    string
		prepare func(data string)
		seq     uint64
	}{
		{"empty", func(string) {}, 42},
		{"copy cut short", func(data string) { write(t, filepath.Join(data, seedDir, "MANIFEST-000001"), "half") }, 42},
		{"move cut short", func(data string) {
			for name, body := range files {
				write(t, filepath.Join(data, seedDir, name), body)
			}
			write(t, filepath.Join(data, seedDir, seedComplete), "")
			if err := os.Rename(filepath.Join(data, seedDir, "MANIFEST-000001"), filepath.Join(data, "MANIFEST-000001")); err != nil {
				t.Fatal(err)
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			cfg.Data = filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			tc.prepare(cfg.Data)
			seq, err := seedFromCheckpoint(cfg, log)
			if err != nil || seq != tc.seq {
				t.Fatalf("seed: %d %v, want %d", seq, err, tc.seq)
			}
			if err := holds(cfg.Data); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A store already there: nothing copied.
	cfg.Data = filepath.Join(root, "own")
	write(t, filepath.Join(cfg.Data, "MANIFEST-000009"), "mine")
	if seq, err := seedFromCheckpoint(cfg, log); err != nil || seq != 0 {
		t.Fatalf("seed over a store: %d %v", seq, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Data, "000002.sst")); !os.IsNotExist(err) {
		t.Fatalf("a checkpoint was copied over a data directory that holds a store: %v", err)
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
