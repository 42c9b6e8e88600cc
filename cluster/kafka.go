// Package cluster runs streamrec as several replicas on an existing
// distributed engine: a Kafka topic is the log every replica writes to and
// consumes in full (twmb/franz-go).
//
// The log is one partition: Kafka orders records within a partition only,
// and every replica must apply the same records in the same order to reach
// the same state (the models are deterministic consumers of one sequence).
// A partition takes far more than the events one engine applies (tens of
// megabytes a second against about two for 20,000 events a second of
// ~100 bytes); docs/SCALING.md says what to do beyond.
//
// Invariant: a record's sequence number is its offset + 1, the same on
// every replica, so a sequence number is a consistency token any replica
// understands.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/store"
)

// Config says where the log is.
type Config struct {
	Brokers []string
	Topic   string
	// Replication is the replication factor of the topic when it is
	// created here (default: 3, or the brokers seen if fewer).
	Replication int
	// Retention is the topic's retention.ms when it is created here; 0:
	// the whole history is kept (what a replica with an empty data
	// directory needs unless a checkpoint gives it the start).
	Retention time.Duration
}

// Log is the Kafka topic as streamrec's log: Append produces, Tail
// consumes from a sequence number on.
type Log struct {
	cfg       Config
	cl        *kgo.Client // producing and admin requests
	end       atomic.Uint64
	fetchErrs atomic.Int64 // transient fetch errors, retried
}

// FetchErrors counts the fetch errors Tail retried.
func (l *Log) FetchErrors() int64 { return l.fetchErrs.Load() }

// Open connects to the cluster and makes sure the topic exists, with one
// partition.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return nil, errors.New("cluster: kafka brokers and a topic are needed")
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent: the default with all acks
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: kafka client: %w", err)
	}
	l := &Log{cfg: cfg, cl: cl}
	if err := l.ensure(ctx, cfg.Topic); err != nil {
		cl.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the producer.
func (l *Log) Close() { l.cl.Close() }

// ensure makes sure topic exists, with one partition.
func (l *Log) ensure(ctx context.Context, topic string) error {
	rf := l.cfg.Replication
	if rf <= 0 {
		meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, l.cl)
		if err != nil {
			return fmt.Errorf("cluster: kafka metadata: %w", err)
		}
		rf = min(3, max(1, len(meta.Brokers)))
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, 1, int16(rf)
	// The log is the source of truth: kept whole (or as long as the
	// checkpoints need it), never compacted; an acknowledged write is on
	// two replicas at least (when there are two), and no out-of-sync
	// replica may become leader and lose it.
	retention := "-1"
	if l.cfg.Retention > 0 && topic == l.cfg.Topic {
		retention = fmt.Sprint(l.cfg.Retention.Milliseconds())
	}
	for k, v := range map[string]string{
		"min.insync.replicas":            fmt.Sprint(min(2, rf)),
		"retention.ms":                   retention,
		"retention.bytes":                "-1",
		"cleanup.policy":                 "delete",
		"unclean.leader.election.enable": "false",
	} {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, l.cl)
	if err != nil {
		return fmt.Errorf("cluster: create topic %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cluster: create topic %s: %w", topic, err)
		}
	}
	// A topic made elsewhere must have one partition too: the models need
	// one order.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	meta, err := mreq.RequestWith(ctx, l.cl)
	if err != nil {
		return fmt.Errorf("cluster: metadata of %s: %w", topic, err)
	}
	for _, mt := range meta.Topics {
		if n := len(mt.Partitions); n != 1 {
			return fmt.Errorf("cluster: topic %s has %d partitions; streamrec's log needs exactly 1 (the models apply one order)", topic, n)
		}
	}
	return nil
}

// Append produces recs (acks from every in-sync replica, idempotent) and
// returns each one's sequence number, in order.
func (l *Log) Append(ctx context.Context, recs []event.Record) ([]uint64, error) {
	rs := make([]*kgo.Record, len(recs))
	for i := range recs {
		b, err := store.EncodeRecord(nil, &recs[i])
		if err != nil {
			return nil, err
		}
		rs[i] = &kgo.Record{Value: b, Partition: 0}
	}
	res := l.cl.ProduceSync(ctx, rs...)
	seqs := make([]uint64, len(recs))
	for i, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("cluster: produce: %w", r.Err)
		}
		seqs[i] = uint64(r.Record.Offset) + 1
	}
	return seqs, nil
}

// End is the sequence number of the last record in the log: asked of the
// partition's leader now.
func (l *Log) End(ctx context.Context) (uint64, error) {
	hw, err := l.offset(ctx, -1) // the high watermark
	if err != nil {
		return 0, err
	}
	l.end.Store(hw)
	return hw, nil
}

// Start is the sequence number of the first record the log still holds: 1
// while it holds its whole history, more once retention removed the oldest
// (End+1 when it holds none).
func (l *Log) Start(ctx context.Context) (uint64, error) {
	first, err := l.offset(ctx, -2) // the log start offset
	return first + 1, err
}

// offset asks the partition's leader for the offset of a special
// timestamp (-1: the next offset to be written; -2: the first held).
func (l *Log) offset(ctx context.Context, timestamp int64) (uint64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = l.cfg.Topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, timestamp
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, l.cl)
	if err != nil {
		return 0, fmt.Errorf("cluster: list offsets: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("cluster: list offsets: %w", err)
			}
			return uint64(max(p.Offset, 0)), nil
		}
	}
	return 0, errors.New("cluster: list offsets: no partition in the answer")
}

// RecordAt is the record of sequence number seq, read from the topic.
func (l *Log) RecordAt(ctx context.Context, seq uint64) (event.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rec event.Record
	found := errors.New("found")
	err := l.Tail(ctx, seq, func(first uint64, recs []event.Record) error {
		rec = recs[0]
		return found
	})
	if errors.Is(err, found) {
		return rec, nil
	}
	return rec, fmt.Errorf("cluster: record %d: %w", seq, err)
}

// Seen is the end of the log as last seen by End or Tail (for the lag).
func (l *Log) Seen() uint64 { return l.end.Load() }

// Tail calls fn with the records from sequence number from on, in order,
// a fetch at a time, until ctx ends or fn fails.
func (l *Log) Tail(ctx context.Context, from uint64, fn func(first uint64, recs []event.Record) error) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(l.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.cfg.Topic: {0: kgo.NewOffset().At(int64(from) - 1)}}),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMinBytes(1),
	)
	if err != nil {
		return fmt.Errorf("cluster: kafka consumer: %w", err)
	}
	defer cl.Close()
	next := from
	var recs []event.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Data loss (the log lost records this replica was to read) ends
		// the tail; any other fetch error is one franz-go retries: wait a
		// moment and poll again.
		var ferr, transient error
		fs.EachError(func(_ string, _ int32, err error) {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(err, context.Canceled):
			case errors.As(err, &loss):
				ferr = err
			default:
				transient = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("cluster: fetch: %w", ferr)
		}
		if transient != nil {
			l.fetchErrs.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
		var perr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if hw := uint64(max(p.HighWatermark, 0)); hw > l.end.Load() {
				l.end.Store(hw)
			}
			recs = recs[:0]
			first := next
			for _, r := range p.Records {
				seq := uint64(r.Offset) + 1
				if seq < next {
					continue // fetched again
				}
				if seq != next && perr == nil {
					perr = fmt.Errorf("cluster: the log jumps from sequence %d to %d (records removed by retention: start this replica with an empty data directory, and with kafka.models_dir it starts from the newest shared checkpoint)", next-1, seq)
					return
				}
				rec, err := store.DecodeRecord(r.Value)
				if err != nil {
					perr = fmt.Errorf("cluster: record %d: %w", seq, err)
					return
				}
				recs = append(recs, rec)
				next++
			}
			if len(recs) > 0 && perr == nil {
				perr = fn(first, recs)
			}
		})
		if perr != nil {
			return perr
		}
	}
}
