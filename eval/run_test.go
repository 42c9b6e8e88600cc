package eval

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/recommend"
)

func tiny(t *testing.T, evs [][3]string) ([]event.Record, *event.Table, func() *recommend.Engine) {
	tb, _ := event.Preset(event.PresetEcommerce)
	var recs []event.Record
	for i, e := range evs {
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{
			User: e[0], Item: e[1], Type: event.Purchase, Weight: 10, Value: 1,
			Time: time.Unix(1700000000+int64(i)*60, 0)}})
		if e[2] != "" {
			recs[len(recs)-1].Event.Type = event.View
			recs[len(recs)-1].Event.Weight = 1
		}
	}
	return recs, tb, func() *recommend.Engine { return newDefault(tb) }
}

// TestChronoOnATinyWorld: everyone who bought x bought y; c bought x in
// training and y in the test part, so item-kNN finds it at rank 1, while
// trending (z is the most bought) does not.
func TestChronoOnATinyWorld(t *testing.T) {
	recs, tb, newEngine := tiny(t, [][3]string{
		{"a", "x", ""}, {"a", "y", ""}, {"b", "x", ""}, {"b", "y", ""},
		{"d", "z", ""}, {"e", "z", ""}, {"f", "z", ""}, {"g", "z", ""}, {"c", "x", ""},
		{"c", "y", ""}, {"h", "w", ""},
	})
	rep, err := Run(recs, tb, newEngine, Config{Protocol: Chrono, Ks: []int{1}, TrainFraction: 0.85})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Metrics{}
	for _, r := range rep.Results {
		if r.Scored != 1 {
			t.Fatalf("%s scored %d users, want 1 (c)", r.Model, r.Scored)
		}
		got[r.Model] = r.Metrics[0]
	}
	if got[ModelItemKNN].HitRate != 1 || got[ModelItemKNN].NDCG != 1 || got[ModelTrending].HitRate != 0 || got[ModelBlend].HitRate != 1 {
		t.Fatalf("%+v", got)
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, rep, "ndcg"); err != nil || !strings.HasPrefix(buf.String(), "<svg") || !strings.Contains(buf.String(), "item_knn") {
		t.Fatalf("svg: %v %.80s", err, buf.String())
	}
	if !strings.Contains(rep.Table(), "item_knn") {
		t.Fatal(rep.Table())
	}
}

func TestLeaveLastHoldsOutEachUsersLast(t *testing.T) {
	recs, tb, newEngine := tiny(t, [][3]string{
		{"e", "x", ""}, {"e", "y", ""}, {"e", "w", ""}, {"f", "x", ""}, {"f", "y", ""}, {"f", "w", ""},
		{"a", "x", ""}, {"a", "y", ""}, {"b", "x", ""}, {"b", "y", ""}, {"c", "x", ""}, {"c", "y", ""}, {"d", "z", ""},
	})
	rep, err := Run(recs, tb, newEngine, Config{Protocol: LeaveLast, Ks: []int{1}, Models: []string{ModelItemKNN}})
	if err != nil {
		t.Fatal(err)
	}
	// a, b, c hold out y, which follows x in e's and f's training history:
	// found. e and f hold out w, which nobody trained on: missed. d has no
	// training history left: not scored.
	if r := rep.Results[0]; r.Scored != 5 || r.Metrics[0].HitRate != 0.6 {
		t.Fatalf("%+v", r)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	recs, tb, newEngine := tiny(t, [][3]string{{"a", "x", ""}, {"a", "y", ""}, {"b", "x", ""}, {"b", "z", ""}})
	one, _, _ := tiny(t, [][3]string{{"a", "x", ""}, {"a", "y", ""}})
	for _, tc := range []struct {
		recs    []event.Record
		cfg     Config
		mention string
	}{
		{recs, Config{Protocol: "random"}, "unknown protocol"},
		{recs, Config{Protocol: Chrono, Models: []string{"magic"}}, "unknown model"},
		{recs, Config{Protocol: Chrono, Ks: []int{3}}, "not below"},
		{recs, Config{Protocol: Chrono, Ks: []int{0}}, "positive"},
		{one, Config{Protocol: Chrono, Ks: []int{1}}, "at least 2"},
		{nil, Config{Protocol: Chrono}, "no interactions"},
	} {
		if _, err := Run(tc.recs, tb, newEngine, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%+v: want an error mentioning %q, got %v", tc.cfg, tc.mention, err)
		}
	}
}

// TestItemKNNBeatsTrendingLeaveLast on ml-100k: the personal model must beat
// popularity on each user's last interaction.
func TestItemKNNBeatsTrendingLeaveLast(t *testing.T) {
	recs, table := loadRecords(t, "ml-100k")
	rep, err := Run(recs, table, func() *recommend.Engine { return newDefault(table) },
		Config{Protocol: LeaveLast, Ks: []int{10}, Models: []string{ModelTrending, ModelItemKNN}})
	if err != nil {
		t.Fatal(err)
	}
	tr, knn := rep.Results[0].Metrics[0], rep.Results[1].Metrics[0]
	t.Logf("leave-last NDCG@10: trending %.4f, item_knn %.4f", tr.NDCG, knn.NDCG)
	if knn.NDCG <= tr.NDCG {
		t.Fatalf("item_knn %.4f does not beat trending %.4f", knn.NDCG, tr.NDCG)
	}
}

// TestTrainedMFBeatsTrendingOnHeldOut: matrix factorisation trained on
// ml-100k with each user's last interaction held out ranks those held-out
// items better than popularity does.
func TestTrainedMFBeatsTrendingOnHeldOut(t *testing.T) {
	recs, table := loadRecords(t, "ml-100k")
	rep, err := Run(recs, table, func() *recommend.Engine { return newDefault(table) },
		Config{Protocol: LeaveLast, Ks: []int{10}, Models: []string{ModelTrending, ModelMF}})
	if err != nil {
		t.Fatal(err)
	}
	tr, mf := rep.Results[0].Metrics[0], rep.Results[1].Metrics[0]
	t.Logf("leave-last NDCG@10: trending %.4f, mf %.4f; HitRate@10: %.4f, %.4f", tr.NDCG, mf.NDCG, tr.HitRate, mf.HitRate)
	if mf.NDCG <= tr.NDCG || mf.HitRate <= tr.HitRate {
		t.Fatalf("mf (NDCG %.4f) does not beat trending (%.4f)", mf.NDCG, tr.NDCG)
	}
}

// TestTunedBlendBeatsEASEChrono: the blend, its weights chosen on a
// validation split carved from the training events (the test events never
// looked at), beats the reference EASE (NDCG@10 0.181) on ml-100k chrono.
func TestTunedBlendBeatsEASEChrono(t *testing.T) {
	if shared.Race {
		t.Skip("accuracy check: run without -race (go test -run TestTunedBlend ./eval)")
	}
	recs, table := loadRecords(t, "ml-100k")
	newEngine := func() *recommend.Engine { return newDefault(table) }
	rows, best, err := GridBlend(recs, table, newEngine, nil, DefaultBlendGrid, 0.2, 10)
	if err != nil {
		t.Fatal(err)
	}
	top := rows[0]
	for _, r := range rows {
		if r.Validation > top.Validation {
			top = r
		}
	}
	if !maps.Equal(top.Weights, best) {
		t.Fatalf("best %+v is not the top validation row %+v", best, top)
	}
	rep, err := Run(recs, table, newEngine, Config{Protocol: Chrono, Ks: []int{10}, Models: []string{ModelBlend}, Blend: best})
	if err != nil {
		t.Fatal(err)
	}
	ndcg := rep.Results[0].Metrics[0].NDCG
	t.Logf("chrono NDCG@10 of the blend tuned on validation (%+v): %.4f", best, ndcg)
	if ndcg <= 0.181 {
		t.Fatalf("tuned blend NDCG@10 %.4f does not beat EASE's 0.181", ndcg)
	}
}

// TestMFRunsUnderEveryProtocol: mf is trained on the training part (and,
// in prequential, folds every event in) under each protocol.
func TestMFRunsUnderEveryProtocol(t *testing.T) {
	recs, tb, newEngine := tiny(t, [][3]string{
		{"e", "x", ""}, {"e", "y", ""}, {"e", "w", ""}, {"f", "x", ""}, {"f", "y", ""}, {"f", "w", ""},
		{"a", "x", ""}, {"a", "y", ""}, {"b", "x", ""}, {"b", "y", ""}, {"c", "x", ""}, {"c", "y", ""}, {"d", "z", ""},
	})
	rep, err := Run(recs, tb, newEngine, Config{Protocol: LeaveLast, Ks: []int{2}, Models: []string{ModelMF}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Model != ModelMF || r.Scored != 5 || r.Metrics[0].HitRate == 0 {
		t.Fatalf("%+v", r)
	}
	rep, err = Run(recs, tb, newEngine, Config{Protocol: Prequential, Ks: []int{2}, Models: []string{ModelMF}, WarmUp: 0.5, RetrainEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Model != ModelMF || r.Scored == 0 {
		t.Fatalf("prequential: %+v", r)
	}
}

// TestValidationNeverTouchesTheTest: with Validation set, neither part of
// the split holds an event of the test period.
func TestValidationNeverTouchesTheTest(t *testing.T) {
	var evs [][3]string
	for i := range 100 {
		evs = append(evs, [3]string{string(rune('a' + i%7)), string(rune('A' + i%11)), ""})
	}
	recs, _, _ := tiny(t, evs)
	cfg := Config{Protocol: Chrono, TrainFraction: 0.8, Validation: 0.25}
	train, test := split(recs, cfg)
	if len(train) != 60 || len(test) != 20 {
		t.Fatalf("train %d, validation %d; want 60 and 20 of the first 80 events", len(train), len(test))
	}
	last := recs[79].Event.Time
	for _, r := range append(train, test...) {
		if r.Event.Time.After(last) {
			t.Fatalf("an event of the test period (%v) was used", r.Event.Time)
		}
	}
	cfg.Validation = 0
	if train, test := split(recs, cfg); len(train) != 80 || len(test) != 20 || !test[0].Event.Time.After(last) {
		t.Fatalf("plain chrono: train %d test %d", len(train), len(test))
	}
}

// TestGridPicksTheBestValidationSetting: the chosen setting is the row with
// the highest validation score, and every row was scored on validation.
func TestGridPicksTheBestValidationSetting(t *testing.T) {
	var evs [][3]string
	for i := range 300 {
		u := i % 20
		evs = append(evs, [3]string{string(rune('a' + u)), string(rune('A' + (u/4*3+i/20)%26)), ""})
	}
	recs, tb, newEngine := tiny(t, evs)
	grid := Grid{Factors: []int{2, 4}, Lambda: []float32{0.1, 10}, Alpha: []float32{1, 5}}
	rows, best, err := GridMF(recs, tb, newEngine, mf.Config{ALS: als.Config{Iterations: 3}}, grid, 0.3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 8", len(rows))
	}
	top := rows[0]
	for _, r := range rows {
		if r.Validation > top.Validation {
			top = r
		}
	}
	if best.ALS.Factors != top.Factors || best.ALS.Lambda != top.Lambda || best.ALS.Alpha != top.Alpha {
		t.Fatalf("best %+v, top row %+v", best, top)
	}
	if !strings.Contains(GridTable(rows, best, 2), "<- best") {
		t.Fatal(GridTable(rows, best, 2))
	}
	if _, _, err := GridMF(recs, tb, newEngine, mf.Config{}, grid, 0, 2); err == nil {
		t.Fatal("a grid without a validation share must be refused")
	}
}

// TestNewItemsAreScoredApart: an item put in the catalogue but bought only
// in the test period can be found by the content source alone (its text
// matches what the user bought), never by a collaborative one; the report
// scores it apart, under both protocols.
func TestNewItemsAreScoredApart(t *testing.T) {
	tb, _ := event.Preset(event.PresetEcommerce)
	var recs []event.Record
	put := func(id, title string) {
		recs = append(recs, event.Record{Kind: event.KindItemPut, Item: event.Item{ID: id, Title: title}})
	}
	put("apple", "red apple crumble")
	put("pear", "green pear tart")
	put("plum", "dark plum jam")
	put("pie", "red apple pie")
	for i := range 30 {
		put(fmt.Sprint("filler", i), fmt.Sprint("unrelated thing number ", i))
	}
	at := 0
	buy := func(u, it string) {
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{User: u, Item: it, Type: event.Purchase, Weight: 10, Value: 1,
			Time: time.Unix(1700000000+int64(at)*60, 0)}})
		at++
	}
	for u := range 8 {
		buy(fmt.Sprint("u", u), "pear")
		buy(fmt.Sprint("u", u), "plum")
		buy(fmt.Sprint("u", u), fmt.Sprint("filler", u))
	}
	buy("fan", "apple")
	buy("fan", "pear")
	buy("fan", "pie") // the test period: the last event
	for _, protocol := range []string{Chrono, Prequential} {
		rep, err := Run(recs, tb, func() *recommend.Engine { return newDefault(tb) },
			Config{Protocol: protocol, Ks: []int{10}, TrainFraction: 0.96, WarmUp: 0.96, Models: []string{ModelItemKNN, "content"}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, r := range rep.Results {
			if r.NewScored != 1 || len(r.NewItems) != 1 {
				t.Fatalf("%s %s: %d new-item cases, want 1", protocol, r.Model, r.NewScored)
			}
			got[r.Model] = r.NewItems[0].HitRate
		}
		if got["content"] != 1 || got[ModelItemKNN] != 0 {
			t.Fatalf("%s: new-item hit rate %v; want content 1, item_knn 0", protocol, got)
		}
	}
}
