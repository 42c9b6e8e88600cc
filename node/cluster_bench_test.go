package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamrec/streamrec/cluster"
	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/pipeline"
)

// BenchmarkClusterCatchUp: a new replica (empty data directory) catches up
// with a log of 500,000 events — ml-100k five times over, each round's
// users new ones (r0-1, r1-1, ...), its times after the round before — in
// a 3-broker in-process Kafka cluster (kfake, over
// loopback): fetch, decode, de-duplicate, keep the local copy (fsync per
// fetch), apply to every model. Reported as events/s from the start of the
// replica to ready (the store's open and the models' rebuild included).
func BenchmarkClusterCatchUp(b *testing.B) {
	d, err := dataset.Load(shared.Dataset(b, "ml-100k"), nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
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
	b.ResetTimer()
	for i := range b.N {
		c := quietConfig(b)
		c.Data = filepath.Join(b.TempDir(), fmt.Sprint("replica", i))
		c.Kafka.Brokers, c.Kafka.Topic = brokers, "log"
		c.SnapshotEvery = 0
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
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(took.Seconds(), "s-to-ready")
		cancel()
		<-done
	}
}
