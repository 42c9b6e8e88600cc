package content

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
)

// Name is the source name.
const Name = "content"

// Config tunes the model.
type Config struct {
	// Field weights: what one occurrence of a term in the field counts.
	TitleWeight       float32
	DescriptionWeight float32
	TagWeight         float32
	CategoryWeight    float32
	AttributeWeight   float32
	// MaxitemTerms bounds an item's vector: its heaviest terms are kept.
	MaxitemTerms int
	// ProfileItems is how many of the user's latest history entries the
	// profile is built from, at query time.
	ProfileItems int
	// QueryTerms is how many of the profile's largest terms score
	// candidates.
	QueryTerms int
	// MaxTermShare: a term in more than this share of the live items (a
	// genre) is no query term; it carries little idf and its postings are
	// most of a request's work. 1 or more keeps every term; so does a
	// catalogue too small for any term to have over commonFloor postings.
	MaxTermShare float64
	// HalfLifeSeconds is how long it takes an event's part in a profile to
	// halve, on the events' clock.
	HalfLifeSeconds float64
	// ExplainItems is how many of the user's latest items Because looks at.
	ExplainItems int
	// MaxPostings is how many of a term's postings a query reads: the
	// items that weigh the term most (lists are kept heaviest first). It
	// bounds a request's work when a term is in most items (a genre);
	// scores are exact for lists no longer than it. 0 reads them all.
	MaxPostings int
}

// DefaultConfig returns the defaults: title and tags count three and two
// times a description's word, 64 terms an item, a profile of the latest 20
// items, 32 of its terms to query, none in more than 5% of the items,
// a 30-day half-life, every posting read.
func DefaultConfig() Config {
	return Config{
		TitleWeight: 3, DescriptionWeight: 1, TagWeight: 2, CategoryWeight: 1.5, AttributeWeight: 1,
		MaxitemTerms: 64, ProfileItems: 20, QueryTerms: 32, MaxTermShare: 0.05,
		HalfLifeSeconds: 30 * 24 * 3600, ExplainItems: 200,
	}
}

// rawFactor bounds the term frequencies kept per item (for idf refreshes)
// at this many times MaxitemTerms.
const rawFactor = 4

// Prefixes of whole-phrase terms: '#' and '@' and '$' never occur inside a
// UAX #29 word, so these terms cannot collide with words.
const (
	tagPrefix  = "#"
	catPrefix  = "@"
	attrPrefix = "$"
)

// tw is one term of a sparse vector and its weight.
type tw struct {
	t int32
	w float32
}

// posting is one item of a term's inverted list.
type posting struct {
	item int32
	w    float32
}

// Model is the content model.
type Model struct {
	cfg Config
	tau float64

	dict  map[string]int32
	terms []string
	df    []int32
	post  [][]posting // by term: by w descending, then item

	raw   [][]tw // by item: field-weighted term frequencies, by term
	vec   [][]tw // by item: unit TF-IDF vector, by term
	live  []bool
	nLive int
	// fresh is the live count when every vector was last recomputed.
	fresh     int
	refreshes uint64

	// floor is commonFloor (tests lower it).
	floor int
	// Reader scratch (Candidates, Neighbours), shared by every copy.
	pool *pool

	// Writer scratch.
	pos  []int32 // by term: 1 + index in buf, 0 when absent
	buf  []tw
	toks []string
}

// New returns an empty model; zero fields of cfg take their defaults.
func New(cfg Config) *Model {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *float32 }{
		{&cfg.TitleWeight, &d.TitleWeight}, {&cfg.DescriptionWeight, &d.DescriptionWeight},
		{&cfg.TagWeight, &d.TagWeight}, {&cfg.CategoryWeight, &d.CategoryWeight}, {&cfg.AttributeWeight, &d.AttributeWeight},
	} {
		if *f.v <= 0 || math.IsNaN(float64(*f.v)) {
			*f.v = *f.d
		}
	}
	if cfg.MaxitemTerms <= 0 {
		cfg.MaxitemTerms = d.MaxitemTerms
	}
	if cfg.ProfileItems <= 0 {
		cfg.ProfileItems = d.ProfileItems
	}
	if !(cfg.MaxTermShare > 0) {
		cfg.MaxTermShare = d.MaxTermShare
	}
	if cfg.QueryTerms <= 0 {
		cfg.QueryTerms = d.QueryTerms
	}
	if !(cfg.HalfLifeSeconds > 0) {
		cfg.HalfLifeSeconds = d.HalfLifeSeconds
	}
	if cfg.ExplainItems <= 0 {
		cfg.ExplainItems = d.ExplainItems
	}
	if cfg.MaxPostings <= 0 {
		cfg.MaxPostings = math.MaxInt32
	}
	return &Model{cfg: cfg, tau: cfg.HalfLifeSeconds / math.Ln2, dict: map[string]int32{}, floor: commonFloor, pool: &pool{}}
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Name is "content".
func (m *Model) Name() string { return Name }

// SimilarKind is model.Content.
func (m *Model) SimilarKind() string { return model.Content }

// Fingerprint names the configuration and the tokenizer's version.
func (m *Model) Fingerprint() string {
	c := m.cfg
	return fmt.Sprintf("content/2 tok=1 title=%g desc=%g tag=%g cat=%g attr=%g itemterms=%d",
		c.TitleWeight, c.DescriptionWeight, c.TagWeight, c.CategoryWeight, c.AttributeWeight, c.MaxitemTerms)
}

// term interns s.
func (m *Model) term(s string) int32 {
	if t, ok := m.dict[s]; ok {
		return t
	}
	t := int32(len(m.terms))
	m.dict[s] = t
	m.terms = append(m.terms, s)
	m.df = append(m.df, 0)
	m.post = append(m.post, nil)
	m.pos = append(m.pos, 0)
	return t
}

func (m *Model) growItems(item int32) {
	for int(item) >= len(m.vec) {
		m.raw = append(m.raw, nil)
		m.vec = append(m.vec, nil)
		m.live = append(m.live, false)
	}
}

// itemTerms appends the terms of it to dst with what each occurrence
// weighs under cfg, in field order: title, tags (words and whole tags),
// categories (words and whole categories), description, attributes (words
// of every string value, and key=value for short ones).
func itemTerms(cfg Config, it *event.Item, dst []string, wts []float32) ([]string, []float32) {
	add := func(toks []string, w float32) {
		for range toks[len(wts):] {
			wts = append(wts, w)
		}
	}
	dst = Tokenize(dst, it.Title)
	add(dst, cfg.TitleWeight)
	for _, s := range it.Tags {
		dst = Tokenize(dst, s)
		if p := phrase(s); p != "" {
			dst = append(dst, tagPrefix+p)
		}
	}
	add(dst, cfg.TagWeight)
	for _, s := range it.Categories {
		dst = Tokenize(dst, s)
		if p := phrase(s); p != "" {
			dst = append(dst, catPrefix+p)
		}
	}
	add(dst, cfg.CategoryWeight)
	dst = Tokenize(dst, it.Description)
	add(dst, cfg.DescriptionWeight)
	if len(it.Attributes) > 0 {
		var v any
		if json.Unmarshal(it.Attributes, &v) == nil {
			dst = attrTerms(dst, "", v, 0)
		}
	}
	add(dst, cfg.AttributeWeight)
	return dst, wts
}

// attrTerms appends the terms of the string values in v (nested objects'
// keys joined with '.').
func attrTerms(dst []string, key string, v any, depth int) []string {
	if depth > 8 {
		return dst
	}
	switch v := v.(type) {
	case string:
		dst = Tokenize(dst, v)
		if k, p := phrase(key), phrase(v); k != "" && p != "" && len(k)+len(p) < maxTokenBytes-2 {
			dst = append(dst, attrPrefix+k+"="+p)
		}
	case []any:
		for _, e := range v {
			dst = attrTerms(dst, key, e, depth+1)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // map order must not reach the vectors
		for _, k := range keys {
			sub := k
			if key != "" {
				sub = key + "." + k
			}
			dst = attrTerms(dst, sub, v[k], depth+1)
		}
	}
	return dst
}

// PutItem sets item's text: its term frequencies, document frequencies,
// vector and postings.
func (m *Model) PutItem(item int32, it *event.Item) {
	if item < 0 || it == nil {
		return
	}
	m.growItems(item)
	m.remove(item)
	var wts []float32
	m.toks, wts = itemTerms(m.cfg, it, m.toks[:0], nil)
	buf := m.buf[:0]
	for k, s := range m.toks {
		t := m.term(s)
		if p := m.pos[t]; p > 0 {
			buf[p-1].w += wts[k]
			continue
		}
		buf = append(buf, tw{t, wts[k]})
		m.pos[t] = int32(len(buf))
	}
	for _, e := range buf {
		m.pos[e.t] = 0
	}
	if limit := rawFactor * m.cfg.MaxitemTerms; len(buf) > limit {
		slices.SortFunc(buf, func(a, b tw) int {
			if c := cmp.Compare(b.w, a.w); c != 0 {
				return c
			}
			return cmp.Compare(a.t, b.t)
		})
		buf = buf[:limit]
	}
	slices.SortFunc(buf, byTerm)
	m.buf = buf
	m.raw[item] = slices.Clone(buf)
	for _, e := range buf {
		m.df[e.t]++
	}
	m.live[item] = true
	m.nLive++
	if m.stale() {
		m.refresh()
		return
	}
	m.vec[item] = m.vector(m.raw[item])
	m.index(item)
}

// DeleteItem forgets item's text: it leaves the index and the document
// frequencies.
func (m *Model) DeleteItem(item int32) {
	if item < 0 || int(item) >= len(m.vec) || !m.live[item] {
		return
	}
	m.remove(item)
	if m.stale() {
		m.refresh()
	}
}

// remove takes a live item out of the index and the document frequencies.
func (m *Model) remove(item int32) {
	if !m.live[item] {
		return
	}
	for _, e := range m.vec[item] {
		l := m.post[e.t]
		if i := slices.IndexFunc(l, func(p posting) bool { return p.item == item }); i >= 0 {
			m.post[e.t] = slices.Delete(l, i, i+1)
		}
	}
	for _, e := range m.raw[item] {
		m.df[e.t]--
	}
	m.raw[item], m.vec[item], m.live[item] = nil, nil, false
	m.nLive--
}

// stale reports whether the live catalogue moved by a quarter since the
// vectors were last recomputed.
func (m *Model) stale() bool {
	return m.nLive*4 > m.fresh*5 || m.nLive*5 < m.fresh*4
}

// refresh recomputes every vector under the current idf and rebuilds the
// index.
func (m *Model) refresh() {
	m.fresh = m.nLive
	m.refreshes++
	for t := range m.post {
		m.post[t] = m.post[t][:0]
	}
	for i, r := range m.raw {
		if m.live[i] {
			m.vec[i] = m.vector(r)
			for _, e := range m.vec[i] {
				m.post[e.t] = append(m.post[e.t], posting{int32(i), e.w})
			}
		}
	}
	for t, l := range m.post {
		slices.SortFunc(l, postingOrder)
		if len(l) == 0 {
			m.post[t] = nil
		}
	}
}

func postingOrder(a, b posting) int {
	if c := cmp.Compare(b.w, a.w); c != 0 {
		return c
	}
	return cmp.Compare(a.item, b.item)
}

// index adds item's vector to the postings, in order.
func (m *Model) index(item int32) {
	for _, e := range m.vec[item] {
		p := posting{item, e.w}
		l := m.post[e.t]
		i, _ := slices.BinarySearchFunc(l, p, postingOrder)
		m.post[e.t] = slices.Insert(l, i, p)
	}
}

// vector is the unit TF-IDF vector of raw under the current document
// frequencies, its MaxitemTerms heaviest terms, by term.
func (m *Model) vector(raw []tw) []tw {
	if len(raw) == 0 {
		return nil
	}
	v := make([]tw, len(raw))
	n := float64(m.nLive)
	for k, e := range raw {
		idf := math.Log((1+n)/(1+float64(m.df[e.t]))) + 1
		v[k] = tw{e.t, float32(math.Log1p(float64(e.w)) * idf)}
	}
	if len(v) > m.cfg.MaxitemTerms {
		slices.SortFunc(v, func(a, b tw) int {
			if c := cmp.Compare(b.w, a.w); c != 0 {
				return c
			}
			return cmp.Compare(a.t, b.t)
		})
		v = slices.Clip(v[:m.cfg.MaxitemTerms])
		slices.SortFunc(v, byTerm)
	}
	var ss float64
	for _, e := range v {
		ss += float64(e.w) * float64(e.w)
	}
	if ss == 0 {
		return nil
	}
	inv := float32(1 / math.Sqrt(ss))
	for k := range v {
		v[k].w *= inv
	}
	return v
}

// Apply keeps nothing: a profile is built from the user's history when a
// request comes (Candidates), so an event is reflected by the next request
// with no work here.
func (m *Model) Apply(*model.Interaction) {}

// Evict keeps nothing either: the history a profile is built from is the
// engine's, which has already forgotten the event.
func (m *Model) Evict(*model.Interaction) {}

func (m *Model) itemVec(item int32) []tw {
	if item < 0 || int(item) >= len(m.vec) {
		return nil
	}
	return m.vec[item]
}

func byTerm(a, b tw) int { return cmp.Compare(a.t, b.t) }

func byMagnitude(a, b tw) int {
	if c := cmp.Compare(abs(b.w), abs(a.w)); c != 0 {
		return c
	}
	return cmp.Compare(a.t, b.t)
}

func abs(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// scratch is a reader's per-term scratch: dense arrays over the terms, all
// zero between uses.
type scratch struct {
	prof  []float32 // by term: the profile
	qw    []float32 // by term: the query weight of a query term
	terms []int32   // terms touched in prof
	sel   []tw      // profile terms, to select the query terms
	lists []qlist   // the positive query terms' postings
}

// qlist is a query term's postings as a search reads them.
type qlist struct {
	w     float32   // the term's query weight (positive)
	bound float32   // w · the list's heaviest posting
	l     []posting // by posting weight, descending
}

// pool keeps scratches for concurrent readers (a plain free list: it never
// drops one, so a warm request allocates nothing).
type pool struct {
	mu   sync.Mutex
	free []*scratch
}

// getScratch returns a zero scratch covering every term.
func (m *Model) getScratch() *scratch {
	p := m.pool
	p.mu.Lock()
	var s *scratch
	if n := len(p.free); n > 0 {
		s, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if s == nil {
		s = &scratch{}
	}
	if n := len(m.terms); len(s.prof) < n {
		n += n/4 + 64
		s.prof, s.qw = make([]float32, n), make([]float32, n)
	}
	return s
}

func (m *Model) putScratch(s *scratch) {
	p := m.pool
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// profile accumulates into s.prof the decayed, weighted vectors of the
// user's ProfileItems latest history entries and returns the profile's
// norm (0 for an empty profile). Decay is relative to the latest of those
// entries rather than q.Now: a factor common to every term, which a cosine
// ignores and float32 prefers.
func (m *Model) profile(q *model.Query, s *scratch) float64 {
	h := q.History
	if len(h) > m.cfg.ProfileItems {
		h = h[len(h)-m.cfg.ProfileItems:]
	}
	var latest float64
	for _, e := range h {
		latest = max(latest, e.Seconds())
	}
	prof, terms := s.prof, s.terms[:0]
	for _, e := range h {
		v := m.itemVec(e.Item)
		if len(v) == 0 || e.Weight == 0 || math.IsNaN(float64(e.Weight)) {
			continue
		}
		d := (e.Seconds() - latest) / m.tau
		if d < -80 { // older than the rest by far: worth nothing
			continue
		}
		f := e.Weight * float32(math.Exp(d))
		for _, x := range v {
			a := prof[x.t]
			if a == 0 {
				terms = append(terms, x.t)
			}
			a += f * x.w
			if a == 0 { // keep "touched" exact when contributions cancel
				a = math.SmallestNonzeroFloat32
			}
			prof[x.t] = a
		}
	}
	s.terms = terms
	var ss float64
	for _, t := range terms {
		ss += float64(prof[t]) * float64(prof[t])
	}
	return math.Sqrt(ss)
}

// commonFloor is how many postings a term may always have and still be a
// query term: a list that short is little work, and in a small catalogue
// every term is in a large share of the items.
const commonFloor = 500

// common is how many postings a term may have and still be a query term.
func (m *Model) common() int {
	if m.cfg.MaxTermShare >= 1 {
		return math.MaxInt
	}
	return max(int(m.cfg.MaxTermShare*float64(m.nLive)), m.floor)
}

// Candidates answers the items whose vectors are closest to the user's
// profile: the cosine over the profile's query terms (its QueryTerms terms
// of largest magnitude among those in at most MaxTermShare of the items),
// found by a pruned search of their postings.
func (m *Model) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if q.Want <= 0 || len(q.History) == 0 {
		return dst
	}
	s := m.getScratch()
	defer m.putScratch(s)
	norm := m.profile(q, s)
	common := m.common()
	var top float32
	for _, t := range s.terms {
		top = max(top, abs(s.prof[t]))
	}
	top *= 1e-6 // what rounding leaves of cancelled terms is no term
	sel := s.sel[:0]
	for _, t := range s.terms {
		if w := s.prof[t]; abs(w) > top && len(m.post[t]) > 0 && len(m.post[t]) <= common {
			sel = append(sel, tw{t, w})
		}
		s.prof[t] = 0
	}
	s.terms = s.terms[:0]
	sel = largest(sel, m.cfg.QueryTerms)
	s.sel = sel
	if norm == 0 || len(sel) == 0 {
		return dst
	}
	return m.accumulate(q, s, sel, float32(1/norm), dst)
}

// largest reorders v to keep its n terms of largest magnitude (ties: the
// lower term) in v[:n], in no particular order, and returns them: a heap
// of the n best so far, the worst at its root.
func largest(v []tw, n int) []tw {
	if len(v) <= n {
		return v
	}
	worse := func(a, b tw) bool { // a ranks after b
		if x, y := abs(a.w), abs(b.w); x != y {
			return x < y
		}
		return a.t > b.t
	}
	h := v[:n]
	for i := n/2 - 1; i >= 0; i-- {
		siftDown(h, i, worse)
	}
	for _, e := range v[n:] {
		if worse(h[0], e) {
			h[0] = e
			siftDown(h, 0, worse)
		}
	}
	return h
}

func siftDown(h []tw, i int, worse func(a, b tw) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			w = r
		}
		if !worse(h[w], h[i]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// accumulate appends the q.Want best positive items that q.Skip passes,
// best first, by their score inv·Σ w·(posting weight) over terms, summed in
// q.Acc list by list (left zero). The positive terms' lists are read first;
// the negative ones then only lower the items already met, since an item
// no positive term lists cannot score above zero. With MaxPostings, lists
// are cut first.
func (m *Model) accumulate(q *model.Query, s *scratch, terms []tw, inv float32, dst []model.Candidate) []model.Candidate {
	lists := s.lists[:0]
	for _, e := range terms {
		if l := m.post[e.t]; len(l) > 0 {
			lists = append(lists, qlist{w: e.w, l: l[:min(len(l), m.cfg.MaxPostings)]})
		}
	}
	slices.SortFunc(lists, func(a, b qlist) int { return cmp.Compare(b.w, a.w) })
	s.lists = lists
	acc := q.Acc
	touched := q.Touched[:0]
	for _, ql := range lists {
		w := ql.w
		if w > 0 {
			// Every item is written to touched, which moves on past it
			// only if it was not met yet: no branch to mispredict.
			touched = slices.Grow(touched, len(ql.l))
			n, buf := len(touched), touched[:cap(touched)]
			for _, p := range ql.l {
				if int(p.item) >= len(acc) {
					continue
				}
				a := acc[p.item]
				buf[n] = p.item
				n += b2i(a == 0)
				acc[p.item] = a + w*p.w
			}
			touched = buf[:n]
			continue
		}
		for _, p := range ql.l {
			if int(p.item) < len(acc) && acc[p.item] != 0 {
				a := acc[p.item] + w*p.w
				if a == 0 { // zero marks an item not met
					a = -math.SmallestNonzeroFloat32
				}
				acc[p.item] = a
			}
		}
	}
	dst = slices.Grow(dst, min(q.Want, len(touched))) // the heap appends in place
	base := len(dst)
	h := model.Heap(dst[base:])
	for _, it := range touched {
		c := model.Candidate{Item: it, Score: acc[it] * inv}
		acc[it] = 0
		if c.Score <= 0 || !h.Admits(c, q.Want) || q.Skip(it) {
			continue
		}
		c.Score = min(c.Score, 1)
		h.Offer(c, q.Want)
	}
	q.Touched = touched[:0]
	h.Sort()
	return dst[:base+len(h)]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Neighbours answers the items whose vectors are closest (cosine) to
// item's.
func (m *Model) Neighbours(q *model.Query, item int32, dst []model.Candidate) []model.Candidate {
	v := m.itemVec(item)
	if len(v) == 0 || q.Want <= 0 {
		return dst
	}
	s := m.getScratch()
	defer m.putScratch(s)
	for _, e := range v {
		s.qw[e.t] = e.w
	}
	dst = m.search(q, s, v, 1, item, dst)
	for _, e := range v {
		s.qw[e.t] = 0
	}
	return dst
}

// boundSlack covers float32 rounding between a bound and the scores it
// bounds: a search never prunes an item that rounding could tie in.
const boundSlack = 1 + 1e-5

// search appends the q.Want best positive items that q.Skip passes (never
// self), best first, by their score inv·Σ s.qw[t]·w over the item's vector:
// the query terms are terms (s.qw set for each), and an item no positive
// query term lists scores nothing.
//
// It reads the positive terms' postings list by list, heaviest bound first,
// and scores an item exactly the first time it meets it. A list is left
// once no item it has yet to list could enter the answer: an item not met
// so far scores at most Σ w·(the weight where each list read so far was
// left) + w·(the current posting) + Σ w·(the heaviest posting) over the
// lists to come, and once that is below the answer's worst score, the rest
// of the list (lighter still) cannot make it. With MaxPostings, lists are
// cut first. q.Acc marks the items met and is left zero.
func (m *Model) search(q *model.Query, s *scratch, terms []tw, inv float32, self int32, dst []model.Candidate) []model.Candidate {
	lists := s.lists[:0]
	var rest float32 // Σ bound over the lists to come
	for _, e := range terms {
		l := m.post[e.t]
		if e.w <= 0 || len(l) == 0 {
			continue
		}
		if len(l) > m.cfg.MaxPostings {
			l = l[:m.cfg.MaxPostings]
		}
		b := e.w * l[0].w
		lists = append(lists, qlist{e.w, b, l})
		rest += b
	}
	slices.SortFunc(lists, func(a, b qlist) int { return cmp.Compare(b.bound, a.bound) })
	s.lists = lists

	acc, qw := q.Acc, s.qw
	touched := q.Touched[:0]
	dst = slices.Grow(dst, q.Want) // the heap appends in place
	base := len(dst)
	h := model.Heap(dst[base:])
	var left float32 // Σ w·(weight where a list was left) over lists read
	for _, ql := range lists {
		rest -= ql.bound
		if len(h) == q.Want && (left+ql.bound+rest)*inv*boundSlack < h[0].Score {
			break
		}
		for _, p := range ql.l {
			if len(h) == q.Want && (left+ql.w*p.w+rest)*inv*boundSlack < h[0].Score {
				left += ql.w * p.w
				break
			}
			it := p.item
			if int(it) >= len(acc) || acc[it] != 0 {
				continue
			}
			acc[it] = 1
			touched = append(touched, it)
			if it == self {
				continue
			}
			var sc float32
			for _, x := range m.vec[it] {
				sc += qw[x.t] * x.w
			}
			c := model.Candidate{Item: it, Score: sc * inv}
			if c.Score <= 0 || !h.Admits(c, q.Want) || q.Skip(it) {
				continue
			}
			c.Score = min(c.Score, 1)
			h.Offer(c, q.Want)
		}
	}
	for _, it := range touched {
		acc[it] = 0
	}
	q.Touched = touched[:0]
	h.Sort()
	return dst[:base+len(h)]
}

// better orders candidates: higher score, then lower item id.
func better(s float32, item int32, c model.Candidate) bool {
	if s != c.Score {
		return s > c.Score
	}
	return item < c.Item
}

// Similarity is the cosine of the vectors of a and b.
func (m *Model) Similarity(a, b int32) float32 {
	return min(max(dot(m.itemVec(a), m.itemVec(b)), 0), 1)
}

// dot is the dot product of two vectors sorted by term.
func dot(a, b []tw) float32 {
	var s float32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].t < b[j].t:
			i++
		case a[i].t > b[j].t:
			j++
		default:
			s += a[i].w * b[j].w
			i++
			j++
		}
	}
	return s
}

// explainMax is how many items Because answers at most.
const explainMax = 3

// Because answers the user's positively weighted items, among the
// ExplainItems latest, whose vectors are closest to item's, strongest
// first.
func (m *Model) Because(q *model.Query, item int32, dst []int32) []int32 {
	v := m.itemVec(item)
	if len(v) == 0 {
		return dst
	}
	var top [explainMax]model.Candidate
	n := 0
	seen := 0
	for k := len(q.History) - 1; k >= 0 && seen < m.cfg.ExplainItems; k-- {
		h := q.History[k]
		seen++
		if h.Weight <= 0 || h.Item == item {
			continue
		}
		dup := false
		for _, c := range top[:n] {
			dup = dup || c.Item == h.Item
		}
		if dup {
			continue
		}
		s := dot(m.itemVec(h.Item), v)
		if s <= 0 || (n == explainMax && !better(s, h.Item, top[n-1])) {
			continue
		}
		if n < explainMax {
			n++
		}
		i := n - 1
		for ; i > 0 && better(s, h.Item, top[i-1]); i-- {
			top[i] = top[i-1]
		}
		top[i] = model.Candidate{Item: h.Item, Score: s}
	}
	for _, c := range top[:n] {
		dst = append(dst, c.Item)
	}
	return dst
}

// Stats are the model's figures for /v1/stats.
type Stats struct {
	Items       int    `json:"items"`         // items with text
	Terms       int    `json:"terms"`         // terms in the dictionary
	LiveTerms   int    `json:"live_terms"`    // terms some live item has
	Postings    int    `json:"postings"`      // entries of the inverted index
	CommonTerms int    `json:"common_terms"`  // terms in more than MaxTermShare of the items: no query terms
	Refreshes   uint64 `json:"idf_refreshes"` // times every vector was recomputed
}

// Stats reports the model's figures.
func (m *Model) Stats() any {
	s := Stats{Items: m.nLive, Terms: len(m.terms), Refreshes: m.refreshes}
	for t, l := range m.post {
		s.Postings += len(l)
		if m.df[t] > 0 {
			s.LiveTerms++
		}
	}
	common := m.common()
	for _, l := range m.post {
		if len(l) > common {
			s.CommonTerms++
		}
	}
	return s
}

// Bytes is an estimate of the memory the model holds.
func (m *Model) Bytes() int64 {
	n := int64(cap(m.terms))*16 + int64(len(m.dict))*48 + int64(cap(m.df)+cap(m.pos))*4 + int64(cap(m.post))*24
	for _, s := range m.terms {
		n += int64(len(s))
	}
	for _, l := range m.post {
		n += int64(cap(l)) * 8
	}
	n += int64(cap(m.raw)+cap(m.vec))*24 + int64(cap(m.live))
	for i := range m.raw {
		n += int64(cap(m.raw[i])+cap(m.vec[i])) * 8
	}
	return n + int64(cap(m.buf))*8 + int64(cap(m.toks))*16
}
