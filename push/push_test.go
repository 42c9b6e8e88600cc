package push

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

// signalled reports whether s has a signal pending, taking it.
func signalled(s *Sub) bool {
	select {
	case <-s.C():
		return true
	default:
		return false
	}
}

func eventOf(user string) event.Record {
	return event.Record{Kind: event.KindEvent, Event: event.Event{User: user, Item: "i"}}
}

func TestSubscribeClose(t *testing.T) {
	h := New()
	a := h.Subscribe("alice")
	a2 := h.Subscribe("alice")
	b := h.Subscribe("bob")
	if got := h.Len(); got != 3 {
		t.Fatalf("Len after three subscriptions: %d", got)
	}
	a.Close()
	a.Close() // a second Close changes nothing
	if got := h.Len(); got != 2 {
		t.Fatalf("Len after closing one twice: %d", got)
	}
	h.Applied([]event.Record{eventOf("alice")})
	if signalled(a) {
		t.Fatal("a closed subscription was signalled")
	}
	if !signalled(a2) {
		t.Fatal("the other subscription of the same user was not signalled")
	}
	a2.Close()
	b.Close()
	if got := h.Len(); got != 0 {
		t.Fatalf("Len after closing all: %d", got)
	}
	if len(h.users) != 0 {
		t.Fatalf("users left in the hub after every subscription closed: %v", h.users)
	}
}

func TestSignalsCoalesce(t *testing.T) {
	h := New()
	s := h.Subscribe("alice")
	defer s.Close()
	h.Applied([]event.Record{eventOf("alice")})
	h.Applied([]event.Record{eventOf("alice"), eventOf("alice")})
	h.All()
	if !signalled(s) {
		t.Fatal("no signal after four changes")
	}
	if signalled(s) {
		t.Fatal("a second signal pending: signals must coalesce into one")
	}
	h.All()
	if !signalled(s) {
		t.Fatal("no signal after a change that came after the receive")
	}
}

func TestAppliedSignals(t *testing.T) {
	tests := []struct {
		name string
		recs []event.Record
		want map[string]bool // user: signalled
	}{
		{"an event signals its user only", []event.Record{eventOf("alice")},
			map[string]bool{"alice": true, "bob": false, "carol": false}},
		{"a group signals each of its users", []event.Record{eventOf("alice"), eventOf("carol"), eventOf("dave")},
			map[string]bool{"alice": true, "bob": false, "carol": true}},
		{"an item put signals all", []event.Record{{Kind: event.KindItemPut, Item: event.Item{ID: "x"}}},
			map[string]bool{"alice": true, "bob": true, "carol": true}},
		{"an item delete signals all", []event.Record{eventOf("alice"), {Kind: event.KindItemDelete, Item: event.Item{ID: "x"}}},
			map[string]bool{"alice": true, "bob": true, "carol": true}},
		{"an experiment change signals all", []event.Record{{Kind: event.KindExperiment, Doc: []byte(`{}`)}},
			map[string]bool{"alice": true, "bob": true, "carol": true}},
		{"an impression signals none", []event.Record{{Kind: event.KindImpression, Impression: event.Impression{User: "alice"}}},
			map[string]bool{"alice": false, "bob": false, "carol": false}},
		{"an event of a user with no stream signals none", []event.Record{eventOf("zed")},
			map[string]bool{"alice": false, "bob": false, "carol": false}},
		{"no records signal none", nil,
			map[string]bool{"alice": false, "bob": false, "carol": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New()
			subs := map[string]*Sub{}
			for user := range tt.want {
				subs[user] = h.Subscribe(user)
				defer subs[user].Close()
			}
			h.Applied(tt.recs)
			for user, want := range tt.want {
				if got := signalled(subs[user]); got != want {
					t.Errorf("%s signalled: %v, want %v", user, got, want)
				}
			}
		})
	}
}

func TestAllSignalsEvery(t *testing.T) {
	h := New()
	h.All() // no subscription: nothing to do, nothing to fail
	var subs []*Sub
	for i := range 10 {
		subs = append(subs, h.Subscribe(fmt.Sprintf("u%d", i%4)))
	}
	h.All()
	for i, s := range subs {
		if !signalled(s) {
			t.Errorf("subscription %d not signalled by All", i)
		}
		s.Close()
	}
}

// TestConcurrentSubscribeApplied runs subscriptions opening and closing
// while the writer signals (run it with -race): no signal blocks, and a
// subscription open across an Applied of its user is signalled.
func TestConcurrentSubscribeApplied(t *testing.T) {
	h := New()
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%50 == 0 {
					h.All()
				}
				h.Applied([]event.Record{eventOf(fmt.Sprintf("u%d", (i+w)%8))})
			}
		}()
	}
	var readers sync.WaitGroup
	for r := range 8 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			user := fmt.Sprintf("u%d", r)
			for range 200 {
				s := h.Subscribe(user)
				signalled(s)
				s.Close()
			}
			// Open across a signal of its own user: it must see one.
			s := h.Subscribe(user)
			defer s.Close()
			h.Applied([]event.Record{eventOf(user)})
			select {
			case <-s.C():
			case <-time.After(5 * time.Second):
				t.Errorf("%s: no signal after an Applied of its event", user)
			}
		}()
	}
	readers.Wait()
	close(stop)
	writers.Wait()
	if got := h.Len(); got != 0 {
		t.Fatalf("Len after every subscription closed: %d", got)
	}
}
