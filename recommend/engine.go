// Package recommend holds the in-memory state every model reads (dense ids,
// the catalogue's model-relevant fields, user histories) and the models
// themselves, applies log records to them in log order, and answers
// recommendation requests: candidates → merge → rank → filter → respond.
//
// Concurrency: one writer applies records under the write lock; any number of
// readers recommend under the read lock. A read that starts after Apply
// returned sees everything Apply applied (read-your-writes).
//
// Retention (Config.Retention) bounds what the models hold, in log order as
// part of applying records: before a user's event is applied, their oldest
// events beyond the per-user cap are evicted, and so is every event older
// than the maximum age on the events' clock (the latest event time applied).
// Each model forgets an evicted event as if it had never seen it: item-kNN
// subtracts its squared weight and its pairs, trending its decayed weight,
// mf the seed of an item without a trained vector, and the user's vector is
// re-solved from what is kept. Replaying the log therefore rebuilds the same
// state; the log itself keeps every record.
package recommend

import (
	"errors"
	"sync"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/ids"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/model/trending"
)

// Source names, reported with every recommended item.
const (
	SourceItemKNN  = "item_knn"
	SourceMF       = "mf"
	SourceTrending = "trending"
)

// ErrUnknownItem is returned for an item id the engine has never seen.
var ErrUnknownItem = errors.New("unknown item")

// Config configures the engine.
type Config struct {
	Table    *event.Table
	ItemKNN  itemknn.Config
	Trending trending.Config
	MF       mf.Config
	// Blend weighs the sources in a blended answer; all zero means
	// DefaultBlend.
	Blend Blend
	// Retention bounds the events the models hold; zero keeps them all.
	Retention Retention
}

// Retention says which events the in-memory models keep. Zero fields are
// no limit.
type Retention struct {
	// MaxEventsPerUser keeps each user's latest events only: when a new
	// event would pass it, the user's oldest is evicted first.
	MaxEventsPerUser int
	// MaxAge evicts events older than this before the latest event time
	// applied (the events' clock, in whole seconds, not the wall clock). A
	// user's events are evicted oldest first in log order, so an event
	// that arrived late waits for those logged before it.
	MaxAge time.Duration
}

// maxAgeSeconds is the age limit in whole seconds (0: none).
func (r Retention) maxAgeSeconds() int64 {
	if r.MaxAge <= 0 {
		return 0
	}
	return max(1, int64(r.MaxAge/time.Second))
}

// Blend is the weight of each source in a blended answer. Each source's
// candidate scores are scaled to [0, 1] for the user at hand, then the
// weighted sum ranks them; an item's source is the one that added most.
type Blend struct {
	ItemKNN  float32 `json:"item_knn"`
	MF       float32 `json:"mf"`
	Trending float32 `json:"trending"`
}

// SetBlend replaces the blend weights (all zero: the defaults).
func (e *Engine) SetBlend(b Blend) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b == (Blend{}) {
		b = DefaultBlend()
	}
	e.blend = b
}

// DefaultBlend returns the default weights, tuned by prequential replay of
// ml-100k (docs/EVALUATION.md).
func DefaultBlend() Blend { return Blend{ItemKNN: 1, MF: 0.25, Trending: 0.05} }

type itemMeta struct {
	cats    []int32
	hidden  bool
	deleted bool
}

// Engine is the in-memory model state.
type Engine struct {
	mu       sync.RWMutex
	consumed [event.NumTypes]bool
	users    *ids.Dict
	items    *ids.Dict
	cats     *ids.Dict
	meta     []itemMeta
	members  [][]int32 // category id → item ids
	hist     history.Store
	knn      *itemknn.Model
	trend    *trending.Model
	mf       *mf.Model
	blend    Blend
	keep     Retention
	clock    uint32 // the latest event time applied (unix seconds)
	applied  uint64 // records applied
	catEpoch uint64 // changes with every catalogue record: cached answers that filter by it expire
	scratch  sync.Pool
}

// New returns an empty engine.
func New(cfg Config) *Engine {
	e := &Engine{
		users: ids.New(),
		items: ids.New(),
		cats:  ids.New(),
		knn:   itemknn.New(cfg.ItemKNN),
		trend: trending.New(cfg.Trending),
		mf:    mf.New(cfg.MF),
		blend: cfg.Blend,
		keep:  cfg.Retention,
	}
	if e.keep.MaxEventsPerUser < 0 {
		e.keep.MaxEventsPerUser = 0
	}
	if e.keep.maxAgeSeconds() > 0 {
		e.hist.TrackAge()
	}
	if e.blend == (Blend{}) {
		e.blend = DefaultBlend()
	}
	for t := range event.NumTypes {
		if r, ok := cfg.Table.Rule(event.Type(t)); ok {
			e.consumed[t] = r.Consumed
		}
	}
	return e
}

// applyChunk bounds how long readers wait for the write lock: a large group
// is applied in chunks, the lock released between them. A reader may see
// part of a group; that is fine, because nothing in it is acknowledged until
// Apply returns.
const applyChunk = 512

// Apply applies records in order. When it returns, every read sees them.
func (e *Engine) Apply(recs []event.Record) {
	for len(recs) > 0 {
		n := min(len(recs), applyChunk)
		e.mu.Lock()
		for i := range recs[:n] {
			e.apply(&recs[i])
		}
		e.knn.Flush()
		e.mu.Unlock()
		recs = recs[n:]
	}
}

func (e *Engine) apply(r *event.Record) {
	e.applied++
	switch r.Kind {
	case event.KindEvent:
		ev := &r.Event
		u := e.users.Intern(ev.User)
		if ev.Item == "" {
			return // context only (search)
		}
		it := e.item(ev.Item)
		ms := max(ev.Time.UnixMilli(), 0)
		h := history.Entry{Item: it, Time: uint32(ms / 1000), Milli: uint16(ms % 1000), Weight: ev.Weight, Type: ev.Type}
		e.mf.Grow(e.users.Len())
		e.retain(u, h.Time)
		e.knn.Apply(it, ev.Weight, e.hist.User(u))
		e.trend.Apply(it, ev.Weight, h.Seconds())
		e.hist.Append(u, h)
		e.mf.Apply(u, it, ev.Weight)
	case event.KindItemPut:
		e.catEpoch++
		it := e.item(r.Item.ID)
		m := &e.meta[it]
		for _, c := range m.cats {
			e.members[c] = remove(e.members[c], it)
		}
		m.cats = m.cats[:0]
		for _, name := range r.Item.Categories {
			c := e.cats.Intern(name)
			for int(c) >= len(e.members) {
				e.members = append(e.members, nil)
			}
			if !contains(m.cats, c) {
				m.cats = append(m.cats, c)
				e.members[c] = append(e.members[c], it)
			}
		}
		m.hidden = r.Item.Hidden
		m.deleted = false
	case event.KindItemDelete:
		e.catEpoch++
		if it, ok := e.items.Lookup(r.Item.ID); ok {
			e.meta[it].deleted = true
		}
	case event.KindUserPut:
		e.users.Intern(r.User.ID)
	case event.KindUserDelete:
		// The profile lives in the store; the history stays with the models.
	}
}

// retain evicts what retention no longer keeps before an event of user at
// time t is applied: the user's oldest events beyond the cap, less one for
// the new event, and every event older than the maximum age on the clock
// that t may advance.
func (e *Engine) retain(user int32, t uint32) {
	if c := e.keep.MaxEventsPerUser; c > 0 {
		for len(e.hist.User(user)) >= c {
			e.evictOldest(user)
		}
	}
	if t > e.clock {
		e.clock = t
	}
	if age := e.keep.maxAgeSeconds(); age > 0 {
		cutoff := int64(e.clock) - age
		for {
			u, ut, ok := e.hist.Oldest()
			if !ok || int64(ut) >= cutoff {
				break
			}
			e.evictOldest(u)
		}
	}
}

// evictOldest evicts the oldest kept event of user from every model.
func (e *Engine) evictOldest(user int32) {
	h := e.hist.User(user)
	if len(h) == 0 {
		return
	}
	old := h[0]
	e.knn.Evict(old, h[1:])
	e.trend.Remove(old.Item, old.Weight, old.Seconds())
	e.mf.Evict(user, old.Item, old.Weight, e.hist.Start(user))
	e.hist.EvictOldest(user)
}

func (e *Engine) item(id string) int32 {
	it := e.items.Intern(id)
	for int(it) >= len(e.meta) {
		e.meta = append(e.meta, itemMeta{})
	}
	return it
}

func remove(s []int32, v int32) []int32 {
	for i, x := range s {
		if x == v {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Stats describes the engine's size.
type Stats struct {
	Applied      uint64  `json:"records_applied"`
	Users        int     `json:"users"`
	Items        int     `json:"items"`
	Events       int     `json:"events_in_memory"`
	Evicted      uint64  `json:"events_evicted"` // by retention, since the log began
	ItemKNNPairs int     `json:"item_knn_pairs"`
	MF           MFStats `json:"mf"`
}

// MFStats describes the served matrix-factorisation model.
type MFStats struct {
	Trained    bool      `json:"trained"`
	TrainedAt  time.Time `json:"trained_at,omitzero"`
	Seq        uint64    `json:"trained_through_seq"`   // log records it was trained on
	Events     int       `json:"trained_interactions"`  // interactions it was trained on
	Seconds    float64   `json:"training_seconds"`      // how long that training took
	FreshItems int       `json:"items_folded_in"`       // items with a vector solved since
	FoldIns    uint64    `json:"fold_ins"`              // user and item fold-ins since start
	CacheHits  uint64    `json:"candidate_cache_hits"`  // candidate lists reused since start
	ANN        bool      `json:"approximate_retrieval"` // served from the HNSW index
}

// Stats returns the engine's size.
func (e *Engine) Stats() Stats {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return Stats{
		Applied:      e.applied,
		Users:        e.users.Len(),
		Items:        e.items.Len(),
		Events:       e.hist.Events(),
		Evicted:      e.hist.Evicted(),
		ItemKNNPairs: e.knn.Pairs(),
		MF:           e.mfStats(),
	}
}

func (e *Engine) mfStats() MFStats {
	t := e.mf.Current()
	if t == nil {
		return MFStats{}
	}
	return MFStats{Trained: true, TrainedAt: t.At, Seq: t.Seq, Events: t.Events, Seconds: t.Took.Seconds(),
		FreshItems: e.mf.Fresh(), FoldIns: e.mf.FoldIns(), CacheHits: e.mf.CacheHits(), ANN: t.Index != nil}
}

// KnowsItem reports whether the engine has seen item (in an event or the
// catalogue).
func (e *Engine) KnowsItem(item string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.items.Lookup(item)
	return ok
}

// Memory is an estimate of the bytes each part of the engine holds.
type Memory struct {
	History  int64 `json:"history_bytes"`
	ItemKNN  int64 `json:"item_knn_bytes"`
	Trending int64 `json:"trending_bytes"`
	MF       int64 `json:"mf_bytes"`
}

// Memory estimates the engine's memory by part, from slice capacities.
func (e *Engine) Memory() Memory {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return Memory{History: e.hist.Bytes(), ItemKNN: e.knn.Bytes(), Trending: e.trend.Bytes(), MF: e.mf.Bytes()}
}

// Compact trims the histories to their length, after a rebuild.
func (e *Engine) Compact() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hist.Compact()
}
