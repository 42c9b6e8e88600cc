package recommend

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/lambdamart"
	"github.com/streamrec/streamrec/model"
)

func put(id string, cats ...string) event.Record {
	return event.Record{Kind: event.KindItemPut, Item: event.Item{ID: id, Categories: cats}}
}

// catShop: items x0-x5 in category "x", y0-y5 in "y"; many users watch pairs
// within a category, so item_knn links them; y items are the more popular.
func catShop(e *Engine) {
	var recs []event.Record
	for i := range 6 {
		recs = append(recs, put(fmt.Sprint("x", i), "x"), put(fmt.Sprint("y", i), "y"))
	}
	sec := 0
	for u := range 30 {
		user := fmt.Sprint("u", u)
		c := "x"
		if u%3 != 0 {
			c = "y"
		}
		for j := range 3 {
			recs = append(recs, ev(user, fmt.Sprint(c, (u+j)%6), event.Watch, 3, sec))
			sec += 60
		}
	}
	// The shopper has watched y items only, and one x item long ago: every
	// item is a candidate (x through item_knn from x0, y through both).
	recs = append(recs, ev("me", "x0", event.Watch, 3, sec), ev("me", "y0", event.Watch, 3, sec+60), ev("me", "y1", event.Watch, 3, sec+120))
	e.Apply(recs)
}

// leaf and split build a forest by hand.
func leaf(v float32) lambdamart.Node { return lambdamart.Node{Feature: -1, Value: v} }

// boostFeature is a ranker whose one tree adds boost to every candidate
// whose feature named is above threshold.
func boostFeature(t *testing.T, e *Engine, feature string, threshold, boost float32) *Ranker {
	t.Helper()
	names := e.FeatureNames()
	f := slices.Index(names, feature)
	if f < 0 {
		t.Fatalf("no feature %q in %v", feature, names)
	}
	w := make([]float32, len(e.Sources()))
	for i := range w {
		w[i] = 1
	}
	forest := &lambdamart.Forest{F: len(names), Trees: []lambdamart.Tree{{Nodes: []lambdamart.Node{
		{Feature: int32(f), Threshold: threshold, Left: 1, Right: 2}, leaf(0), leaf(boost)}}}}
	return &Ranker{Sources: e.Sources(), Weights: [][]float32{w}, Forest: forest, Features: names, Pool: 50}
}

// TestForestRerankIsFreshAndExplained: a ranker whose tree boosts items of
// the categories the user's recent events are in moves the answer to the
// user's current interest with the very next request after their events,
// and explains it by that feature.
func TestForestRerankIsFreshAndExplained(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	if err := e.SetRanker(boostFeature(t, e, "item.category_affinity", 0.5, 10)); err != nil {
		t.Fatal(err)
	}
	// Two of three recent events in y: y items first.
	got := e.Recommend(Request{User: "me", N: 4, Explain: true})
	if len(got) < 4 {
		t.Fatalf("answer %v", itemsOf(got))
	}
	for _, s := range got {
		if !strings.HasPrefix(s.Item, "y") {
			t.Fatalf("mostly y lately: %v, want y items first", itemsOf(got))
		}
		if len(s.Features) == 0 || s.Features[0].Feature != "item.category_affinity" || s.Features[0].Effect != 10 {
			t.Fatalf("%s explained by %+v, want item.category_affinity's +10 first", s.Item, s.Features)
		}
	}
	// Three x events: now most of the latest events are x, and the next
	// request knows it.
	sec := 30*3*60 + 600
	e.Apply([]event.Record{ev("me", "x1", event.Watch, 3, sec), ev("me", "x2", event.Watch, 3, sec+1), ev("me", "x3", event.Watch, 3, sec+2)})
	got = e.Recommend(Request{User: "me", N: 2})
	for _, s := range got {
		if !strings.HasPrefix(s.Item, "x") {
			t.Fatalf("after three x events: %v, want x items first", itemsOf(got))
		}
	}
	// Asked without the ranker, the same engine blends the weights alone.
	plain := e.Recommend(Request{User: "me", N: 4, NoRanker: true, Explain: true})
	for _, s := range plain {
		if len(s.Features) > 0 {
			t.Fatalf("no ranker asked, yet %s explained by features %+v", s.Item, s.Features)
		}
	}
}

// TestRowsAreWhatServingScores: ranking an Example's pool by its Rows'
// blended score plus the forest gives the engine's own answer, scores
// and all: a ranker trains on exactly the vectors it will be served.
func TestRowsAreWhatServingScores(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	names := e.FeatureNames()
	// Trees over several features, item, user and source columns alike.
	var trees []lambdamart.Tree
	for j, name := range []string{"item.age", "trending.popularity", "item_knn.rank", "item_knn", "user.events", "item.category_affinity"} {
		f := int32(slices.Index(names, name))
		if f < 0 {
			t.Fatalf("no feature %q in %v", name, names)
		}
		trees = append(trees, lambdamart.Tree{Nodes: []lambdamart.Node{
			{Feature: f, Threshold: 0.3 + 0.1*float32(j), Left: 1, Right: 2}, leaf(-0.2 * float32(j)), leaf(0.3)}})
	}
	r := &Ranker{Sources: e.Sources(), Weights: [][]float32{{1, 0.5, 0.25}}, Forest: &lambdamart.Forest{F: len(names), Trees: trees}, Features: names, Pool: 50}
	if err := e.SetRanker(r); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"me", "u1", "u2", "stranger"} {
		got := e.Recommend(Request{User: user, N: 8})
		x := e.Example(user, 8, 0)
		w := make([]float32, len(e.Sources()))
		for j, name := range e.Sources() {
			w[j] = r.Weights[0][slices.Index(r.Sources, name)]
		}
		idx, rows := x.Rows(w, r.Pool, nil, nil)
		F := len(names)
		var want []model.Candidate
		for i, c := range idx {
			v := rows[i*F : (i+1)*F]
			want = append(want, model.Candidate{Item: x.Items[c], Score: v[F-1] + r.Forest.Predict(v)})
		}
		want = model.Top(want, 8)
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: served %v, rows give %d", user, itemsOf(got), len(want))
		}
		for i := range got {
			if got[i].Item != e.items.Name(want[i].Item) || got[i].Score != float64(want[i].Score) {
				t.Fatalf("%s: served %v (%v), rows %v at %d", user, itemsOf(got), got[i].Score, want[i], i)
			}
		}
	}
}

// TestExampleFeatures: the item and user columns say what they are
// defined to say.
func TestExampleFeatures(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	names := e.FeatureNames()
	k := len(e.Sources())
	col := func(name string) int { return slices.Index(names, name) - 2*k }
	x := e.Example("me", 10, 0)
	if len(x.Item) != len(x.Items)*e.ItemColumns() {
		t.Fatalf("%d item values for %d candidates of %d columns", len(x.Item), len(x.Items), e.ItemColumns())
	}
	ic := e.ItemColumns()
	for i, it := range x.Items {
		row := x.Item[i*ic : (i+1)*ic]
		name := e.items.Name(it)
		aff := row[col("item.category_affinity")]
		want := float32(1) / 3 // x: x0 of me's three events
		if strings.HasPrefix(name, "y") {
			want = 2.0 / 3
		}
		if math.Abs(float64(aff-want)) > 1e-6 {
			t.Errorf("%s: category affinity %v, want %v", name, aff, want)
		}
		if ev := row[col("trending.events")]; ev <= 0 {
			t.Errorf("%s: trending.events %v, want its events counted", name, ev)
		}
		if age := row[col("item.age")]; age <= 0 || math.IsNaN(float64(age)) {
			t.Errorf("%s: age %v, want positive (first event before the clock)", name, age)
		}
	}
	u := x.User
	uc := func(name string) float32 { return u[slices.Index(names, name)-2*k-ic] }
	if got, want := uc("user.events"), float32(math.Log1p(3)); math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("user.events %v, want log1p(3)", got)
	}
	if got := uc("user.gap"); got != 0 {
		t.Errorf("user.gap %v, want 0 (the latest event is the user's)", got)
	}
	if got := uc("user.session_events"); got != 3 {
		t.Errorf("user.session_events %v, want 3", got)
	}
	s := e.Example("stranger", 10, 0)
	if g := s.User[slices.Index(names, "user.gap")-2*k-ic]; math.Abs(float64(g)-math.Log1p(noGapHours)) > 1e-3 {
		t.Errorf("a stranger's gap %v, want log1p(%v)", g, noGapHours)
	}
}

// TestRankerForestValidate: a forest must fit the engine's features.
func TestRankerForestValidate(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	good := boostFeature(t, e, "item.age", 1, 1)
	for _, tc := range []struct {
		change  func(r *Ranker)
		mention string
	}{
		{func(r *Ranker) { r.Features = r.Features[1:] }, "feature names"},
		{func(r *Ranker) { r.Features = slices.Clone(r.Features); r.Features[0] = "nope" }, "not the engine's"},
		{func(r *Ranker) { r.Pool = 0 }, "pool"},
		{func(r *Ranker) { r.Pool = maxPool + 1 }, "pool"},
		{func(r *Ranker) { r.Forest = nil }, "without a forest"},
		{func(r *Ranker) { r.Forest = &lambdamart.Forest{F: r.Forest.F, Trees: []lambdamart.Tree{{}}} }, "ranker:"},
	} {
		r := *good
		tc.change(&r)
		if err := e.SetRanker(&r); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v, want an error naming %q", err, tc.mention)
		}
	}
	if e.Ranker() != nil {
		t.Fatal("a rejected ranker was installed")
	}
	if err := e.SetRanker(good); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotKeepsItemAge: the first event times are in the snapshot, so
// a restored engine describes items alike.
func TestSnapshotKeepsItemAge(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	var buf bytes.Buffer
	if _, err := e.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r := newEngine(t)
	if err := r.ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	a, b := e.Example("me", 10, 0), r.Example("me", 10, 0)
	if !slices.Equal(a.Item, b.Item) || a.User != b.User || len(a.Item) == 0 {
		t.Fatalf("restored item columns differ:\n%v\n%v", a.Item, b.Item)
	}
}

// TestForestUnderConcurrentWrites: readers reranked by trees (and
// explained) while the writer applies events and catalogue changes, and a
// new ranker is installed midway; run under -race by the README's test
// command. Every answer stays in score order (the invariants of answers
// under load are model/conformance's stress test).
func TestForestUnderConcurrentWrites(t *testing.T) {
	e := newEngine(t)
	catShop(e)
	if err := e.SetRanker(boostFeature(t, e, "item.category_affinity", 0.3, 2)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				user := fmt.Sprint("u", (i+r)%30)
				got := e.Recommend(Request{User: user, N: 5, Explain: i%3 == 0})
				for j := 1; j < len(got); j++ {
					if got[j].Score > got[j-1].Score {
						errs <- fmt.Errorf("%s: out of order %+v", user, got)
						return
					}
				}
				e.Rank(RankRequest{User: user, Items: []string{"x1", "y2", "x3", "nope"}})
			}
		}()
	}
	for i := range 300 {
		if i == 150 {
			if err := e.SetRanker(boostFeature(t, e, "trending.popularity", 0.5, 1)); err != nil {
				t.Error(err)
			}
		}
		recs := []event.Record{ev(fmt.Sprint("u", i%30), fmt.Sprint("x", i%6), event.Watch, 3, 10_000+i)}
		if i%50 == 0 {
			recs = append(recs, put(fmt.Sprint("z", i), "z", "x"))
		}
		e.Apply(recs)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
