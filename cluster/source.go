package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
)

// SourceConfig says which topic of the application's own events to
// consume.
type SourceConfig struct {
	Brokers []string
	Topic   string
	// Group is the consumer group: the replicas share the topic's
	// partitions, each message is taken by one of them.
	Group string
	// DeadLetter is the topic invalid messages and events go to, with the
	// reason in a header.
	DeadLetter string
	// MaxEvents bounds the events of one message (limits.max_batch_events).
	MaxEvents int
}

// Sink stores records durably in the log, returning once they are
// (ingest.Writer.Submit).
type Sink func(ctx context.Context, recs []event.Record) error

// Consume takes the application's events from cfg.Topic (each message a
// JSON event, a JSON array of them, or NDJSON, in the schema of POST
// /v1/events) through the same pipeline as HTTP, until ctx ends. A batch's
// offsets are committed only after its events are in the log and its
// invalid parts in the dead-letter topic: nothing is silently dropped, and
// a crash in between re-reads (event_id de-duplication makes that safe).
func Consume(ctx context.Context, cfg SourceConfig, pipe *pipeline.Pipeline, sink Sink, log *slog.Logger) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic(cfg.DeadLetter),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return fmt.Errorf("cluster: source consumer: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var recs []event.Record
		var dead []*kgo.Record
		var taken []*kgo.Record
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("source topic: fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			taken = append(taken, r)
			good, bad := decodeMessage(r.Value, pipe, cfg.MaxEvents)
			recs = append(recs, good...)
			if bad != "" {
				dead = append(dead, &kgo.Record{Key: r.Key, Value: r.Value, Headers: []kgo.RecordHeader{
					{Key: "reason", Value: []byte(bad)},
					{Key: "source", Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)},
				}})
			}
		})
		if len(taken) == 0 {
			continue
		}
		// Into the log first (retried until it is: a retry is never applied twice).
		if len(recs) > 0 && !untilDone(ctx, func() error { return sink(ctx, recs) }, func(err error) {
			log.Warn("source topic: the log did not take the events; retrying", "events", len(recs), "err", err)
		}) {
			return nil
		}
		if len(dead) > 0 && !untilDone(ctx, func() error { return cl.ProduceSync(ctx, dead...).FirstErr() }, func(err error) {
			log.Warn("source topic: the dead-letter topic did not take the invalid messages; retrying", "messages", len(dead), "err", err)
		}) {
			return nil
		}
		if err := cl.CommitRecords(ctx, taken...); err != nil && ctx.Err() == nil {
			log.Warn("source topic: cannot commit the offsets; the messages will be read again (de-duplicated)", "err", err)
		}
	}
}

// decodeMessage turns one message into records, and says what was wrong
// with it ("" when nothing): the events that pass the pipeline are kept,
// the others named.
func decodeMessage(v []byte, pipe *pipeline.Pipeline, maxEvents int) ([]event.Record, string) {
	trimmed := bytes.TrimSpace(v)
	ndjson := len(trimmed) > 0 && trimmed[0] == '{' && bytes.Contains(trimmed, []byte("\n"))
	ins, rejected, err := pipeline.Decode(bytes.NewReader(trimmed), ndjson, maxEvents)
	if err != nil {
		return nil, "the message is not an event, an array of events or NDJSON events: " + err.Error()
	}
	now := time.Now()
	var recs []event.Record
	for i := range ins {
		ev, err := pipe.Process(&ins[i], now)
		if err != nil {
			var ve *pipeline.ValidationError
			if errors.As(err, &ve) {
				rejected = append(rejected, pipeline.Rejection{Index: i, Field: ve.Field, Reason: ve.Reason})
			} else {
				rejected = append(rejected, pipeline.Rejection{Index: i, Reason: err.Error()})
			}
			continue
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
	}
	if len(rejected) == 0 {
		return recs, ""
	}
	b, _ := json.Marshal(rejected)
	return recs, fmt.Sprintf("%d events rejected (the others are in the log): %s", len(rejected), b)
}

// untilDone calls fn a second apart until it succeeds (true) or ctx ends
// (false), telling failed of each failure.
func untilDone(ctx context.Context, fn func() error, failed func(error)) bool {
	for {
		err := fn()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		failed(err)
		time.Sleep(time.Second)
	}
}
