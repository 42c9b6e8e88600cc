package ranker

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/model/trending"
	"github.com/streamrec/streamrec/recommend"
)

// planted builds examples over two sources where the user who is in a
// session touches next what source "near" ranks first, and the user who
// comes back after a week what source "far" ranks first; each source's
// other candidates are noise.
func planted(n int, seed uint64) []*Labelled {
	rng := rand.New(rand.NewPCG(seed, 2))
	var xs []*Labelled
	for i := range n {
		x := &Labelled{at: float64(i)}
		x.Gap = 60
		if i%2 == 1 {
			x.Gap = 30 * 86400
		}
		for c := range int32(20) {
			x.Items = append(x.Items, c)
			x.Scores = append(x.Scores, rng.Float32()*0.9, rng.Float32()*0.9)
		}
		near, far := int32(rng.IntN(20)), int32(rng.IntN(20))
		x.Scores[near*2] = 1
		x.Scores[far*2+1] = 1
		if x.Gap < 1800 {
			x.Labels = []int32{near}
		} else {
			x.Labels = []int32{far}
		}
		xs = append(xs, x)
	}
	return xs
}

var sources = []string{"near", "far"}

// TestFitLearnsWhomToTrust: on planted examples the fitted ranker trusts
// "near" in the session bucket and "far" in the week-long one, scores
// near-perfect NDCG on the held-out examples where the configured equal
// blend and the best single row cannot, and is accepted.
func TestFitLearnsWhomToTrust(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinBucket = 50
	res := Fit(context.Background(), planted(1000, 1), sources, nil, map[string]float32{"near": 1, "far": 1}, nil, cfg)
	if !res.Accepted || res.Ranker == nil {
		t.Fatalf("not accepted: %+v", res)
	}
	r := res.Ranker
	in, out := r.Weights[r.Bucket(60)], r.Weights[r.Bucket(30*86400)]
	if !(in[0] > in[1]) || !(out[1] > out[0]) {
		t.Fatalf("weights in a session %v, after a week %v: want near first, then far first", in, out)
	}
	if res.Candidate < 0.99 || res.Configured > 0.9 || res.Global > 0.9 {
		t.Fatalf("validation NDCG: fitted %.3f (want ≈ 1), configured %.3f, one row %.3f", res.Candidate, res.Configured, res.Global)
	}
	if res.Validating != 300 || res.Examples != 1000 {
		t.Fatalf("%d examples, %d validating; want 1000 and 300", res.Examples, res.Validating)
	}
}

// TestFitRejectsWhatDoesNotBeatServing: a serving ranker that already is
// the planted truth cannot be beaten, so the fitted one is rejected and the
// reason names what it did not beat; so is a fit on examples whose labels
// no weighting can reach.
func TestFitRejectsWhatDoesNotBeatServing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinBucket = 50
	truth := &recommend.Ranker{Sources: sources, Gaps: []float64{1800}, Weights: [][]float32{{1, 0}, {0, 1}}}
	res := Fit(context.Background(), planted(1000, 2), sources, nil, map[string]float32{"near": 1, "far": 1}, truth, cfg)
	if res.Accepted || !strings.Contains(res.Reason, "serving ranker") || res.Serving < 0.99 {
		t.Fatalf("%+v", res)
	}
	xs := planted(1000, 3)
	for _, x := range xs {
		x.Labels = []int32{99} // never a candidate
	}
	res = Fit(context.Background(), xs, sources, nil, map[string]float32{"near": 1, "far": 1}, nil, cfg)
	if res.Accepted || !strings.Contains(res.Reason, "configured blend") {
		t.Fatalf("unreachable labels: %+v", res)
	}
	res = Fit(context.Background(), planted(20, 4), sources, nil, map[string]float32{"near": 1}, nil, DefaultConfig())
	if res.Ranker != nil || !strings.Contains(res.Reason, "too few") {
		t.Fatalf("20 examples: %+v", res)
	}
}

// TestNDCG checks the scorer against hand-computed cases: ties go to the
// lower item id, as the engine breaks them.
func TestNDCG(t *testing.T) {
	s := newScorer(1, 2, 0)
	x := &Labelled{Example: recommend.Example{Items: []int32{7, 3, 5}, Scores: []float32{0.5, 0.5, 0.9}}}
	for _, tc := range []struct {
		labels []int32
		want   float64
	}{
		{[]int32{5}, 1},                // first
		{[]int32{3}, 1 / math.Log2(3)}, // second: 3 ties 7 and is lower
		{[]int32{7}, 0},                // third, past k = 2
		{[]int32{5, 3}, 1},             // both in order
		{[]int32{3, 7}, (1 / math.Log2(3)) / (1 + 1/math.Log2(3))}, // one of two
	} {
		x.Labels = tc.labels
		if got := s.ndcg(x, []float32{1}); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("labels %v: %v, want %v", tc.labels, got, tc.want)
		}
	}
}

func TestNext(t *testing.T) {
	c := Config{FirstRecords: 10, EveryRecords: 100}
	for _, tc := range [][2]uint64{{0, 10}, {9, 10}, {10, 20}, {40, 80}, {100, 200}, {150, 250}, {1000, 1100}} {
		if got := c.Next(tc[0]); got != tc[1] {
			t.Errorf("Next(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
}

// TestCollectLabelsTheHorizon: an example is asked before its event and
// labelled with that event's item and the user's next ones, up to the
// horizon in events and in time; the engine never sees the future when
// asked.
func TestCollectLabelsTheHorizon(t *testing.T) {
	tb, _ := event.Preset(event.PresetEcommerce)
	newEngine := func() *recommend.Engine {
		return recommend.New(recommend.Config{Table: tb, Models: []model.Model{
			itemknn.NewSource(itemknn.DefaultConfig()), trending.NewSource(trending.DefaultConfig())}})
	}
	t0 := time.Unix(1_700_000_000, 0)
	var recs []event.Record
	add := func(user, item string, at time.Duration) {
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{User: user, Item: item, Type: event.Purchase, Weight: 5, Value: 1, Time: t0.Add(at)}})
	}
	for i := range 20 { // the past: only builds state
		add(fmt.Sprint("old", i%4), fmt.Sprint("i", i%7), time.Duration(i)*time.Minute)
	}
	add("me", "a", time.Hour)
	add("me", "b", time.Hour+time.Minute)
	add("me", "c", time.Hour+2*time.Minute)
	add("me", "d", time.Hour+3*time.Minute)
	add("me", "e", 40*24*time.Hour) // past the 30-day horizon of every example above
	cfg := DefaultConfig()
	cfg.Validation = 5.0 / float64(len(recs))
	cfg.Horizon = 3
	cfg.TrainMF = false
	replay := Records(recs)
	eng := newEngine()
	xs, n, err := Collect(context.Background(), replay, uint64(len(recs)), eng, cfg)
	if err != nil || n != uint64(len(recs)) {
		t.Fatalf("%v, %d records", err, n)
	}
	name := func(ids []int32) []string {
		var out []string
		for _, id := range ids {
			for _, it := range []string{"a", "b", "c", "d", "e"} {
				if x, ok := eng.ItemIndex(it); ok && x == id {
					out = append(out, it)
				}
			}
		}
		return out
	}
	want := [][]string{{"a", "b", "c"}, {"b", "c", "d"}, {"c", "d"}, {"d"}, {"e"}}
	if len(xs) != len(want) {
		t.Fatalf("%d examples, want %d", len(xs), len(want))
	}
	for i, x := range xs {
		if got := name(x.Labels); !slices.Equal(got, want[i]) {
			t.Errorf("example %d labelled %v, want %v", i, got, want[i])
		}
	}
	if !math.IsInf(xs[0].Gap, 1) || xs[1].Gap != 60 || xs[4].Gap < 30*86400 {
		t.Errorf("gaps %v %v %v: want +Inf (first event), 60 s, over 30 days", xs[0].Gap, xs[1].Gap, xs[4].Gap)
	}
}

// TestTrainStopsWhenCancelled: a training whose context ends (a shutdown)
// returns the context's error and no ranker, whatever the log holds.
func TestTrainStopsWhenCancelled(t *testing.T) {
	tb, _ := event.Preset(event.PresetEcommerce)
	newEngine := func() *recommend.Engine {
		return recommend.New(recommend.Config{Table: tb, Models: []model.Model{trending.NewSource(trending.DefaultConfig())}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	replayed := 0
	replay := func(fn func(event.Record) error) error {
		for i := range 100_000 {
			if i == 5000 {
				cancel() // the shutdown arrives mid-replay
			}
			r := event.Record{Kind: event.KindEvent, Event: event.Event{User: fmt.Sprint("u", i%50), Item: fmt.Sprint("i", i%30), Type: event.Purchase, Weight: 5, Time: time.Unix(1_700_000_000+int64(i), 0)}}
			replayed++
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := Train(ctx, replay, 100_000, newEngine, nil, DefaultConfig())
	if err == nil || res.Ranker != nil || replayed > 5000+4096 {
		t.Fatalf("err %v, ranker %v, %d records replayed after the cancel at 5,000", err, res.Ranker, replayed)
	}
}

// TestCollectLearnsFromImpressions: an impression in the newest slice of
// the log becomes an example over exactly what was shown, labelled with
// the shown items the user then used (not the others they touched); and
// a ranker fitted on such examples trusts the source that ranked the used
// items first. Here users always take the shown item their own history
// leads to (item_knn's) over the popular one beside it (trending's).
func TestCollectLearnsFromImpressions(t *testing.T) {
	tb, _ := event.Preset(event.PresetEcommerce)
	newEngine := func() *recommend.Engine {
		return recommend.New(recommend.Config{Table: tb, Models: []model.Model{
			itemknn.NewSource(itemknn.DefaultConfig()), trending.NewSource(trending.DefaultConfig())}})
	}
	t0 := time.Unix(1_700_000_000, 0)
	var recs []event.Record
	at := time.Duration(0)
	add := func(user, item string) {
		at += time.Second
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{User: user, Item: item, Type: event.Purchase, Weight: 5, Value: 1, Time: t0.Add(at)}})
	}
	const users = 300
	for i := range 400 {
		add(fmt.Sprint("fan", i), "popular")
	}
	for k := range users {
		add(fmt.Sprint("other", k), fmt.Sprint("h", k))
		add(fmt.Sprint("other", k), fmt.Sprint("n", k))
		add(fmt.Sprint("u", k), fmt.Sprint("h", k))
	}
	past := len(recs)
	for k := range users {
		u := fmt.Sprint("u", k)
		at += time.Second
		recs = append(recs, event.Record{Kind: event.KindImpression, Impression: event.Impression{
			RecommendationID: fmt.Sprint("r", k), User: u, Items: []string{"popular", fmt.Sprint("n", k), "never-seen"}, Time: t0.Add(at)}})
		add(u, fmt.Sprint("n", k))         // takes the shown item item_knn leads to
		add(u, fmt.Sprint("elsewhere", k)) // and something never shown
	}
	cfg := DefaultConfig()
	cfg.Validation = float64(len(recs)-past) / float64(len(recs))
	cfg.TrainMF = false
	cfg.MinBucket = 20
	eng := newEngine()
	xs, _, err := Collect(context.Background(), Records(recs), uint64(len(recs)), eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	popular, _ := eng.ItemIndex("popular")
	var shown []*Labelled
	for _, x := range xs {
		if x.shown {
			shown = append(shown, x)
		}
	}
	if len(shown) != users {
		t.Fatalf("%d examples from impressions, want %d", len(shown), users)
	}
	for _, x := range shown {
		n, _ := eng.ItemIndex("n" + strings.TrimPrefix(x.user, "u"))
		if !slices.Equal(x.Items, []int32{popular, n}) {
			t.Fatalf("example of %s over %v, want the two known shown items %v", x.user, x.Items, []int32{popular, n})
		}
		if !slices.Equal(x.Labels, []int32{n}) {
			t.Fatalf("example of %s labelled %v, want only the shown item used (%d)", x.user, x.Labels, n)
		}
	}
	res := Fit(context.Background(), shown, eng.Sources(), nil, map[string]float32{"item_knn": 0.1, "trending": 1}, nil, cfg)
	if res.Ranker == nil || res.Shown != users {
		t.Fatalf("fit: %+v", res)
	}
	w := res.Ranker.Weights[res.Ranker.Bucket(1)]
	knn, trend := slices.Index(res.Ranker.Sources, "item_knn"), slices.Index(res.Ranker.Sources, "trending")
	if !(w[knn] >= w[trend]) || !res.Accepted || res.Candidate < 0.99 || !(res.Configured < 0.7) {
		t.Fatalf("weights %v (item_knn %d, trending %d), accepted %v, NDCG %.3f (configured %.3f): want item_knn trusted at least as much as trending, the used item first",
			w, knn, trend, res.Accepted, res.Candidate, res.Configured)
	}
}

// plantedFeature builds examples over two noisy sources where the item the
// user touches next is the one candidate whose item column 0 is above 0.9
// while the user's column 0 is set, and otherwise the one whose column 1
// is: no weighting of the sources finds it, a tree over the features can.
func plantedFeature(n int, seed uint64) ([]*Labelled, []string) {
	rng := rand.New(rand.NewPCG(seed, 3))
	var xs []*Labelled
	for i := range n {
		x := &Labelled{at: float64(i), Example: recommend.Example{Gap: 60}}
		hit := int32(rng.IntN(30))
		flag := i%2 == 0
		if flag {
			x.User[0] = 1
		}
		for c := range int32(30) {
			x.Items = append(x.Items, c)
			x.Scores = append(x.Scores, rng.Float32()*0.9+0.05, rng.Float32()*0.9+0.05)
			a, b := rng.Float32()*0.8, rng.Float32()*0.8
			if c == hit {
				if flag {
					a = 0.95
				} else {
					b = 0.95
				}
			}
			x.Item = append(x.Item, a, b)
		}
		x.Labels = []int32{hit}
		xs = append(xs, x)
	}
	// The vector's columns: 2 scores, 2 ranks, 2 item, 5 user, the blend.
	names := []string{"near", "far", "near.rank", "far.rank", "item.a", "item.b", "u0", "u1", "u2", "u3", "u4", "blend"}
	return xs, names
}

// TestFitGrowsTreesWhereFeaturesTell: on examples whose next item only the
// features reveal, the trees are kept, beat the weights alone on the
// held-out examples, and the ranker is accepted; without feature names the
// same examples get the weights alone.
func TestFitGrowsTreesWhereFeaturesTell(t *testing.T) {
	xs, names := plantedFeature(2000, 1)
	blend := map[string]float32{"near": 1, "far": 1}
	res := Fit(context.Background(), xs, sources, names, blend, nil, DefaultConfig())
	if res.Trees == 0 || res.Ranker == nil || res.Ranker.Forest == nil {
		t.Fatalf("no trees kept: %+v", res)
	}
	t.Logf("trees %d: %.4f, weights alone %.4f, configured %.4f", res.Trees, res.Candidate, res.Weights, res.Configured)
	if !res.Accepted || res.Candidate < res.Weights+0.3 {
		t.Fatalf("trees %.4f against the weights alone %.4f (accepted %v): want far above", res.Candidate, res.Weights, res.Accepted)
	}
	if err := res.Ranker.Validate(); err != nil {
		t.Fatal(err)
	}
	plain := Fit(context.Background(), xs, sources, nil, blend, nil, DefaultConfig())
	if plain.Trees != 0 || plain.Ranker.Forest != nil {
		t.Fatalf("no features named, yet %d trees", plain.Trees)
	}
	// A serving ranker with those trees is scored with them: a new
	// training on the same examples does not beat it by its weights alone.
	cfg := DefaultConfig()
	cfg.Trees = -1
	again := Fit(context.Background(), xs, sources, names, blend, res.Ranker, cfg)
	if again.Accepted || math.Abs(again.Serving-res.Candidate) > 1e-9 {
		t.Fatalf("weights alone %.4f accepted over serving trees %.4f (scored %.4f)", again.Candidate, res.Candidate, again.Serving)
	}
}

// TestFitStopsOnCancel: a training cancelled while the trees fit keeps
// no trees (the caller's context is the server's shutdown).
func TestFitStopsOnCancel(t *testing.T) {
	xs, names := plantedFeature(600, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Fit(ctx, xs, sources, names, map[string]float32{"near": 1, "far": 1}, nil, DefaultConfig())
	if res.Trees != 0 || res.Ranker != nil && res.Ranker.Forest != nil {
		t.Fatalf("cancelled, yet %d trees", res.Trees)
	}
}
