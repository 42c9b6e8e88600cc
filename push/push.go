// Package push tells open recommendation streams that their user's list may
// have changed: after the writer applied records (the user's own events,
// catalogue changes) and after a model swap.
//
// Invariant: a signal is never lost and never blocks the writer. Each
// subscription holds one pending signal at most (signals coalesce): a
// stream that is slow to recompute sees one signal for many changes, and
// recomputes once, from the newest state.
package push

import (
	"sync"

	"github.com/streamrec/streamrec/event"
)

// Hub knows the open subscriptions, by user.
type Hub struct {
	mu    sync.RWMutex
	users map[string]map[*Sub]struct{}
	n     int
}

// Sub is one open subscription to a user's changes.
type Sub struct {
	hub  *Hub
	user string
	c    chan struct{}
}

// New returns an empty hub.
func New() *Hub { return &Hub{users: map[string]map[*Sub]struct{}{}} }

// Subscribe opens a subscription to user's changes; Close it when done.
func (h *Hub) Subscribe(user string) *Sub {
	s := &Sub{hub: h, user: user, c: make(chan struct{}, 1)}
	h.mu.Lock()
	m := h.users[user]
	if m == nil {
		m = map[*Sub]struct{}{}
		h.users[user] = m
	}
	m[s] = struct{}{}
	h.n++
	h.mu.Unlock()
	return s
}

// C receives after a change that may alter the user's list.
func (s *Sub) C() <-chan struct{} { return s.c }

// Close ends the subscription; it is safe to call more than once.
func (s *Sub) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.users[s.user]
	if _, ok := m[s]; !ok {
		return
	}
	delete(m, s)
	h.n--
	if len(m) == 0 {
		delete(h.users, s.user)
	}
}

func (s *Sub) signal() {
	select {
	case s.c <- struct{}{}:
	default: // one is pending already
	}
}

// Len is the number of open subscriptions.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.n
}

// Applied signals the subscriptions the records may concern: the users of
// events; every subscription when the catalogue changed (a hidden or
// deleted item may be on anyone's list) or an experiment did. Other
// records (impressions, user profiles) change no list of their own.
func (h *Hub) Applied(recs []event.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.n == 0 {
		return
	}
	for i := range recs {
		switch recs[i].Kind {
		case event.KindEvent:
			for s := range h.users[recs[i].Event.User] {
				s.signal()
			}
		case event.KindItemPut, event.KindItemDelete, event.KindExperiment:
			h.signalAll() // an experiment started, stopped or changed may change anyone's variant
			return
		}
	}
}

// All signals every subscription (a model was swapped).
func (h *Hub) All() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.signalAll()
}

func (h *Hub) signalAll() {
	for _, m := range h.users {
		for s := range m {
			s.signal()
		}
	}
}
