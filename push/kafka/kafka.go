// Package kafka publishes updated recommendations to a Kafka topic (with
// twmb/franz-go): each message is one user's new list, keyed by the user id
// (so one user's updates stay in order on one partition), its value the
// same JSON object GET /v1/users/{id}/recommendations answers, and a header
// "id" with the list's identity (the SSE id).
//
// Invariant: publishing never blocks the caller (a stream, or the node's
// follower of a configured user) on the brokers: records are buffered and
// produced in the background (acks from all in-sync replicas, idempotent);
// what cannot be produced is counted, never retried by the caller.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says where to publish.
type Config struct {
	Brokers []string
	Topic   string
	// MaxBuffered bounds the records waiting to be produced; beyond it a
	// new one is dropped and counted (default 10,000).
	MaxBuffered int
}

// Publisher produces recommendation updates.
type Publisher struct {
	cl      *kgo.Client
	topic   string
	sent    atomic.Int64
	failed  atomic.Int64
	dropped atomic.Int64
}

// New connects a publisher (the brokers are dialled lazily: an unreachable
// cluster shows as failed records, not as an error here).
func New(cfg Config) (*Publisher, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("kafka: brokers and a topic are needed")
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 10000
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
		kgo.ProduceRequestTimeout(10*time.Second),
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &Publisher{cl: cl, topic: cfg.Topic}, nil
}

// Publish queues user's new list (body: the answer's JSON object; id: the
// list's identity). It returns at once; body may be reused after.
func (p *Publisher) Publish(user, id string, body []byte) {
	r := &kgo.Record{Key: []byte(user), Value: append([]byte(nil), body...),
		Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(id)}}}
	p.cl.TryProduce(context.Background(), r, p.done) // a full buffer fails at once: done counts it
}

func (p *Publisher) done(_ *kgo.Record, err error) {
	switch {
	case err == nil:
		p.sent.Add(1)
	case errors.Is(err, kgo.ErrMaxBuffered):
		p.dropped.Add(1)
	default:
		p.failed.Add(1)
	}
}

// Stats are the records produced, failed (the brokers refused them or did
// not answer in time) and dropped (the buffer was full).
func (p *Publisher) Stats() (sent, failed, dropped int64) {
	return p.sent.Load(), p.failed.Load(), p.dropped.Load()
}

// Close produces what is buffered, waiting at most until ctx is done, and
// closes the client.
func (p *Publisher) Close(ctx context.Context) {
	_ = p.cl.Flush(ctx)
	p.cl.Close()
}
