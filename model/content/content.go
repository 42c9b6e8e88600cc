package content

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"

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
	// MaxProfileTerms bounds a user's profile: its terms of largest
	// magnitude are kept.
	MaxProfileTerms int
	// QueryTerms is how many of the profile's largest terms score
	// candidates.
	QueryTerms int
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
// times a description's word, 64 terms an item, 128 a profile, 32 of them
// to query, a 30-day half-life, every posting read.
func DefaultConfig() Config {
	return Config{
		TitleWeight: 3, DescriptionWeight: 1, TagWeight: 2, CategoryWeight: 1.5, AttributeWeight: 1,
		MaxitemTerms: 64, MaxProfileTerms: 128, QueryTerms: 32,
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

// profile is a user's decayed sum of item vectors.
type profile struct {
	ref   float64 // reference time of the stored values
	n     uint32  // events applied and not evicted
	terms []tw    // by |w| descending, then term
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

	users []profile

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
	if cfg.MaxProfileTerms <= 0 {
		cfg.MaxProfileTerms = d.MaxProfileTerms
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
	return &Model{cfg: cfg, tau: cfg.HalfLifeSeconds / math.Ln2, dict: map[string]int32{}}
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
	return fmt.Sprintf("content/1 tok=1 title=%g desc=%g tag=%g cat=%g attr=%g itemterms=%d profileterms=%d queryterms=%d halflife=%g",
		c.TitleWeight, c.DescriptionWeight, c.TagWeight, c.CategoryWeight, c.AttributeWeight,
		c.MaxitemTerms, c.MaxProfileTerms, c.QueryTerms, c.HalfLifeSeconds)
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

// rebaseAt keeps a profile's stored values in float32's comfort: beyond
// e^20 they are rescaled to the latest event's time.
const rebaseAt = 20

// Apply adds the event's weighted, decayed item vector to the user's
// profile.
func (m *Model) Apply(x *model.Interaction) {
	if x.User < 0 {
		return
	}
	for int(x.User) >= len(m.users) {
		m.users = append(m.users, profile{})
	}
	p := &m.users[x.User]
	p.n++
	v := m.itemVec(x.Item)
	w := x.Entry.Weight
	if len(v) == 0 || w == 0 || math.IsNaN(float64(w)) {
		return
	}
	t := x.Seconds()
	if len(p.terms) == 0 {
		p.ref = t
	}
	e := (t - p.ref) / m.tau
	if e > rebaseAt {
		f := float32(math.Exp(-e))
		for k := range p.terms {
			p.terms[k].w *= f
		}
		p.ref, e = t, 0
	}
	if e < -80 { // older than the profile by far: worth nothing
		return
	}
	m.merge(p, v, w*float32(math.Exp(e)), false)
}

// Evict subtracts the evicted event's contribution, as the doc says:
// approximately, never past zero, exactly empty when the user has no event
// left.
func (m *Model) Evict(x *model.Interaction) {
	if x.User < 0 || int(x.User) >= len(m.users) {
		return
	}
	p := &m.users[x.User]
	if p.n > 0 {
		p.n--
	}
	if p.n == 0 {
		p.terms = nil
		return
	}
	v := m.itemVec(x.Item)
	w := x.Entry.Weight
	if len(v) == 0 || w == 0 || len(p.terms) == 0 || math.IsNaN(float64(w)) {
		return
	}
	e := (x.Seconds() - p.ref) / m.tau
	if e < -80 || e > rebaseAt {
		return
	}
	m.merge(p, v, -w*float32(math.Exp(e)), true)
}

func (m *Model) itemVec(item int32) []tw {
	if item < 0 || int(item) >= len(m.vec) {
		return nil
	}
	return m.vec[item]
}

// merge adds f·v to p's terms; sub: only to the terms p has, none pushed
// past zero. The result keeps its MaxProfileTerms largest terms.
func (m *Model) merge(p *profile, v []tw, f float32, sub bool) {
	buf := append(m.buf[:0], p.terms...)
	for k, e := range buf {
		m.pos[e.t] = int32(k + 1)
	}
	for _, e := range v {
		k := m.pos[e.t]
		switch {
		case k > 0:
			old := buf[k-1].w
			nw := old + f*e.w
			if sub && (nw == 0 || (nw > 0) != (old > 0)) {
				nw = 0
			}
			buf[k-1].w = nw
		case !sub:
			buf = append(buf, tw{e.t, f * e.w})
			m.pos[e.t] = int32(len(buf))
		}
	}
	var top float32
	for _, e := range buf {
		m.pos[e.t] = 0
		top = max(top, abs(e.w))
	}
	// Drop what rounding left of cancelled terms.
	buf = slices.DeleteFunc(buf, func(e tw) bool { return abs(e.w) <= top*1e-6 })
	slices.SortFunc(buf, byMagnitude)
	if len(buf) > m.cfg.MaxProfileTerms {
		buf = buf[:m.cfg.MaxProfileTerms]
	}
	m.buf = buf
	p.terms = append(p.terms[:0], buf...)
	if len(p.terms) == 0 {
		p.terms = nil
	}
}

func byTerm(a, b tw) int { return cmp.Compare(a.t, b.t) }

func byMagnitude(a, b tw) int {
	if c := cmp.Compare(abs(b.w), abs(a.w)); c != 0 {
		return c
	}
	return cmp.Compare(a.t, b.t)
}

func abs(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// Candidates answers the items whose vectors are closest (cosine) to the
// user's profile, over the postings of its QueryTerms largest terms.
func (m *Model) Candidates(q *model.Query, dst []model.Candidate) []model.Candidate {
	if q.User < 0 || int(q.User) >= len(m.users) || q.Want <= 0 {
		return dst
	}
	terms := m.users[q.User].terms
	if len(terms) == 0 {
		return dst
	}
	var ss float64
	for _, e := range terms {
		ss += float64(e.w) * float64(e.w)
	}
	inv := float32(1 / math.Sqrt(ss))
	if len(terms) > m.cfg.QueryTerms {
		terms = terms[:m.cfg.QueryTerms]
	}
	return m.score(q, terms, inv, -1, dst)
}

// score accumulates Σ w·posting over terms into q.Acc, scaled by inv, and
// appends the q.Want best positive items that q.Skip passes (never self),
// best first. q.Acc is left zero.
func (m *Model) score(q *model.Query, terms []tw, inv float32, self int32, dst []model.Candidate) []model.Candidate {
	acc := q.Acc
	touched := q.Touched[:0]
	for _, e := range terms {
		l := m.post[e.t]
		if len(l) > m.cfg.MaxPostings {
			l = l[:m.cfg.MaxPostings]
		}
		for _, p := range l {
			if int(p.item) >= len(acc) {
				continue
			}
			a := acc[p.item]
			if a == 0 {
				touched = append(touched, p.item)
			}
			a += e.w * p.w
			if a == 0 { // keep "touched" exact when contributions cancel
				a = math.SmallestNonzeroFloat32
			}
			acc[p.item] = a
		}
	}
	base := len(dst)
	for _, it := range touched {
		s := acc[it] * inv
		acc[it] = 0
		if s <= 0 || it == self {
			continue
		}
		h := dst[base:]
		if len(h) == q.Want && !better(s, it, h[0]) {
			continue
		}
		if q.Skip(it) {
			continue
		}
		c := model.Candidate{Item: it, Score: min(s, 1)}
		if len(h) < q.Want {
			dst = append(dst, c)
			up(dst[base:], len(h))
		} else {
			h[0] = c
			down(h, 0)
		}
	}
	q.Touched = touched[:0]
	slices.SortFunc(dst[base:], func(a, b model.Candidate) int {
		if better(a.Score, a.Item, b) {
			return -1
		}
		return 1
	})
	return dst
}

// better orders candidates: higher score, then lower item id.
func better(s float32, item int32, c model.Candidate) bool {
	if s != c.Score {
		return s > c.Score
	}
	return item < c.Item
}

// up and down keep h a heap with the worst candidate at h[0].
func up(h []model.Candidate, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !better(h[p].Score, h[p].Item, h[i]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func down(h []model.Candidate, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && better(h[l].Score, h[l].Item, h[r]) {
			w = r
		}
		if !better(h[i].Score, h[i].Item, h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// Neighbours answers the items whose vectors are closest (cosine) to
// item's.
func (m *Model) Neighbours(q *model.Query, item int32, dst []model.Candidate) []model.Candidate {
	v := m.itemVec(item)
	if len(v) == 0 || q.Want <= 0 {
		return dst
	}
	return m.score(q, v, 1, item, dst)
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
	Items        int     `json:"items"`         // items with text
	Terms        int     `json:"terms"`         // terms in the dictionary
	LiveTerms    int     `json:"live_terms"`    // terms some live item has
	Postings     int     `json:"postings"`      // entries of the inverted index
	Users        int     `json:"users"`         // users with a non-empty profile
	ProfileTerms float64 `json:"profile_terms"` // mean terms of a non-empty profile
	Refreshes    uint64  `json:"idf_refreshes"` // times every vector was recomputed
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
	n := 0
	for _, p := range m.users {
		if len(p.terms) > 0 {
			s.Users++
			n += len(p.terms)
		}
	}
	if s.Users > 0 {
		s.ProfileTerms = float64(n) / float64(s.Users)
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
	n += int64(cap(m.users)) * 40
	for _, p := range m.users {
		n += int64(cap(p.terms)) * 8
	}
	return n + int64(cap(m.buf))*8 + int64(cap(m.toks))*16
}
