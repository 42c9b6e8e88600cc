// Package recommend holds the in-memory state every model reads (dense ids,
// the catalogue's model-relevant fields, user histories and their sessions),
// applies log records to the models in log order, and answers requests:
// candidates → blend → filter → diversify → explain → respond.
//
// The engine holds a list of models (model.Model) and never names one: a
// model's optional parts (eviction, catalogue, snapshot, memory, scoring
// given items, similarity, explanations) are found once by type assertion,
// and blend weights, traces, stats and memory figures are keyed by the
// model's name.
//
// The blend weighs each source by a weight per source name: the installed
// Ranker's row for the time since the user's latest event, or, before one
// is installed, the configured weights. A Ranker with trees then reranks
// the blend's best candidates by their fused features (features.go).
//
// Concurrency: the writer applies records under the write lock (the node has
// one, applying in log order; Apply is safe from several goroutines, each
// record applied whole); any number of readers recommend under the read
// lock. A read that starts after Apply returned sees everything Apply
// applied (read-your-writes). The writer holds
// the lock in short steps (at most applyStep of records, then every model's
// Flush), so a reader waits for one step, never for a whole group. Every
// model states its own rule in its package documentation: Apply, Evict and
// catalogue changes under the write lock, reads under the read lock, and any
// cache a reader fills published through atomic pointers.
//
// Sessions: every event belongs to a session of its user. A new session
// starts when the event's context carries a session_id other than the
// user's previous one, or, without one, after Config.SessionGap of
// inactivity on the events' clock. The first event of a session is flagged
// in the history (history.NewSession).
//
// Retention (Config.Retention) bounds what the models hold, in log order as
// part of applying records: before a user's event is applied, their oldest
// events beyond the per-user cap are evicted, and so is every event older
// than the maximum age on the events' clock (the latest event time applied).
// Each model that implements model.Evicter forgets an evicted event as if it
// had never seen it. Replaying the log therefore rebuilds the same state;
// the log itself keeps every record.
package recommend

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/ids"
	"github.com/streamrec/streamrec/lambdamart"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/model/mf"
)

// ErrUnknownItem is returned for an item id the engine has never seen.
var ErrUnknownItem = errors.New("unknown item")

// DefaultSessionGap is the inactivity after which a user's next event starts
// a new session.
const DefaultSessionGap = 30 * time.Minute

// Config configures the engine.
type Config struct {
	Table *event.Table
	// Models are the engine's models, in the order they apply each event;
	// those that are also a model.Source answer requests. Every engine
	// needs its own instances.
	Models []model.Model
	// Blend weighs the sources in a blended answer, by source name; a
	// source it does not name keeps its default weight (model.Weighted, or
	// 1). Zero leaves a source out of the blend (it still answers alone).
	Blend map[string]float32
	// Retention bounds the events the models hold; zero keeps them all.
	Retention Retention
	// SessionGap is the inactivity that ends a session (0:
	// DefaultSessionGap).
	SessionGap time.Duration
	// Answers bounds the items, across whole answers of Recommend, kept
	// for the engine's current state (0: none); any write empties them
	// (answers.go).
	Answers int
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

// source is one model that answers requests, with what the engine found it
// can do.
type source struct {
	name    string
	src     model.Source
	norm    model.Norm
	weight  float32 // configured blend weight
	popular bool
	scorer  model.Scorer
	explain model.Explainer
}

// Engine is the in-memory model state.
type Engine struct {
	mu       sync.RWMutex
	consumed [event.NumTypes]bool
	users    *ids.Dict
	items    *ids.Dict
	cats     *ids.Dict
	blocked  []bool    // per item: hidden or deleted
	first    []uint32  // per item: the time of its first event (unix seconds; 0: none yet)
	deleted  []bool    // per item: deleted
	itemCats [][]int32 // per item: its categories
	members  [][]int32 // category id → item ids
	hist     history.Store
	sessKey  []uint64 // per user: the hash of the last session_id sent, 0 for none
	sessAt   []uint32 // per user: where their current session starts, counting every event they ever had
	gap      uint32   // session inactivity gap in seconds

	models   []model.Model
	sources  []source
	evicters []model.Evicter
	flushers []model.Flusher
	catalog  []model.Cataloguer
	records  []model.Recorder
	snaps    []snapModel
	similar  []model.Similar
	sized    []model.Model
	mf       *mf.Source // the trained model's lifecycle (mf.go), when one is configured
	// The learned ranker's features (features.go).
	featurers []featurer
	featNames []string
	itemCols  int
	blendW    []float32 // the configured weights, by source index
	ranker    *Ranker   // installed by SetRanker, or nil
	rankW     [][]float32
	forest    *lambdamart.Compiled // the ranker's forest laid out for serving, or nil

	// epoch counts the changes of state (lockWrite); answers keeps the
	// current epoch's answers, or is nil.
	epoch   uint64
	answers *answers
	// rankerHash identifies the installed ranker's weights (0: none), the
	// same on every engine that installed the same ranker.
	rankerHash uint64

	keep     Retention
	clock    uint32 // the latest event time applied (unix seconds)
	applied  uint64 // records applied
	catEpoch uint64 // changes with every catalogue record: cached answers that filter by it expire
	x        model.Interaction
	scratch  sync.Pool
}

type snapModel struct {
	name string
	s    model.Snapshotter
}

// New returns an empty engine.
func New(cfg Config) *Engine {
	e := &Engine{
		users:  ids.New(),
		items:  ids.New(),
		cats:   ids.New(),
		keep:   cfg.Retention,
		models: cfg.Models,
		gap:    uint32(DefaultSessionGap / time.Second),
	}
	e.answers = newAnswers(cfg.Answers)
	if cfg.SessionGap > 0 {
		e.gap = uint32(max(1, cfg.SessionGap/time.Second))
	}
	for _, m := range cfg.Models {
		if s, ok := m.(model.Source); ok {
			src := source{name: m.Name(), src: s, weight: 1}
			if w, ok := m.(model.Weighted); ok {
				src.weight = w.DefaultWeight()
			}
			if w, ok := cfg.Blend[src.name]; ok {
				src.weight = w
			}
			if n, ok := m.(model.Normed); ok {
				src.norm = n.Norm()
			}
			_, src.popular = m.(model.Popular)
			src.scorer, _ = m.(model.Scorer)
			src.explain, _ = m.(model.Explainer)
			e.sources = append(e.sources, src)
		}
		if x, ok := m.(model.Evicter); ok {
			e.evicters = append(e.evicters, x)
		}
		if x, ok := m.(model.Flusher); ok {
			e.flushers = append(e.flushers, x)
		}
		if x, ok := m.(model.Cataloguer); ok {
			e.catalog = append(e.catalog, x)
		}
		if x, ok := m.(model.Recorder); ok {
			e.records = append(e.records, x)
		}
		if x, ok := m.(model.Snapshotter); ok {
			e.snaps = append(e.snaps, snapModel{m.Name(), x})
		}
		if x, ok := m.(model.Similar); ok {
			e.similar = append(e.similar, x)
		}
		if _, ok := m.(model.Sized); ok {
			e.sized = append(e.sized, m)
		}
		if x, ok := m.(*mf.Source); ok && e.mf == nil {
			e.mf = x
		}
	}
	e.initFeatures()
	e.blendW = make([]float32, len(e.sources))
	for i, src := range e.sources {
		e.blendW[i] = src.weight
	}
	if e.keep.MaxEventsPerUser < 0 {
		e.keep.MaxEventsPerUser = 0
	}
	if e.keep.maxAgeSeconds() > 0 {
		e.hist.TrackAge()
	}
	for t := range event.NumTypes {
		if r, ok := cfg.Table.Rule(event.Type(t)); ok {
			e.consumed[t] = r.Consumed
		}
	}
	return e
}

// Version is what an answer for user depends on besides other users'
// events: the user's own events (how many they ever had), the catalogue
// (every item put or delete), the trained mf model (the log records it was
// trained through) and the installed ranker's weights. Engines at the same
// log position with the same models give the same Version, so a shared
// cache keyed by it never serves a list that misses any of these.
func (e *Engine) Version(user string) [4]uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var v [4]uint64
	if u, ok := e.users.Lookup(user); ok {
		v[0] = uint64(e.hist.Start(u)) + uint64(len(e.hist.User(u))) + 1
	}
	v[1] = e.catEpoch
	if e.mf != nil {
		if t := e.mf.Model().Current(); t != nil {
			v[2] = t.Seq
		}
	}
	v[3] = e.rankerHash
	return v
}

// Part is the engine's model named name, or nil: for the node, which
// serves what a part keeps of its own (experiments' results).
func (e *Engine) Part(name string) model.Model {
	for _, m := range e.models {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

// Sources names the engine's sources, in their order.
func (e *Engine) Sources() []string {
	out := make([]string, len(e.sources))
	for i, s := range e.sources {
		out[i] = s.name
	}
	return out
}

// Blend is the weight of each source in a blended answer, by name.
func (e *Engine) Blend() map[string]float32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make(map[string]float32, len(e.sources))
	for _, s := range e.sources {
		out[s.name] = s.weight
	}
	return out
}

// SetBlend replaces the configured weights of the sources it names: the
// blend weighs requests by them until a Ranker is installed (SetRanker),
// and again after SetRanker(nil).
func (e *Engine) SetBlend(b map[string]float32) {
	e.lockWrite()
	defer e.mu.Unlock()
	for i := range e.sources {
		if w, ok := b[e.sources[i].name]; ok {
			e.sources[i].weight = w
			e.blendW[i] = w
		}
	}
}

// lockWrite takes the write lock for a change of state: the epoch moves,
// so no answer kept before it is served after it. Every writer takes it.
func (e *Engine) lockWrite() {
	e.mu.Lock()
	e.epoch++
}

// applyStep bounds how long readers wait for the writer: a group is applied
// in steps of at most applyChunk records, each ending once it has held the
// write lock for applyStep, the lock released between them. A reader may see
// part of a group; that is fine, because nothing in it is acknowledged until
// Apply returns. A reader arriving during a step waits for that step alone
// (docs/BENCHMARKS.md, "Reads under writes").
const (
	applyStep  = 100 * time.Microsecond
	applyChunk = 512
)

// Apply applies records in order. When it returns, every read sees them.
func (e *Engine) Apply(recs []event.Record) {
	for len(recs) > 0 {
		e.lockWrite()
		start := time.Now()
		n := 0
		for n < len(recs) && n < applyChunk {
			e.apply(&recs[n])
			n++
			if time.Since(start) >= applyStep {
				break
			}
		}
		for _, f := range e.flushers {
			f.Flush()
		}
		e.mu.Unlock()
		recs = recs[n:]
	}
}

func (e *Engine) apply(r *event.Record) {
	e.applied++
	for _, x := range e.records {
		x.Record(r)
	}
	switch r.Kind {
	case event.KindEvent:
		ev := &r.Event
		u := e.user(ev.User)
		if ev.Item == "" {
			return // context only (search)
		}
		it := e.item(ev.Item)
		ms := max(ev.Time.UnixMilli(), 0)
		h := history.Entry{Item: it, Time: uint32(ms / 1000), Milli: uint16(ms % 1000), Weight: ev.Weight, Type: ev.Type}
		if e.first[it] == 0 {
			e.first[it] = max(h.Time, 1)
		}
		e.retain(u, h.Time)
		prev := e.hist.User(u)
		start := e.hist.Start(u)
		if e.newSession(u, prev, h.Time, ev.Context) {
			h.Flags |= history.NewSession
			e.sessAt[u] = start + uint32(len(prev))
		}
		x := &e.x
		*x = model.Interaction{User: u, Item: it, Entry: h, History: prev, Start: start,
			Session: e.sessionIndex(u, start), Users: e.users.Len(), Items: e.items.Len()}
		for _, m := range e.models {
			m.Apply(x)
		}
		e.hist.Append(u, h)
	case event.KindItemPut:
		e.catEpoch++
		it := e.item(r.Item.ID)
		for _, c := range e.itemCats[it] {
			e.members[c] = remove(e.members[c], it)
		}
		cats := e.itemCats[it][:0]
		for _, name := range r.Item.Categories {
			c := e.cats.Intern(name)
			for int(c) >= len(e.members) {
				e.members = append(e.members, nil)
			}
			if !contains(cats, c) {
				cats = append(cats, c)
				e.members[c] = append(e.members[c], it)
			}
		}
		e.itemCats[it] = cats
		e.deleted[it] = false
		e.blocked[it] = r.Item.Hidden
		for _, c := range e.catalog {
			c.PutItem(it, &r.Item)
		}
	case event.KindItemDelete:
		e.catEpoch++
		if it, ok := e.items.Lookup(r.Item.ID); ok {
			e.deleted[it], e.blocked[it] = true, true
			for _, c := range e.catalog {
				c.DeleteItem(it)
			}
		}
	case event.KindUserPut:
		e.user(r.User.ID)
	case event.KindUserDelete:
		// The profile lives in the store; the history stays with the models.
	}
}

// user interns a user id, making room for their session state.
func (e *Engine) user(id string) int32 {
	u := e.users.Intern(id)
	for int(u) >= len(e.sessKey) {
		e.sessKey = append(e.sessKey, 0)
		e.sessAt = append(e.sessAt, 0)
	}
	return u
}

// sessionIndex is where user's current session starts in their kept
// history, of which start events were evicted before it.
func (e *Engine) sessionIndex(user int32, start uint32) int {
	if int(user) >= len(e.sessAt) || e.sessAt[user] < start {
		return 0
	}
	return int(e.sessAt[user] - start)
}

// newSession says whether an event of user at time t with context ctx
// starts a session: a session_id in the context other than the user's last
// one, or, without one, the gap since their last event.
func (e *Engine) newSession(user int32, prev []history.Entry, t uint32, ctx json.RawMessage) bool {
	if key := sessionKey(ctx); key != 0 {
		last := e.sessKey[user]
		e.sessKey[user] = key
		return last != key || len(prev) == 0
	}
	e.sessKey[user] = 0
	if len(prev) == 0 {
		return true
	}
	last := prev[len(prev)-1].Time
	return t > last && t-last > e.gap
}

var sessionField = []byte(`"session_id"`)

// sessionKey is a hash of the context's session_id (a string or a number),
// 0 when it has none.
func sessionKey(ctx json.RawMessage) uint64 {
	if len(ctx) == 0 || !bytes.Contains(ctx, sessionField) {
		return 0
	}
	var c struct {
		SessionID json.RawMessage `json:"session_id"`
	}
	if json.Unmarshal(ctx, &c) != nil || len(c.SessionID) == 0 || string(c.SessionID) == "null" {
		return 0
	}
	return xxhash.Sum64(c.SessionID) | 1
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
	x := &e.x
	start := e.hist.Start(user)
	*x = model.Interaction{User: user, Item: old.Item, Entry: old, History: h[1:], Start: start,
		Session: max(e.sessionIndex(user, start)-1, 0), Users: e.users.Len(), Items: e.items.Len()}
	for _, m := range e.evicters {
		m.Evict(x)
	}
	e.hist.EvictOldest(user)
}

func (e *Engine) item(id string) int32 {
	it := e.items.Intern(id)
	for int(it) >= len(e.blocked) {
		e.blocked = append(e.blocked, false)
		e.deleted = append(e.deleted, false)
		e.first = append(e.first, 0)
		e.itemCats = append(e.itemCats, nil)
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
	Applied uint64         `json:"records_applied"`
	Users   int            `json:"users"`
	Items   int            `json:"items"`
	Events  int            `json:"events_in_memory"`
	Evicted uint64         `json:"events_evicted"` // by retention, since the log began
	Sources map[string]any `json:"sources"`        // each model's own figures (model.Statser)
	MF      MFStats        `json:"mf"`
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
	st := Stats{
		Applied: e.applied,
		Users:   e.users.Len(),
		Items:   e.items.Len(),
		Events:  e.hist.Events(),
		Evicted: e.hist.Evicted(),
		Sources: map[string]any{},
		MF:      e.mfStats(),
	}
	for _, m := range e.models {
		if s, ok := m.(model.Statser); ok {
			st.Sources[m.Name()] = s.Stats()
		}
	}
	return st
}

func (e *Engine) mfStats() MFStats {
	if e.mf == nil {
		return MFStats{}
	}
	m := e.mf.Model()
	t := m.Current()
	if t == nil {
		return MFStats{}
	}
	return MFStats{Trained: true, TrainedAt: t.At, Seq: t.Seq, Events: t.Events, Seconds: t.Took.Seconds(),
		FreshItems: m.Fresh(), FoldIns: m.FoldIns(), CacheHits: m.CacheHits(), ANN: t.Index != nil}
}

// KnowsItem reports whether the engine has seen item (in an event or the
// catalogue).
func (e *Engine) KnowsItem(item string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.items.Lookup(item)
	return ok
}

// Memory is an estimate of the bytes each part of the engine holds: the
// histories and each model, by name.
type Memory struct {
	History int64            `json:"history_bytes"`
	Models  map[string]int64 `json:"model_bytes"`
}

// Memory estimates the engine's memory by part, from slice capacities.
func (e *Engine) Memory() Memory {
	e.mu.RLock()
	defer e.mu.RUnlock()
	m := Memory{History: e.hist.Bytes(), Models: map[string]int64{}}
	for _, x := range e.sized {
		m.Models[x.Name()] = x.(model.Sized).Bytes()
	}
	return m
}

// Compact trims the histories to their length, after a rebuild.
func (e *Engine) Compact() {
	e.lockWrite()
	defer e.mu.Unlock()
	e.hist.Compact()
}
