// Package mf serves implicit matrix factorisation in real time: a model
// trained in the background (package als) plus, between trainings, a fold-in
// of every user whose history changed since their vector was solved, and a
// vector for every item that arrived after training, solved from the users
// who touched it.
//
// Freshness without work on the write path: each user vector remembers the
// part of the history it was solved from: where it ended (its version: the
// number of events the user ever had) and where it started (how many of them
// retention had evicted). A read whose user's history differs in either
// re-solves that user against the fixed item factors, warm-started from the
// old vector, and caches the answer. So every event acknowledged before a
// request is reflected in it, and so is every eviction.
//
// Retention: Evict forgets an evicted event of an item that has no trained
// vector (it no longer seeds that item's vector); the trained factors forget
// evicted events at the next training, which reads the kept histories only.
//
// Concurrency: Apply and Install need the caller's write lock; UserVector,
// Candidates and the rest need only its read lock. Cached vectors are
// published through atomic pointers, so concurrent readers may fold the
// same user in at once and either answer is kept.
package mf

import (
	"context"
	"github.com/streamrec/streamrec/model"
	"slices"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/ann"
	"github.com/streamrec/streamrec/model/history"
)

// Config tunes the served model.
type Config struct {
	ALS als.Config
	// FoldInSteps is the conjugate-gradient steps of one fold-in, warm
	// started from the user's previous vector (default 3).
	FoldInSteps int
	// ANNThreshold is the catalogue size (trained items) from which
	// retrieval uses the HNSW index instead of scoring every item (default
	// 5,000, where scoring every item starts to cost more than the
	// index; negative: always exact).
	ANNThreshold int
	ANN          ann.Config
}

// DefaultConfig returns the defaults (factors, regularisation and confidence
// chosen on a validation split of ml-100k, docs/EVALUATION.md).
func DefaultConfig() Config {
	a := als.DefaultConfig()
	a.Factors, a.Lambda, a.Alpha, a.Iterations = 64, 20, 3, 10
	return Config{ALS: a, FoldInSteps: 3, ANNThreshold: 5_000}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.ALS.Factors <= 0 {
		c.ALS.Factors = d.ALS.Factors
	}
	if c.ALS.Lambda <= 0 {
		c.ALS.Lambda = d.ALS.Lambda
	}
	if c.ALS.Alpha <= 0 {
		c.ALS.Alpha = d.ALS.Alpha
	}
	if c.ALS.Iterations <= 0 {
		c.ALS.Iterations = d.ALS.Iterations
	}
	if c.FoldInSteps <= 0 {
		c.FoldInSteps = d.FoldInSteps
	}
	if c.ANNThreshold == 0 {
		c.ANNThreshold = d.ANNThreshold
	}
}

// Data is a training set read from the histories: dense user and item ids
// as the engine numbers them.
type Data struct {
	Users, Items int
	Entries      []als.Entry
	// Versions is, for each user, the number of events they ever had when
	// read (the kept ones and those evicted before them): that user's
	// trained vector reflects exactly the events up to there.
	Versions []uint32
	// Starts is, for each user, how many of those events had been evicted
	// (nil: none); the vector reflects the events from there on.
	Starts []uint32
	Seq    uint64 // log records applied when the reading ended
}

// Trained is a finished training, ready to Install.
type Trained struct {
	Model    *als.Model
	Versions []uint32 // per user, as in Data
	Starts   []uint32 // per user, as in Data (nil: none evicted, or not known)
	HasData  []bool   // per item: it had interactions in training
	Index    *ann.Index
	Seq      uint64
	Events   int
	At       time.Time     // when training ended
	Took     time.Duration // how long it took
	userGram []float64
}

// Train fits a model to data. progress is told how many of total steps are
// done (the ALS half-steps, then the index build when there is one).
func Train(ctx context.Context, data Data, cfg Config, progress func(done, total int)) (*Trained, error) {
	cfg.fill()
	start := time.Now()
	steps := 2 * cfg.ALS.Iterations
	big := cfg.ANNThreshold > 0 && data.Items >= cfg.ANNThreshold
	if big {
		steps++
	}
	m, err := als.Train(ctx, data.Users, data.Items, data.Entries, cfg.ALS, func(done, _ int) {
		if progress != nil {
			progress(done, steps)
		}
	})
	if err != nil {
		return nil, err
	}
	has := make([]bool, data.Items)
	for _, e := range data.Entries {
		has[e.Item] = true
	}
	t := &Trained{Model: m, Versions: data.Versions, Starts: data.Starts, HasData: has, Seq: data.Seq, Events: len(data.Entries)}
	if err := t.finish(ctx, cfg, big); err != nil {
		return nil, err
	}
	if progress != nil {
		progress(steps, steps)
	}
	t.At = time.Now()
	t.Took = t.At.Sub(start)
	return t, nil
}

// finish computes what serving needs beside the factors.
func (t *Trained) finish(ctx context.Context, cfg Config, index bool) error {
	t.userGram = t.Model.UserGram()
	if !index {
		return nil
	}
	k := t.Model.Factors()
	vecs := slices.Clone(t.Model.Items)
	for i, ok := range t.HasData {
		if !ok {
			clear(vecs[i*k : (i+1)*k]) // never returned by the index
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.Index = ann.Build(vecs, k, cfg.ANN)
	return nil
}

// vec is a solved vector and what it was solved from: for a user, the end
// (version) and start of their history; for a fresh item, its generation.
type vec struct {
	version uint32
	start   uint32
	x       []float32
}

// freshItem is an item with no trained vector: the users who touched it
// since, and its vector solved from them.
type freshItem struct {
	users   []int32
	weights []float32
	gen     uint32 // changes with every event added or evicted
	v       atomic.Pointer[vec]
}

// Model is the served state.
type Model struct {
	cfg   Config
	cur   *Trained
	users []userSlot // by dense user id
	fresh map[int32]*freshItem
	// freshEpoch changes whenever a fresh item's vector may change, which
	// invalidates every cached candidate list.
	freshEpoch uint64
	folds      atomic.Uint64
	hits       atomic.Uint64
}

// userSlot is one user's vector and their last candidate list.
type userSlot struct {
	v     atomic.Pointer[vec]
	cache atomic.Pointer[candCache]
}

// candCache is a user's candidate list and everything it depends on.
type candCache struct {
	t       *Trained
	version uint32 // the user's history: where it ends
	start   uint32 // and where it starts
	epoch   [2]uint64
	n       int
	cat     int32
	list    []Scored
}

// New returns a model with nothing trained: it recommends nothing until the
// first Install.
func New(cfg Config) *Model {
	cfg.fill()
	return &Model{cfg: cfg, fresh: map[int32]*freshItem{}}
}

// Config returns the configuration, defaults filled.
func (m *Model) Config() Config { return m.cfg }

// Current is the installed training, nil before the first.
func (m *Model) Current() *Trained { return m.cur }

// FoldIns counts user and item fold-ins done since start.
func (m *Model) FoldIns() uint64 { return m.folds.Load() }

// Fresh is the number of items served by a vector solved after training.
func (m *Model) Fresh() int { return len(m.fresh) }

func (m *Model) trained(it int32) bool {
	return m.cur != nil && int(it) < len(m.cur.HasData) && m.cur.HasData[it]
}

// Apply notes one event of user on item (write lock held). Only an item
// without a trained vector needs the note; the user's vector goes stale by
// itself, as their history grows.
func (m *Model) Apply(user, item int32, w float32) {
	if m.cur == nil || m.trained(item) {
		return
	}
	f := m.fresh[item]
	if f == nil {
		f = &freshItem{}
		m.fresh[item] = f
	}
	f.users = append(f.users, user)
	f.weights = append(f.weights, w)
	f.gen++
	m.freshEpoch++
}

// Evict notes that the event of user on item with weight w, the at-th event
// the user ever had (counting from 0), was evicted (write lock held). An
// item without a trained vector forgets it: it was the oldest of that user's
// events the item still held. Events training saw are in the factors until
// the next training.
func (m *Model) Evict(user, item int32, w float32, at uint32) {
	if m.cur == nil || m.trained(item) {
		return
	}
	if int(user) < len(m.cur.Versions) && at < m.cur.Versions[user] {
		return // seen by training: not among the item's events since
	}
	f := m.fresh[item]
	if f == nil {
		return
	}
	i := slices.Index(f.users, user)
	if i < 0 {
		return
	}
	f.users = slices.Delete(f.users, i, i+1)
	f.weights = slices.Delete(f.weights, i, i+1)
	f.gen++
	m.freshEpoch++
	if len(f.users) == 0 {
		delete(m.fresh, item)
	}
}

// Install makes t the served model (write lock held). hist gives each
// user's current history and how many of their events were evicted before
// it: the events after a user's version are the ones training did not see,
// and they seed the items that have no vector (nil: there are none).
func (m *Model) Install(t *Trained, users int, hist func(u int32) ([]history.Entry, uint32)) {
	if t.userGram == nil {
		t.userGram = t.Model.UserGram()
	}
	m.cur = t
	m.users = make([]userSlot, max(users, len(t.Versions)))
	for u, v := range t.Versions {
		if u < t.Model.NumUsers() {
			var start uint32
			if u < len(t.Starts) {
				start = t.Starts[u]
			}
			m.users[u].v.Store(&vec{version: v, start: start, x: t.Model.UserVec(u)})
		}
	}
	m.fresh = map[int32]*freshItem{}
	for u := range users {
		if hist == nil {
			break
		}
		h, start := hist(int32(u))
		from := 0
		if u < len(t.Versions) {
			from = min(max(int(t.Versions[u])-int(start), 0), len(h))
		}
		for _, e := range h[from:] {
			m.Apply(int32(u), e.Item, e.Weight)
		}
	}
}

// Grow makes room for user ids below n (write lock held).
func (m *Model) Grow(n int) {
	if n <= len(m.users) || m.cur == nil {
		return
	}
	grown := make([]userSlot, n+n/4+16)
	for u := range m.users {
		grown[u].v.Store(m.users[u].v.Load())
		grown[u].cache.Store(m.users[u].cache.Load())
	}
	m.users = grown
}

// UserVector returns the user's vector for hist, their kept history, of
// which start events were evicted before it, folding them in first when
// their history changed since it was solved; nil before the first training
// or for a user with nothing to go on. Read lock held.
func (m *Model) UserVector(u int32, hist []history.Entry, start uint32) []float32 {
	if m.cur == nil || u < 0 || int(u) >= len(m.users) {
		return nil
	}
	end := start + uint32(len(hist))
	p := m.users[u].v.Load()
	if p != nil && p.version == end && p.start == start {
		return p.x
	}
	items := make([]int32, 0, len(hist))
	weights := make([]float32, 0, len(hist))
	for _, e := range hist {
		if m.trained(e.Item) {
			items = append(items, e.Item)
			weights = append(weights, e.Weight)
		}
	}
	var x0 []float32
	if p != nil {
		x0 = p.x
	}
	var x []float32
	if len(items) > 0 {
		x = m.cur.Model.FoldInFrom(x0, items, weights, m.cfg.FoldInSteps)
		m.folds.Add(1)
	}
	m.users[u].v.Store(&vec{version: end, start: start, x: x})
	return x
}

// UserCandidates is Candidates for user u with kept history hist (start
// events evicted before it): the user's vector (folded in first when stale)
// against the items, up to n, the answer kept for the next request. The kept
// list is used again while nothing it depends on changed: the model, the
// user's history, n, the
// category cat, the caller's catalogue epoch (which must change whenever
// skip could answer differently for reasons other than the user's own
// history) and the vectors of items newer than the model. Read lock held.
func (m *Model) UserCandidates(u int32, hist []history.Entry, start uint32, n, excluded int, cat int32, epoch uint64, skip func(int32) bool, out []Scored) []Scored {
	if m.cur == nil || u < 0 || int(u) >= len(m.users) {
		return out
	}
	key := candCache{t: m.cur, version: start + uint32(len(hist)), start: start, epoch: [2]uint64{epoch, m.freshEpoch}, n: n, cat: cat}
	if c := m.users[u].cache.Load(); c != nil && c.t == key.t && c.version == key.version && c.start == key.start && c.epoch == key.epoch && c.n == key.n && c.cat == key.cat {
		m.hits.Add(1)
		return append(out, c.list...)
	}
	x := m.UserVector(u, hist, start)
	if x == nil {
		return out
	}
	base := len(out)
	out = m.Candidates(x, n, excluded, skip, out)
	key.list = slices.Clone(out[base:])
	m.users[u].cache.Store(&key)
	return out
}

// CacheHits counts candidate lists answered from the per-user cache.
func (m *Model) CacheHits() uint64 { return m.hits.Load() }

// itemVector is a fresh item's vector, solved again when users touched it
// since.
func (m *Model) itemVector(f *freshItem) []float32 {
	p := f.v.Load()
	if p != nil && p.version == f.gen {
		return p.x
	}
	x := m.cur.Model.FoldInItem(m.cur.userGram, f.users, f.weights, m.cfg.FoldInSteps)
	m.folds.Add(1)
	f.v.Store(&vec{version: f.gen, x: x})
	return x
}

// Scored is one candidate.
type Scored = model.Candidate

// Candidates appends to out up to n items with the largest dot product with
// x, best first, skipping those skip rejects (about excluded of them: the
// user's own items, which score high, so the approximate search asks for
// that many more at once). Above the configured catalogue size the trained
// items come from the HNSW index; items with a vector solved since training
// are always scored exactly. Read lock held.
func (m *Model) Candidates(x []float32, n, excluded int, skip func(int32) bool, out []Scored) []Scored {
	if m.cur == nil || x == nil || n <= 0 {
		return out
	}
	base := len(out)
	if idx := m.cur.Index; idx != nil {
		out = m.annCandidates(idx, x, n, excluded, skip, out)
	} else {
		ni := len(m.cur.HasData)
		for i := range ni {
			it := int32(i)
			if !m.cur.HasData[i] || skip(it) {
				continue
			}
			out = append(out, Scored{Item: it, Score: m.cur.Model.Score(x, i)})
		}
	}
	for it, f := range m.fresh {
		if skip(it) {
			continue
		}
		out = append(out, Scored{Item: it, Score: als.Dot(x, m.itemVector(f))})
	}
	return out[:base+len(model.Top(out[base:], n))]
}

// annCandidates asks the index for more than n items, enough to keep n after
// skipping, widening the search when too many were skipped.
func (m *Model) annCandidates(idx *ann.Index, x []float32, n, excluded int, skip func(int32) bool, out []Scored) []Scored {
	base := len(out)
	for k := n + excluded + 16; ; k *= 4 {
		out = out[:base]
		for _, it := range idx.Search(x, k) {
			if !skip(it) {
				out = append(out, Scored{Item: it, Score: m.cur.Model.Score(x, int(it))})
			}
		}
		if len(out)-base >= n || k >= idx.Len() {
			return out
		}
	}
}

// Bytes estimates the memory held: factors, per-user slots, fresh items.
func (m *Model) Bytes() int64 {
	var n int64 = int64(len(m.users)) * 16
	for u := range m.users {
		if c := m.users[u].cache.Load(); c != nil {
			n += int64(cap(c.list))*8 + 64
		}
	}
	if m.cur != nil {
		n += int64(len(m.cur.Model.Users)+len(m.cur.Model.Items))*4 + int64(len(m.cur.Versions)+len(m.cur.Starts))*4 + int64(len(m.cur.HasData))
	}
	for _, f := range m.fresh {
		n += int64(cap(f.users))*8 + 64
	}
	return n
}

// ScoreItems appends to dst the dot product of the user's vector with each
// of items that has a vector (trained or solved since), in order; items
// without one are left out. Read lock held.
func (m *Model) ScoreItems(u int32, hist []history.Entry, start uint32, items []int32, dst []Scored) []Scored {
	x := m.UserVector(u, hist, start)
	if x == nil {
		return dst
	}
	for _, it := range items {
		if m.trained(it) {
			dst = append(dst, Scored{Item: it, Score: m.cur.Model.Score(x, int(it))})
		} else if f := m.fresh[it]; f != nil {
			dst = append(dst, Scored{Item: it, Score: als.Dot(x, m.itemVector(f))})
		}
	}
	return dst
}
