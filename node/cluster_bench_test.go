package node

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamrec/streamrec/cluster"
	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/store"
)

// BenchmarkClusterCatchUp: a new replica (empty data directory) catches up
// with a log of 500,000 events, from the topic's start or from a shared
// checkpoint — ml-100k five times over, each round's
// users new ones (r0-1, r1-1, ...), its times after the round before — in
// a 3-broker in-process Kafka cluster (kfake, over
// loopback): fetch, decode, de-duplicate, keep the local copy (fsync per
// fetch), apply to every model. Reported as events/s from the start of the
// replica to ready (the store's open and the models' rebuild included;
// from a checkpoint: its copy too).
func BenchmarkClusterCatchUp(b *testing.B) {
	d, err := dataset.Load(shared.Dataset(b, "ml-100k"), nil)
	if err != nil {
		b.Fatal(err)
	}
	brokers := shared.Kafka(b).ListenAddrs()
	ctx := context.Background()
	l, err := cluster.Open(ctx, cluster.Config{Brokers: brokers, Topic: "log"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	table, _ := cfg.Table()
	pipe := pipeline.New(cfg.PipelineConfig(table))
	const rounds = 5
	span := d.Events[len(d.Events)-1].Timestamp.Sub(d.Events[0].Timestamp.Time) + time.Hour
	var recs []event.Record
	total := 0
	for r := range rounds {
		for i := range d.Events {
			in := d.Events[i]
			in.UserID = fmt.Sprintf("r%d-%s", r, in.UserID)
			in.EventID = fmt.Sprintf("r%d-%d", r, i)
			ts := *in.Timestamp
			ts.Time = ts.Add(time.Duration(r) * span)
			in.Timestamp = &ts
			ev, err := pipe.Process(&in, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
			if len(recs) == 5000 {
				if _, err := l.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
				total += len(recs)
				recs = recs[:0]
			}
		}
	}
	if _, err := l.Append(ctx, recs); err != nil {
		b.Fatal(err)
	}
	total += len(recs)
	l.Close()
	shared := filepath.Join(b.TempDir(), "shared")
	replica := func(b *testing.B, name string, fromCheckpoint bool) (*Node, config.Config, time.Duration, func()) {
		c := quietConfig(b)
		c.Data = filepath.Join(b.TempDir(), name)
		c.Kafka.Brokers, c.Kafka.Topic = brokers, "log"
		c.SnapshotEvery = 0
		if fromCheckpoint {
			c.Kafka.ModelsDir, c.Kafka.CheckpointEvery = shared, 0
		}
		start := time.Now()
		n, err := Open(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.Serve(sctx, ln) }()
		<-n.Ready()
		took := time.Since(start)
		if got := n.Writer.Applied(); got != uint64(total) {
			b.Fatalf("ready at %d of %d records", got, total)
		}
		return n, c, took, func() { cancel(); <-done }
	}
	report := func(b *testing.B, took time.Duration) {
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(took.Seconds(), "s-to-ready")
	}
	b.Run("from=topic", func(b *testing.B) {
		for i := range b.N {
			_, _, took, stop := replica(b, fmt.Sprint("replica", i), false)
			report(b, took)
			stop()
		}
	})
	// A replica that caught up publishes a checkpoint (its copy of the
	// log, the catalogue and a model snapshot); new replicas start from it.
	b.Run("from=checkpoint", func(b *testing.B) {
		b.StopTimer()
		_, pc, _, stop := replica(b, "publisher", true)
		stop() // writes a model snapshot of all 500,000
		st, err := store.Open(pc.Data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (&Node{Store: st, cfg: pc}).publishCheckpoint(); err != nil {
			b.Fatal(err)
		}
		st.Close()
		var size int64
		filepath.WalkDir(checkpointsDir(pc), func(_ string, d fs.DirEntry, err error) error {
			if info, ierr := d.Info(); err == nil && ierr == nil && !d.IsDir() {
				size += info.Size()
			}
			return err
		})
		b.StartTimer()
		for i := range b.N {
			n, _, took, stop := replica(b, fmt.Sprint("replica", i), true)
			if n.checkpointSeq.Load() == 0 {
				b.Fatal("the replica did not start from the checkpoint")
			}
			report(b, took)
			b.ReportMetric(float64(size)/1e6, "MB-checkpoint")
			stop()
		}
	})
}
