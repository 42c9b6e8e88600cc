// Package recommend holds the in-memory state every model reads (dense ids,
// the catalogue's model-relevant fields, user histories) and the models
// themselves, applies log records to them in log order, and answers
// recommendation requests: candidates → merge → rank → filter → respond.
//
// Concurrency: one writer applies records under the write lock; any number of
// readers recommend under the read lock. A read that starts after Apply
// returned sees everything Apply applied (read-your-writes).
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
		t := ev.Time.Unix()
		if t < 0 {
			t = 0
		}
		e.knn.Apply(it, ev.Weight, e.hist.User(u))
		e.trend.Apply(it, ev.Weight, float64(ev.Time.UnixMilli())/1000)
		e.hist.Append(u, history.Entry{Item: it, Time: uint32(t), Weight: ev.Weight, Type: ev.Type})
		e.mf.Grow(e.users.Len())
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
