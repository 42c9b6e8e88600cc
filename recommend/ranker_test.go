package recommend

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/event"
)

// TestRankerBucketsByGap: the time since the user's latest event picks the
// row, and the user's next event moves them to another at once (the
// ranker is as fresh as the models): just active, the ranker trusts
// item_knn alone and the answer is item_knn's; back after ten days, it
// trusts trending alone.
func TestRankerBucketsByGap(t *testing.T) {
	e := newEngine(t)
	world(e)
	// Columns in another order than the engine's sources: matched by name.
	r := &Ranker{Sources: []string{SourceTrending, SourceItemKNN}, Gaps: []float64{1800, 86400},
		Weights: [][]float32{{0, 1}, {1, 1}, {1, 0}}}
	if err := e.SetRanker(r); err != nil {
		t.Fatal(err)
	}
	e.Apply([]event.Record{ev("me", "a", event.Watch, 3, 200)})
	got := e.Recommend(Request{User: "me", N: 3})
	if want := e.Recommend(Request{User: "me", N: 3, Source: SourceItemKNN}); !slices.Equal(itemsOf(got), itemsOf(want)) || len(got) == 0 {
		t.Fatalf("just active: %v, want item_knn's %v", itemsOf(got), itemsOf(want))
	}
	e.Apply([]event.Record{ev("other", "c", event.Watch, 3, 200+10*86400)}) // the clock moves on
	got = e.Recommend(Request{User: "me", N: 3})
	if want := e.Recommend(Request{User: "me", N: 3, Source: SourceTrending}); !slices.Equal(itemsOf(got), itemsOf(want)) || len(got) == 0 {
		t.Fatalf("back after ten days: %v, want trending's %v", itemsOf(got), itemsOf(want))
	}
	e.Apply([]event.Record{ev("me", "b", event.Watch, 3, 200+10*86400+5)})
	got = e.Recommend(Request{User: "me", N: 3})
	if want := e.Recommend(Request{User: "me", N: 3, Source: SourceItemKNN}); !slices.Equal(itemsOf(got), itemsOf(want)) {
		t.Fatalf("after their next event: %v, want item_knn's %v", itemsOf(got), itemsOf(want))
	}
	// Asked as of ten more days on (Request.At), the same user is one who
	// comes back.
	at := float64(t0.Unix()) + 200 + 20*86400
	got = e.Recommend(Request{User: "me", N: 3, At: at})
	if want := e.Recommend(Request{User: "me", N: 3, Source: SourceTrending}); !slices.Equal(itemsOf(got), itemsOf(want)) {
		t.Fatalf("asked ten days on: %v, want trending's %v", itemsOf(got), itemsOf(want))
	}
	if err := e.SetRanker(nil); err != nil || e.Ranker() != nil {
		t.Fatalf("SetRanker(nil): %v, %v", err, e.Ranker())
	}
}

// TestRankerExampleScoresAreTheBlends: ranking an Example's candidates by
// the weighted sum of its scores gives the engine's own blended answer.
func TestRankerExampleScoresAreTheBlends(t *testing.T) {
	e := newEngine(t)
	world(e)
	e.Apply([]event.Record{ev("me", "a", event.Watch, 3, 200)})
	x := e.Example("me", 10, 0)
	if x.Gap != 0 {
		t.Fatalf("gap %v, want 0 (the latest event is the user's)", x.Gap)
	}
	names := e.Sources()
	w := e.Blend()
	type cand struct {
		item  string
		score float32
	}
	var cs []cand
	for i, it := range x.Items {
		var v float32
		for j, name := range names {
			v += w[name] * x.Score(i, j, len(names))
		}
		if v > 0 {
			cs = append(cs, cand{e.items.Name(it), v})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.score != b.score {
			return -int(math.Copysign(1, float64(a.score-b.score)))
		}
		return strings.Compare(a.item, b.item)
	})
	got := itemsOf(e.Recommend(Request{User: "me", N: 10}))
	var want []string
	for _, c := range cs[:min(len(cs), 10)] {
		want = append(want, c.item)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("engine %v, example %v", got, want)
	}
	if g := e.Example("stranger", 10, 0).Gap; !math.IsInf(g, 1) {
		t.Fatalf("a stranger's gap %v, want +Inf", g)
	}
}

func TestRankerValidate(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		r       Ranker
		mention string
	}{
		{Ranker{}, "no sources"},
		{Ranker{Sources: []string{SourceTrending}, Gaps: []float64{10, 5}, Weights: [][]float32{{1}, {1}, {1}}}, "ascend"},
		{Ranker{Sources: []string{SourceTrending}, Gaps: []float64{-1}, Weights: [][]float32{{1}, {1}}}, "positive"},
		{Ranker{Sources: []string{SourceTrending}, Gaps: []float64{10}, Weights: [][]float32{{1}}}, "weight rows"},
		{Ranker{Sources: []string{SourceTrending}, Weights: [][]float32{{1, 2}}}, "weights for 1 sources"},
		{Ranker{Sources: []string{SourceTrending}, Weights: [][]float32{{float32(math.NaN())}}}, "finite"},
		{Ranker{Sources: []string{SourceTrending}, Weights: [][]float32{{0}}}, "every source 0"},
		{Ranker{Sources: []string{"nope"}, Weights: [][]float32{{1}}}, `no source "nope"`},
	} {
		err := e.SetRanker(&tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%+v: %v, want an error naming %q", tc.r, err, tc.mention)
		}
	}
	if e.Ranker() != nil {
		t.Fatal("a rejected ranker was installed")
	}
}

func TestRankerBucket(t *testing.T) {
	r := &Ranker{Gaps: []float64{10, 100}}
	for _, tc := range []struct {
		gap  float64
		want int
	}{{0, 0}, {9.9, 0}, {10, 1}, {99, 1}, {100, 2}, {1e9, 2}, {math.Inf(1), 2}} {
		if got := r.Bucket(tc.gap); got != tc.want {
			t.Errorf("Bucket(%v) = %d, want %d", tc.gap, got, tc.want)
		}
	}
}

// FuzzRanker: whatever a ranker file holds, installing it either fails
// with an error or serves requests without panicking.
func FuzzRanker(f *testing.F) {
	f.Add(`{"sources":["item_knn","trending"],"gaps":[1800,86400],"weights":[[1,0],[1,1],[0,1]]}`)
	f.Add(`{"sources":["trending"],"gaps":[],"weights":[[2]]}`)
	f.Add(`{"sources":["trending","mf"],"gaps":[5],"weights":[[0,1],[1e30,0]]}`)
	// With trees over the engine's features.
	cols := newEngine(f).FeatureNames()
	names, _ := json.Marshal(cols)
	f.Add(`{"sources":["item_knn","trending","mf"],"weights":[[1,1,1]],"pool":5,"features":` + string(names) +
		`,"forest":{"features":` + fmt.Sprint(len(cols)) + `,"trees":[{"nodes":[{"f":8,"t":0.5,"l":1,"r":2,"v":0},{"f":-1,"v":-1},{"f":-1,"v":3}]}]}}`)
	f.Add(`{"sources":["trending"],"weights":[[1]],"pool":1,"features":["a"],"forest":{"features":1,"trees":[{"nodes":[{"f":0,"l":0,"r":0}]}]}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var r Ranker
		if json.Unmarshal([]byte(doc), &r) != nil {
			return
		}
		e := newEngine(t)
		world(e)
		if e.SetRanker(&r) != nil {
			if e.Ranker() != nil {
				t.Fatal("a refused ranker is installed")
			}
			return
		}
		for _, u := range []string{"u1", "p3", "stranger"} {
			got := e.Recommend(Request{User: u, N: 5})
			for i := 1; i < len(got); i++ {
				if got[i].Score > got[i-1].Score {
					t.Fatalf("%s: out of order: %+v", u, got)
				}
			}
		}
	})
}
