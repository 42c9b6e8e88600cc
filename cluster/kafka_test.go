package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
)

func fakeCluster(t *testing.T) []string { return shared.Kafka(t).ListenAddrs() }

func events(from, n int) []event.Record {
	out := make([]event.Record, n)
	for i := range out {
		out[i] = event.Record{Kind: event.KindEvent, Event: event.Event{ID: fmt.Sprint("e", from+i), User: "u", Item: fmt.Sprint("i", from+i), Type: event.View, Time: time.Unix(1_700_000_000, 0).UTC(), Weight: 1}}
	}
	return out
}

// TestLogAppendTail: sequence numbers are offsets + 1, dense, in the order
// appended; Tail gives every record from a sequence number on, decoded as
// they were; End is the last one.
func TestLogAppendTail(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Brokers: fakeCluster(t), Topic: "log"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var seqs []uint64
	for b := range 3 {
		s, err := l.Append(ctx, append(events(b*10, 10), event.Record{Kind: event.KindSkip}))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s...)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("record %d got sequence %d", i, s)
		}
	}
	if end, err := l.End(ctx); err != nil || end != 33 {
		t.Fatalf("End = %d, %v; want 33", end, err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []event.Record
	next := uint64(12)
	err = l.Tail(tctx, 12, func(first uint64, recs []event.Record) error {
		if first != next {
			t.Errorf("a fetch starts at %d, want %d", first, next)
		}
		next += uint64(len(recs))
		got = append(got, recs...)
		if next > 33 {
			cancel()
		}
		return nil
	})
	if err != context.Canceled {
		t.Fatalf("Tail: %v", err)
	}
	if len(got) != 22 || got[0].Kind != event.KindEvent || got[0].Event.ID != "e10" || got[10].Kind != event.KindSkip {
		t.Fatalf("tail from 12: %d records, first %+v, eleventh %+v", len(got), got[0], got[10])
	}
}

// TestElectOneLeader: of two members one leads at a time; when the leader
// leaves, the other leads.
func TestElectOneLeader(t *testing.T) {
	brokers := fakeCluster(t)
	ctx := context.Background()
	l, err := Open(ctx, Config{Brokers: brokers, Topic: "log"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var leading [2]atomic.Bool
	var cancels [2]context.CancelFunc
	done := make(chan struct{}, 2)
	for i := range 2 {
		ectx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		go func() {
			defer func() { done <- struct{}{} }()
			if err := l.Elect(ectx, "log-trainer", "log-trainer", time.Second, func(v bool) { leading[i].Store(v) }, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	leader := waitLeader(t, &leading, -1)
	cancels[leader]()
	<-done
	if other := waitLeader(t, &leading, leader); other == leader {
		t.Fatal("the leader that left still leads")
	}
}

// waitLeader waits until exactly one member other than not leads, and
// returns it.
func waitLeader(t *testing.T, leading *[2]atomic.Bool, not int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		a, b := leading[0].Load(), leading[1].Load()
		if a != b {
			i := 0
			if b {
				i = 1
			}
			if i != not {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no single leader: %v %v", leading[0].Load(), leading[1].Load())
	return -1
}
