package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
)

// TestAppendRetryIsNotDuplicated: the broker writes a produce request but
// its answer is lost (the connection drops after the write), so the
// producer sends the same batch again. The idempotent producer's retry is
// recognised by the broker: the log holds each record once, and Append
// answers the sequence numbers of the first write. Start and End bound
// the log; Start moves when the oldest records are deleted.
func TestAppendRetryIsNotDuplicated(t *testing.T) {
	kc := shared.Kafka(t)
	ctx := context.Background()
	l, err := Open(ctx, Config{Brokers: kc.ListenAddrs(), Topic: "log"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, events(0, 5)); err != nil {
		t.Fatal(err)
	}
	// The raw client that hands the intercepted request to the broker.
	raw, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var armed, written atomic.Bool
	armed.Store(true)
	kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !armed.CompareAndSwap(true, false) {
			kc.DropControl()
			return nil, nil, false // the forwarded write and the retry: as usual
		}
		node := kc.CurrentNode()
		// Write it for real (yielding, so the broker can serve the
		// forwarded copy), then drop the producer's connection unanswered.
		kc.SleepControl(func() {
			resp, err := raw.Broker(int(node)).Request(context.Background(), req)
			if p, ok := resp.(*kmsg.ProduceResponse); err == nil && ok && len(p.Topics) == 1 && p.Topics[0].Partitions[0].ErrorCode == 0 {
				written.Store(true)
			}
		})
		return nil, errors.New("the answer is lost"), true
	})
	seqs, err := l.Append(ctx, events(5, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !written.Load() {
		t.Fatal("the intercepted request was not written by the broker")
	}
	for i, s := range seqs {
		if s != uint64(6+i) {
			t.Fatalf("the retried batch got sequence numbers %v, want 6..10", seqs)
		}
	}
	if end, err := l.End(ctx); err != nil || end != 10 {
		t.Fatalf("the log holds %d records (%v) after a retried write of 5 onto 5: want 10, each once", end, err)
	}
	got := map[string]int{}
	errDone := errors.New("read through 10")
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = l.Tail(tctx, 1, func(first uint64, recs []event.Record) error {
		for _, r := range recs {
			got[r.Event.ID]++
		}
		if first+uint64(len(recs)) > 10 {
			return errDone
		}
		return nil
	})
	for _, r := range events(0, 10) {
		if got[r.Event.ID] != 1 {
			t.Fatalf("event %s is in the log %d times", r.Event.ID, got[r.Event.ID])
		}
	}

	// Start: 1 with the whole history, then past what is deleted.
	if s, err := l.Start(ctx); err != nil || s != 1 {
		t.Fatalf("Start = %d, %v; want 1", s, err)
	}
	del := kmsg.NewPtrDeleteRecordsRequest()
	dt := kmsg.NewDeleteRecordsRequestTopic()
	dt.Topic = "log"
	dp := kmsg.NewDeleteRecordsRequestTopicPartition()
	dp.Partition, dp.Offset = 0, 4
	dt.Partitions = append(dt.Partitions, dp)
	del.Topics = append(del.Topics, dt)
	del.TimeoutMillis = 10000
	if _, err := del.RequestWith(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if s, err := l.Start(ctx); err != nil || s != 5 {
		t.Fatalf("Start after deleting offsets 0-3 = %d, %v; want 5", s, err)
	}
}
