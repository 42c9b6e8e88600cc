package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Elect keeps this replica a member of the consumer group group on the
// one-partition topic topic (created when missing) until ctx ends, and
// calls onChange(true) when this member is assigned the partition — it is
// the one that leads (trains) — and onChange(false) when it loses it.
// Kafka's group membership decides: when the leader leaves or stops
// heart-beating for sessionTimeout, another member is assigned the
// partition. Nothing is ever produced to the topic.
//
// onError, when set, is told of the errors polling the group returns (a
// session timeout the brokers refuse shows there, and nowhere else).
func (l *Log) Elect(ctx context.Context, topic, group string, sessionTimeout time.Duration, onChange func(leading bool), onError func(error)) error {
	if err := l.ensure(ctx, topic); err != nil {
		return err
	}
	var leading atomic.Bool
	set := func(v bool) {
		if leading.Swap(v) != v {
			onChange(v)
		}
	}
	holds := func(m map[string][]int32) bool {
		for _, p := range m[topic] {
			if p == 0 {
				return true
			}
		}
		return false
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(l.cfg.Brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(max(sessionTimeout/10, 100*time.Millisecond)),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if holds(m) {
				set(true)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if holds(m) {
				set(false)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if holds(m) {
				set(false)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("cluster: election client: %w", err)
	}
	defer func() {
		cl.Close() // leaves the group: another member takes over at once
		set(false)
	}()
	var last time.Time
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx) // the group's callbacks run while polling
		fs.EachError(func(_ string, _ int32, err error) {
			if onError != nil && ctx.Err() == nil && time.Since(last) > 10*time.Second {
				last = time.Now()
				onError(err)
			}
		})
		if err := fs.Err(); err != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // a group error comes back at once: do not spin
		}
	}
	return nil
}
