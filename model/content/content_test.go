package content

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/snapshot"
)

// The model is every interface the engine looks for.
var (
	_ model.Model       = (*Model)(nil)
	_ model.Source      = (*Model)(nil)
	_ model.Evicter     = (*Model)(nil)
	_ model.Cataloguer  = (*Model)(nil)
	_ model.Snapshotter = (*Model)(nil)
	_ model.Sized       = (*Model)(nil)
	_ model.Statser     = (*Model)(nil)
	_ model.Explainer   = (*Model)(nil)
	_ model.Similar     = (*Model)(nil)
)

// world drives a model as the engine does: dense ids, histories, queries.
type world struct {
	m     *Model
	items int
	hist  history.Store
	mark  []uint32
	block []bool
	cats  [][]int32
	acc   []float32
	clock float64
}

func newWorld(cfg Config) *world { return &world{m: New(cfg)} }

func (w *world) put(item int32, it event.Item) {
	w.items = max(w.items, int(item)+1)
	w.m.PutItem(item, &it)
}

func (w *world) apply(user, item int32, wt float32, t uint32) {
	e := history.Entry{Item: item, Time: t, Weight: wt, Type: event.Rating}
	x := &model.Interaction{User: user, Item: item, Entry: e, History: w.hist.User(user), Users: max(w.hist.Users(), int(user)+1), Items: w.items}
	w.m.Apply(x)
	w.hist.Append(user, e)
	w.clock = max(w.clock, e.Seconds())
}

func (w *world) evict(user int32) {
	old, ok := w.hist.EvictOldest(user)
	if !ok {
		return
	}
	w.m.Evict(&model.Interaction{User: user, Item: old.Item, Entry: old, History: w.hist.User(user), Items: w.items})
}

// query is a request for user, the user's history marked as consumed.
func (w *world) query(user int32, want int) *model.Query {
	for len(w.mark) < w.items {
		w.mark, w.block, w.cats = append(w.mark, 0), append(w.block, false), append(w.cats, nil)
	}
	if len(w.acc) < w.items {
		w.acc = make([]float32, w.items)
	}
	q := &model.Query{User: user, N: want, Want: want, Now: w.clock, Category: -1, Items: w.items,
		Acc: w.acc, Mark: w.mark, Stamp: 1, Blocked: w.block, Cats: w.cats}
	clear(w.mark)
	if user >= 0 {
		q.History = w.hist.User(user)
		for _, h := range q.History {
			w.mark[h.Item] = 1
		}
	}
	return q
}

func (w *world) recommend(user int32, want int) []model.Candidate {
	q := w.query(user, want)
	c := w.m.Candidates(q, nil)
	for i, a := range w.acc {
		if a != 0 {
			panic(fmt.Sprintf("Candidates left Acc[%d] = %v", i, a))
		}
	}
	return c
}

func ids(cs []model.Candidate) []int32 {
	out := make([]int32, len(cs))
	for i, c := range cs {
		out[i] = c.Item
	}
	return out
}

// A small catalogue of two topics and a mixed item.
var topics = []event.Item{
	0: {Title: "Deep Space Voyage", Tags: []string{"space", "astronaut"}, Categories: []string{"Sci-Fi"}},
	1: {Title: "Space Station Rescue", Tags: []string{"space"}, Categories: []string{"Sci-Fi"}, Description: "An astronaut stranded in orbit."},
	2: {Title: "Orbit", Description: "Astronauts race to the moon.", Categories: []string{"Sci-Fi"}},
	3: {Title: "The Pasta Kitchen", Tags: []string{"cooking", "italian"}, Categories: []string{"Food"}},
	4: {Title: "Bread and Butter", Tags: []string{"cooking", "baking"}, Categories: []string{"Food"}, Description: "A baker's year."},
	5: {Title: "Italian Kitchen Nights", Tags: []string{"italian"}, Categories: []string{"Food"}},
	6: {Title: "Cooking in Space", Tags: []string{"cooking", "space"}, Categories: []string{"Food", "Sci-Fi"}},
}

func topicWorld(cfg Config) *world {
	w := newWorld(cfg)
	for i, it := range topics {
		w.put(int32(i), it)
	}
	return w
}

func TestFreshAfterEachEvent(t *testing.T) {
	w := topicWorld(Config{})
	if got := w.recommend(0, 5); len(got) != 0 {
		t.Fatalf("a user with no event got %v", got)
	}
	if got := w.recommend(-1, 5); len(got) != 0 {
		t.Fatalf("an unknown user got %v", got)
	}
	for _, step := range []struct {
		item  int32
		w     float32
		first []int32 // one of these leads the answer
	}{
		{0, 1, []int32{1, 2}},    // space
		{3, 5, []int32{5, 4, 6}}, // a strong cooking event takes over
		{5, 5, []int32{4, 6}},
	} {
		w.apply(0, step.item, step.w, 1000)
		got := w.recommend(0, 3)
		if len(got) == 0 || !slices.Contains(step.first, got[0].Item) {
			t.Fatalf("after item %d: %v, want one of %v first", step.item, got, step.first)
		}
		for _, c := range got {
			if c.Item == step.item || !(c.Score > 0 && c.Score <= 1) {
				t.Fatalf("after item %d: %v holds a consumed item or a score outside (0, 1]", step.item, got)
			}
		}
	}
}

func TestDecayFavoursRecentEvents(t *testing.T) {
	w := topicWorld(Config{HalfLifeSeconds: 3600})
	w.apply(0, 0, 1, 0)       // space, long ago
	w.apply(0, 3, 1, 10*3600) // cooking, ten half-lives later
	got := w.recommend(0, 1)
	if len(got) != 1 || !slices.Contains([]int32{4, 5, 6}, got[0].Item) {
		t.Fatalf("%v: the recent cooking event must lead", got)
	}
}

func TestDislikePushesDown(t *testing.T) {
	w := topicWorld(Config{})
	w.apply(0, 6, 1, 0)  // cooking in space: both topics
	w.apply(0, 3, -2, 1) // but dislikes a cooking title
	for _, c := range w.recommend(0, 10) {
		if c.Item == 4 || c.Item == 5 {
			t.Fatalf("%v: a cooking-only item survived the dislike", w.recommend(0, 10))
		}
	}
	if got := w.recommend(0, 1); len(got) == 0 || (got[0].Item != 0 && got[0].Item != 1 && got[0].Item != 2) {
		t.Fatalf("%v: a space item must lead", got)
	}
}

func TestColdStartItem(t *testing.T) {
	w := topicWorld(Config{})
	w.apply(0, 3, 1, 0)
	w.apply(0, 5, 1, 1)
	w.put(7, event.Item{Title: "Italian Cooking Masterclass", Tags: []string{"italian", "cooking"}})
	got := w.recommend(0, 1)
	if len(got) != 1 || got[0].Item != 7 {
		t.Fatalf("%v: the new item nobody touched must lead for a matching profile", got)
	}
}

func TestPutItemReplacesText(t *testing.T) {
	w := topicWorld(Config{})
	if s := w.m.Similarity(0, 1); s <= 0 {
		t.Fatalf("two space items: similarity %v", s)
	}
	w.put(1, event.Item{Title: "Pasta Italian Cooking", Tags: []string{"cooking", "italian"}})
	if s := w.m.Similarity(0, 1); s != 0 {
		t.Fatalf("item 1 is now about cooking: similarity to space %v", s)
	}
	if s := w.m.Similarity(3, 1); s <= 0.3 {
		t.Fatalf("item 1 is now about cooking: similarity to pasta %v", s)
	}
	q := w.query(-1, 10)
	if got := ids(w.m.Neighbours(q, 0, nil)); slices.Contains(got, 1) {
		t.Fatalf("neighbours of a space item %v still hold the replaced item", got)
	}
	for tm, l := range w.m.post {
		for _, p := range l {
			if p.item == 1 && !slices.ContainsFunc(w.m.vec[1], func(e tw) bool { return e.t == int32(tm) }) {
				t.Fatalf("term %q still lists the replaced item", w.m.terms[tm])
			}
		}
	}
}

func TestDeleteItem(t *testing.T) {
	w := topicWorld(Config{})
	w.apply(0, 3, 1, 0)
	w.m.DeleteItem(5)
	if got := ids(w.recommend(0, 10)); slices.Contains(got, 5) {
		t.Fatalf("%v holds the deleted item", got)
	}
	if s := w.m.Similarity(3, 5); s != 0 {
		t.Fatalf("similarity to a deleted item %v", s)
	}
	if got := w.m.Neighbours(w.query(-1, 5), 5, nil); len(got) != 0 {
		t.Fatalf("neighbours of a deleted item %v", got)
	}
	w.m.DeleteItem(5) // twice: nothing
	w.m.DeleteItem(99)
	if st := w.m.Stats().(Stats); st.Items != len(topics)-1 {
		t.Fatalf("stats %+v after a delete", st)
	}
}

func TestSkipAndCategory(t *testing.T) {
	w := topicWorld(Config{})
	w.apply(0, 0, 1, 0)
	q := w.query(0, 10)
	w.block[1] = true
	defer func() { w.block[1] = false }()
	got := ids(w.m.Candidates(q, nil))
	if slices.Contains(got, 1) || slices.Contains(got, 0) || len(got) == 0 {
		t.Fatalf("%v holds a blocked or consumed item, or nothing", got)
	}
}

func TestEvict(t *testing.T) {
	cfg := Config{QueryTerms: 10000, MaxTermShare: 1}
	w := topicWorld(cfg)
	only := topicWorld(cfg)
	w.apply(0, 0, 1, 0)
	w.apply(0, 3, 1, 100)
	only.apply(0, 3, 1, 100)
	w.evict(0)
	a, b := w.recommend(0, 10), only.recommend(0, 10)
	if len(a) != len(b) {
		t.Fatalf("after evicting the first event %v, never seen %v", a, b)
	}
	for i := range a {
		if a[i].Item != b[i].Item || math.Abs(float64(a[i].Score-b[i].Score)) > 1e-5 {
			t.Fatalf("after evicting the first event %v, never seen %v", a, b)
		}
	}
	w.evict(0)
	if got := w.recommend(0, 10); len(got) != 0 {
		t.Fatalf("every event evicted, yet %v", got)
	}
}

func TestBecause(t *testing.T) {
	w := topicWorld(Config{})
	w.apply(0, 0, 1, 0)
	w.apply(0, 3, 1, 1)
	w.apply(0, 4, -1, 2) // a dislike explains nothing
	q := w.query(0, 10)
	if got := w.m.Because(q, 1, nil); !slices.Equal(got, []int32{0}) {
		t.Fatalf("because of %v, want the space item 0", got)
	}
	if got := w.m.Because(q, 6, nil); len(got) != 2 || !slices.Contains(got, 0) || !slices.Contains(got, 3) {
		t.Fatalf("cooking in space because of %v, want 0 and 3", got)
	}
}

func TestAttributes(t *testing.T) {
	w := newWorld(Config{})
	w.put(0, event.Item{Title: "A", Attributes: json.RawMessage(`{"director":"Christopher Nolan","cast":["Tom Hardy"],"year":2010}`)})
	w.put(1, event.Item{Title: "B", Attributes: json.RawMessage(`{"director":"Christopher Nolan"}`)})
	w.put(2, event.Item{Title: "C", Attributes: json.RawMessage(`not json`)})
	var names []string
	for _, e := range w.m.vec[0] {
		names = append(names, w.m.terms[e.t])
	}
	for _, want := range []string{"christoph", "nolan", "$director=christopher nolan", "$cast=tom hardy", "hardi"} {
		if !slices.Contains(names, want) {
			t.Errorf("terms %q lack %q", names, want)
		}
	}
	if s := w.m.Similarity(0, 1); s <= 0.3 {
		t.Fatalf("same director: similarity %v", s)
	}
}

// randomWorld is a random catalogue over a small vocabulary, all put before
// the events.
func randomWorld(rng *rand.Rand, cfg Config, items, users, events int) *world {
	vocab := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
		"kilo", "lima", "mike", "novemb", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
		"whiskey", "xray", "yankee", "zulu", "北京", "上海", "东京"}
	text := func(n int) string {
		var b bytes.Buffer
		for range n {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteByte(' ')
		}
		return b.String()
	}
	w := newWorld(cfg)
	for i := range items {
		it := event.Item{Title: text(1 + rng.IntN(3)), Description: text(rng.IntN(8))}
		for range rng.IntN(3) {
			it.Tags = append(it.Tags, vocab[rng.IntN(len(vocab))])
		}
		it.Categories = []string{fmt.Sprint("c", rng.IntN(5))}
		w.put(int32(i), it)
	}
	for k := range events {
		wt := float32(1 + rng.IntN(4))
		if rng.IntN(6) == 0 {
			wt = -2
		}
		w.apply(int32(rng.IntN(users)), int32(rng.IntN(items)), wt, uint32(k*600))
	}
	return w
}

// bruteForce is Candidates by its definition, computed directly over every
// item in float64: the profile Σ w·2^{-(now-t)/h}·v over the user's
// ProfileItems latest entries; its query terms, the QueryTerms of largest
// magnitude among the terms listed by at least one and at most
// MaxTermShare of the live items (or commonFloor), rounding residue
// (below 1e-6 of the largest) left out; an item's score, the dot product of its
// vector with the query terms over the whole profile's norm; the Want best
// positive scores that q.Skip passes.
func bruteForce(w *world, u int32, want int) []model.Candidate {
	m, cfg := w.m, w.m.Config()
	h := w.hist.User(u)
	h = h[max(0, len(h)-cfg.ProfileItems):]
	prof := map[int32]float64{}
	for _, e := range h {
		f := float64(e.Weight) * math.Exp2((e.Seconds()-w.clock)/cfg.HalfLifeSeconds)
		for _, x := range m.vec[e.Item] {
			prof[x.t] += f * float64(x.w)
		}
	}
	var pn, top float64
	for _, v := range prof {
		top = max(top, math.Abs(v))
	}
	var sel []int32
	for t, v := range prof {
		pn += v * v
		if n := len(m.post[t]); math.Abs(v) > top*1e-6 && n > 0 && (cfg.MaxTermShare >= 1 || n <= m.floor || float64(n) <= cfg.MaxTermShare*float64(m.nLive)) {
			sel = append(sel, t)
		}
	}
	slices.SortFunc(sel, func(a, b int32) int {
		if c := cmp.Compare(math.Abs(prof[b]), math.Abs(prof[a])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	qw := map[int32]float64{}
	for _, t := range sel[:min(len(sel), cfg.QueryTerms)] {
		qw[t] = prof[t]
	}
	var out []model.Candidate
	q := w.query(u, want)
	for i := range int32(w.items) {
		var s float64
		for _, e := range m.vec[i] {
			s += qw[e.t] * float64(e.w)
		}
		if s /= math.Sqrt(pn); s > 1e-6 && !q.Skip(i) {
			out = append(out, model.Candidate{Item: i, Score: float32(s)})
		}
	}
	slices.SortFunc(out, func(a, b model.Candidate) int { return cmp.Compare(b.Score, a.Score) })
	return out[:min(want, len(out))]
}

// TestAgainstBruteForce: with bounds wide enough to keep every term, the
// profile is the decayed weighted sum of the vectors of the whole history,
// and Candidates and Neighbours are the top of a direct cosine over every
// item; with tight bounds (few profile items and query terms, common terms
// left out), Candidates is still exactly bruteForce: the pruned search
// loses nothing.
func TestAgainstBruteForce(t *testing.T) {
	for _, cfg := range []Config{
		{ProfileItems: 1 << 20, QueryTerms: 1 << 20, MaxTermShare: 1, HalfLifeSeconds: 86400},
		{ProfileItems: 20, QueryTerms: 8, MaxTermShare: 0.15, HalfLifeSeconds: 86400},
		{ProfileItems: 5, QueryTerms: 3, HalfLifeSeconds: 3600},
	} {
		rng := rand.New(rand.NewPCG(3, 4))
		const items, users = 300, 20
		w := randomWorld(rng, cfg, items, users, 600)
		w.m.floor = 0 // let a share of 300 items make terms common
		for u := range int32(users) {
			for _, want := range []int{1, 10, 40} {
				compareTop(t, fmt.Sprintf("%+v: user %d, want %d", cfg, u, want), w.recommend(u, want), bruteForce(w, u, want))
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const items = 300
	m := randomWorld(rng, Config{}, items, 20, 600).m
	for i := range int32(items) {
		var want []model.Candidate
		for j := range int32(items) {
			if s := dot(m.vec[i], m.vec[j]); j != i && s > 1e-6 {
				want = append(want, model.Candidate{Item: j, Score: s})
			}
		}
		slices.SortFunc(want, func(a, b model.Candidate) int { return cmp.Compare(b.Score, a.Score) })
		for _, n := range []int{1, 10} {
			w := &world{m: m, items: items}
			got := m.Neighbours(w.query(-1, n), i, nil)
			compareTop(t, fmt.Sprint("neighbours of ", i), got, want[:min(n, len(want))])
			for _, c := range got {
				if s := m.Similarity(i, c.Item); math.Abs(float64(s-c.Score)) > 1e-5 {
					t.Fatalf("Similarity(%d, %d) = %v, Neighbours said %v", i, c.Item, s, c.Score)
				}
			}
		}
	}
}

// compareTop checks that got and want score alike, position by position
// (items may swap only where the scores tie within rounding).
func compareTop(t *testing.T, what string, got, want []model.Candidate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d candidates, brute force %d\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for k := range got {
		if math.Abs(float64(got[k].Score-want[k].Score)) > 1e-4 {
			t.Fatalf("%s: position %d scores %v, brute force %v\n got %v\nwant %v", what, k, got[k].Score, want[k].Score, got, want)
		}
		if got[k].Item != want[k].Item && math.Abs(float64(got[k].Score-want[k].Score)) > 1e-6 {
			t.Fatalf("%s: position %d is %d, brute force %d\n got %v\nwant %v", what, k, got[k].Item, want[k].Item, got, want)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := randomWorld(rng, Config{ProfileItems: 10, QueryTerms: 6}, 200, 15, 400)
	w.m.DeleteItem(7)
	w.put(8, event.Item{Title: "replaced 東京 text"})
	var buf bytes.Buffer
	e := snapshot.NewEncoder(&buf)
	w.m.Encode(e)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	n := New(w.m.Config())
	d := snapshot.NewDecoder(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	n.Decode(d)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if n.Fingerprint() != w.m.Fingerprint() || New(Config{TitleWeight: 7}).Fingerprint() == w.m.Fingerprint() {
		t.Fatal("the fingerprint must follow the configuration")
	}
	same := func(what string, a, b []model.Candidate) {
		t.Helper()
		if !slices.Equal(a, b) {
			t.Fatalf("%s after a round trip: %v, before %v", what, b, a)
		}
	}
	for u := range int32(15) {
		q := w.query(u, 20)
		a := w.m.Candidates(q, nil)
		b := n.Candidates(q, nil)
		same(fmt.Sprint("user ", u), a, b)
		if len(a) > 0 && !slices.Equal(w.m.Because(q, a[0].Item, nil), n.Because(q, a[0].Item, nil)) {
			t.Fatal("Because differs after a round trip")
		}
	}
	for i := range int32(200) {
		q := w.query(-1, 10)
		same(fmt.Sprint("neighbours of ", i), w.m.Neighbours(q, i, nil), n.Neighbours(q, i, nil))
	}
	if w.m.Stats() != n.Stats() {
		t.Fatalf("stats %+v after a round trip, before %+v", n.Stats(), w.m.Stats())
	}
	// Both go on alike: a new item and more events.
	n.PutItem(200, &event.Item{Title: "alpha bravo new"})
	w.put(200, event.Item{Title: "alpha bravo new"})
	n.Apply(&model.Interaction{User: 3, Item: 200, Entry: history.Entry{Item: 200, Time: 1e6, Weight: 2}})
	w.apply(3, 200, 2, 1e6)
	same("after more events", w.m.Candidates(w.query(3, 20), nil), n.Candidates(w.query(3, 20), nil))

	// Every truncation is an error, never a panic.
	for cut := 0; cut < buf.Len(); cut += 1 + cut/8 {
		d := snapshot.NewDecoder(bytes.NewReader(buf.Bytes()[:cut]), int64(cut))
		New(Config{}).Decode(d)
		if d.Err() == nil {
			t.Fatalf("a snapshot cut at %d of %d bytes decoded", cut, buf.Len())
		}
	}
}

func TestIDFRefreshKeepsIndexExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	w := randomWorld(rng, Config{}, 500, 1, 0)
	st := w.m.Stats().(Stats)
	if st.Refreshes < 10 {
		t.Fatalf("%d refreshes over 500 puts: the idf is not kept current", st.Refreshes)
	}
	// Postings are exactly the vectors, in order.
	n := 0
	for tm, l := range w.m.post {
		if !slices.IsSortedFunc(l, postingOrder) {
			t.Fatalf("postings of %q out of order", w.m.terms[tm])
		}
		for _, p := range l {
			if !slices.Contains(w.m.vec[p.item], tw{int32(tm), p.w}) {
				t.Fatalf("posting %v of %q is not in the item's vector", p, w.m.terms[tm])
			}
		}
		n += len(l)
	}
	total := 0
	for _, v := range w.m.vec {
		total += len(v)
	}
	if n != total {
		t.Fatalf("%d postings for %d vector entries", n, total)
	}
}

func TestNoAllocationPerRequest(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	w := randomWorld(rng, Config{}, 500, 5, 200)
	q := w.query(1, 50)
	dst := make([]model.Candidate, 0, 64)
	q.Touched = make([]int32, 0, 500)
	because := make([]int32, 0, 8)
	allocs := testing.AllocsPerRun(50, func() {
		dst = w.m.Candidates(q, dst[:0])
		dst = w.m.Neighbours(q, 3, dst[:0])
		because = w.m.Because(q, 3, because[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a request", allocs)
	}
}
