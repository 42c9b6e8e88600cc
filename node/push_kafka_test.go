package node

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaList is one message of the topic of updated recommendations.
type kafkaList struct {
	User, ID string
	List     streamList
}

// topicReader reads the topic from its start in the background.
func topicReader(t *testing.T, brokers []string, topic string) <-chan kafkaList {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan kafkaList, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				m := kafkaList{User: string(r.Key)}
				for _, h := range r.Headers {
					if h.Key == "id" {
						m.ID = string(h.Value)
					}
				}
				if err := json.Unmarshal(r.Value, &m.List); err != nil {
					m.ID = "undecodable: " + err.Error()
				}
				out <- m
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return out
}

// nextFor waits for the next message about user (others are skipped).
func nextFor(t *testing.T, msgs <-chan kafkaList, user string, within time.Duration) kafkaList {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-msgs:
			if m.User == user {
				return m
			}
		case <-deadline:
			t.Fatalf("no message for %s on the topic within %s", user, within)
		}
	}
}

// TestPushToKafka: with streams.kafka configured against a 3-broker
// in-process Kafka cluster (kfake), the lists of a followed user are on the
// topic (keyed by user, the list's id in a header, the answer's JSON as
// value) at once and after each of their events, fresh; and so is every
// list an open stream sends.
func TestPushToKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "recs"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := quietConfig(t)
	cfg.Streams.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Streams.Kafka.Topic = "recs"
	cfg.Streams.Kafka.Users = []string{"alice"}
	cfg.Streams.Kafka.N = 1
	n := startNode(t, cfg)
	seedShop(t, n)
	msgs := topicReader(t, cfg.Streams.Kafka.Brokers, "recs")

	// The followed user's first list came before the shop existed; the
	// shop's events are others': wait for a list with socks or take it now.
	first := nextFor(t, msgs, "alice", 10*time.Second)
	if first.ID == "" || first.List.UserID != "alice" {
		t.Fatalf("first message %+v: want alice's list with an id", first)
	}
	post(t, n, `[{"user_id":"alice","item_id":"socks","type":"view"}]`)
	want := ids(recs(t, n, "alice", "?n=1"))
	var m kafkaList
	for m = nextFor(t, msgs, "alice", 5*time.Second); !slices.Equal(ids(m.List.recReply), want); m = nextFor(t, msgs, "alice", 5*time.Second) {
	}
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	next := nextFor(t, msgs, "alice", 5*time.Second)
	if got := pairs(next.List.recReply); !slices.Equal(got, []string{"case/item_knn"}) || next.ID == m.ID {
		t.Fatalf("after alice viewed the phone the topic got %v (id %s, was %s), want case from item_knn", got, next.ID, m.ID)
	}

	// An open stream's lists are published too, with the stream's ids.
	s := openStream(t, n, "bob", "?n=1", "")
	ev, _ := s.list(2 * time.Second)
	if got := nextFor(t, msgs, "bob", 5*time.Second); got.ID != ev.ID {
		t.Fatalf("the topic has bob's list %s, the stream sent %s", got.ID, ev.ID)
	}
	post(t, n, `[{"user_id":"bob","item_id":"phone","type":"view"}]`)
	ev, l := s.list(2 * time.Second)
	got := nextFor(t, msgs, "bob", 5*time.Second)
	if got.ID != ev.ID || !slices.Equal(pairs(got.List.recReply), pairs(l.recReply)) {
		t.Fatalf("after bob's event the topic has %s %v, the stream sent %s %v", got.ID, pairs(got.List.recReply), ev.ID, pairs(l.recReply))
	}
}
