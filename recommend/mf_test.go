package recommend

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
)

// twoWorlds: users a0..a19 watch items A0..A29, users b0..b19 watch items
// B0..B29 (each user a random 15 of them); nobody crosses over.
func twoWorlds(t testing.TB) *Engine {
	e := twoWorldsUntrained(t)
	if _, err := e.TrainMF(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func twoWorldsUntrained(t testing.TB) *Engine {
	tb, err := event.Preset(event.PresetVideo)
	if err != nil {
		t.Fatal(err)
	}
	e := newTest(testConfig{Table: tb, MF: mf.Config{ALS: als.Config{Factors: 8, Lambda: 1, Alpha: 5, Iterations: 15}, FoldInSteps: 8}})
	var recs []event.Record
	sec := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for _, w := range []string{"a", "b"} {
		for u := range 20 {
			for _, k := range rng.Perm(30)[:15] {
				sec++
				recs = append(recs, ev(fmt.Sprint(w, u), fmt.Sprint(strings.ToUpper(w), k), event.Watch, 3, sec))
			}
		}
	}
	e.Apply(recs)
	return e
}

func videoTable(t testing.TB) *event.Table {
	tb, err := event.Preset(event.PresetVideo)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func fromWorld(s []Scored, prefix string) int {
	n := 0
	for _, x := range s {
		if strings.HasPrefix(x.Item, prefix) {
			n++
		}
	}
	return n
}

// TestMFFoldsInTheEventJustAcknowledged: without retraining, a user who
// moves to the other world gets mf recommendations from it on the very next
// request, and the items they just watched are gone from them.
func TestMFFoldsInTheEventJustAcknowledged(t *testing.T) {
	e := twoWorlds(t)
	before := e.Recommend(Request{User: "a0", N: 10, Source: SourceMF})
	if len(before) != 10 || fromWorld(before, "A") != 10 {
		t.Fatalf("before: %v", itemsOf(before))
	}
	var moved []event.Record
	for k := range 20 {
		moved = append(moved, ev("a0", fmt.Sprint("B", k), event.Watch, 3, 10_000+k))
	}
	e.Apply(moved)
	after := e.Recommend(Request{User: "a0", N: 10, Source: SourceMF})
	// Without the fold-in the answer would not change at all.
	if fromWorld(after, "B") < 3 || !strings.HasPrefix(after[0].Item, "B") {
		t.Fatalf("after 20 B items (and 15 A), mf recommends %v", itemsOf(after))
	}
	for _, x := range after {
		if slices.ContainsFunc(moved, func(r event.Record) bool { return r.Event.Item == x.Item }) {
			t.Fatalf("recommends %s, just watched", x.Item)
		}
	}
	if e.Stats().MF.FoldIns == 0 {
		t.Fatal("no fold-in counted")
	}
	// A brand-new user is folded in from their first event.
	e.Apply([]event.Record{ev("newbie", "B3", event.Watch, 3, 20_000), ev("newbie", "B5", event.Watch, 3, 20_001)})
	if got := e.Recommend(Request{User: "newbie", N: 5, Source: SourceMF}); fromWorld(got, "B") < 3 || !strings.HasPrefix(got[0].Item, "B") {
		t.Fatalf("new user: %v", itemsOf(got))
	}
}

// TestMFFoldInMatchesAFullSolve: the served vector of a user who acted after
// training is the least-squares solution for their whole history against
// the fixed item factors (with enough steps, the exact one).
func TestMFFoldInMatchesAFullSolve(t *testing.T) {
	e := twoWorlds(t)
	e.Apply([]event.Record{ev("a3", "B1", event.Watch, 3, 50_000), ev("a3", "A7", event.Like, 5, 50_001)})
	u, _ := e.users.Lookup("a3")
	got := e.mfm().UserVector(u, e.hist.User(u), e.hist.Start(u))
	var items []int32
	var weights []float32
	for _, h := range e.hist.User(u) {
		items, weights = append(items, h.Item), append(weights, h.Weight)
	}
	want := e.mfm().Current().Model.FoldIn(items, weights, 8) // from zero, Factors steps: exact
	for a := range want {
		if d := got[a] - want[a]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("factor %d: served %v, full solve %v", a, got[a], want[a])
		}
	}
}

// TestMFNewItemGetsAVector: an item that did not exist at training gets a
// vector from the users who touched it and is recommended to their
// neighbours at once.
func TestMFNewItemGetsAVector(t *testing.T) {
	e := twoWorlds(t)
	var recs []event.Record
	for u := range 10 {
		recs = append(recs, ev(fmt.Sprint("b", u), "Bnew", event.Watch, 3, 30_000+u))
	}
	e.Apply(recs)
	if e.Stats().MF.FreshItems != 1 {
		t.Fatalf("fresh items: %+v", e.Stats().MF)
	}
	found := 0
	for u := 10; u < 20; u++ {
		if has(e.Recommend(Request{User: fmt.Sprint("b", u), N: 20, Source: SourceMF}), "Bnew") {
			found++
		}
	}
	if found < 5 {
		t.Fatalf("the new item reached %d of 10 b users", found)
	}
	for u := 10; u < 20; u++ {
		if has(e.Recommend(Request{User: fmt.Sprint("a", u), N: 10, Source: SourceMF}), "Bnew") {
			t.Fatalf("a%d, of the other world, gets Bnew in the top 10", u)
		}
	}
}

// TestMFEventsDuringTrainingAreKept: events applied between reading the
// training data and installing the model are not lost: their users are
// folded in and their new items get vectors.
func TestMFEventsDuringTrainingAreKept(t *testing.T) {
	e := twoWorlds(t)
	if got := e.Recommend(Request{User: "a1", N: 10, Source: SourceMF}); fromWorld(got, "B") != 0 {
		t.Fatalf("a1 before: %v", itemsOf(got))
	}
	d, err := e.MFData(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var recs []event.Record
	for k := range 20 {
		recs = append(recs, ev("a1", fmt.Sprint("B", k), event.Watch, 3, 40_000+k))
	}
	for u := range 10 {
		recs = append(recs, ev(fmt.Sprint("b", u), "Blate", event.Watch, 3, 41_000+u))
	}
	e.Apply(recs) // while "training" runs
	tr, err := mf.Train(context.Background(), d, e.mfm().Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.InstallMF(tr, nil)
	if got := e.Recommend(Request{User: "a1", N: 10, Source: SourceMF}); fromWorld(got, "B") < 3 {
		t.Fatalf("a1's B events were lost at install: %v", itemsOf(got))
	}
	if e.Stats().MF.FreshItems != 1 {
		t.Fatalf("Blate not known as a fresh item: %+v", e.Stats().MF)
	}
}

// TestMFSaveAndLoad: a saved model loaded into an engine rebuilt from the
// same log answers exactly as the original.
func TestMFSaveAndLoad(t *testing.T) {
	e := twoWorlds(t)
	e.Apply([]event.Record{ev("a2", "B4", event.Watch, 3, 60_000)})
	var buf bytes.Buffer
	if ok, err := e.WriteMF(&buf); err != nil || !ok {
		t.Fatal(ok, err)
	}
	e2 := newTest(testConfig{Table: videoTable(t), MF: e.mfm().Config()})
	var recs []event.Record
	for u := range e.users.Len() {
		for _, h := range e.hist.User(int32(u)) {
			recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{
				User: e.users.Name(int32(u)), Item: e.items.Name(h.Item), Type: h.Type, Weight: h.Weight, Time: t0}})
		}
	}
	e2.Apply(recs)
	if _, err := e2.LoadMF(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"a0", "a2", "b7"} {
		a := e.Recommend(Request{User: user, N: 10, Source: SourceMF})
		b := e2.Recommend(Request{User: user, N: 10, Source: SourceMF})
		if !slices.Equal(itemsOf(a), itemsOf(b)) {
			t.Fatalf("%s: %v before, %v after load", user, itemsOf(a), itemsOf(b))
		}
	}
	// Damaged files are refused, never installed.
	for _, cut := range []int{0, 10, buf.Len() / 2, buf.Len() - 1} {
		e3 := newTest(testConfig{Table: videoTable(t)})
		if _, err := e3.LoadMF(context.Background(), bytes.NewReader(buf.Bytes()[:cut]), int64(cut)); err == nil {
			t.Fatalf("a file cut at %d bytes was accepted", cut)
		}
		if e3.MFTrained() != nil {
			t.Fatal("a damaged file was installed")
		}
	}
}

// TestBlendNamesEachItemsSource: with mf trained, a blended answer mixes
// sources and names the one that contributed most to each item.
func TestBlendNamesEachItemsSource(t *testing.T) {
	e := twoWorlds(t)
	got := e.Recommend(Request{User: "a5", N: 20})
	seen := map[string]bool{}
	for _, x := range got {
		seen[x.Source] = true
		if x.Source != SourceItemKNN && x.Source != SourceMF && x.Source != SourceTrending {
			t.Fatalf("unknown source %q", x.Source)
		}
	}
	if !seen[SourceMF] || !seen[SourceItemKNN] {
		t.Fatalf("sources in the blend: %v (%v)", seen, got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Score > got[i-1].Score {
			t.Fatalf("not ranked: %v", got)
		}
	}
}

// TestBlendWeightsSteer: weighing only one source gives that source's answer.
func TestBlendWeightsSteer(t *testing.T) {
	e := twoWorlds(t)
	only := newTest(testConfig{Table: videoTable(t), MF: e.mfm().Config(), Blend: map[string]float32{SourceItemKNN: 0, SourceTrending: 0, SourceMF: 1}})
	var recs []event.Record
	for u := range e.users.Len() {
		for _, h := range e.hist.User(int32(u)) {
			recs = append(recs, event.Record{Kind: event.KindEvent, Event: event.Event{
				User: e.users.Name(int32(u)), Item: e.items.Name(h.Item), Type: h.Type, Weight: h.Weight, Time: t0}})
		}
	}
	only.Apply(recs)
	if _, err := only.TrainMF(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	blend := only.Recommend(Request{User: "b2", N: 8})
	mfOnly := only.Recommend(Request{User: "b2", N: 8, Source: SourceMF})
	if !slices.Equal(itemsOf(blend), itemsOf(mfOnly)) {
		t.Fatalf("blend %v, mf %v", itemsOf(blend), itemsOf(mfOnly))
	}
	for _, x := range blend {
		if x.Source != SourceMF {
			t.Fatalf("source %q with only mf weighed", x.Source)
		}
	}
}

// TestRecommendEachMatchesRecommend: answering several sources at once gives
// what one request per source gives.
func TestRecommendEachMatchesRecommend(t *testing.T) {
	e := twoWorlds(t)
	sources := []string{SourceItemKNN, "", SourceMF, SourceTrending}
	for _, user := range []string{"a0", "b9", "nobody"} {
		each := e.RecommendEach(user, 10, sources)
		for i, src := range sources {
			one := e.Recommend(Request{User: user, N: 10, Source: src})
			if !slices.Equal(itemsOf(each[i]), itemsOf(one)) {
				t.Fatalf("%s/%q: each %v, alone %v", user, src, itemsOf(each[i]), itemsOf(one))
			}
		}
	}
}

// TestBlendEqualsTheFullMerge: the blend equals the weighted sum of each
// source's scaled scores over the candidates each brings (its best
// perSource(n)), computed from each source's own answer.
func TestBlendEqualsTheFullMerge(t *testing.T) {
	e := twoWorlds(t)
	// More sources overlap when users cross over.
	e.Apply([]event.Record{ev("a4", "B2", event.Watch, 3, 70_000), ev("b6", "A9", event.Watch, 3, 70_001)})
	w := e.Blend()
	for _, user := range []string{"a0", "a4", "b6", "b11", "nobody"} {
		for _, n := range []int{3, 10} {
			score := map[string]float64{}
			part := func(list []Scored, weight float32, scale func(float64) float64) {
				for _, x := range list {
					score[x.Item] += float64(weight) * scale(x.Score)
				}
			}
			knn := e.Recommend(Request{User: user, N: perSource(n), Source: SourceItemKNN})
			if len(knn) > 0 {
				part(knn, w[SourceItemKNN], func(v float64) float64 { return v / knn[0].Score })
			}
			mfl := e.Recommend(Request{User: user, N: perSource(n), Source: SourceMF})
			if len(mfl) > 0 {
				hi, lo := mfl[0].Score, mfl[len(mfl)-1].Score
				part(mfl, w[SourceMF], func(v float64) float64 { return (v - lo) / (hi - lo) })
			}
			tr := e.Recommend(Request{User: user, N: perSource(n), Source: SourceTrending})
			if len(tr) > 0 {
				part(tr, w[SourceTrending], func(v float64) float64 { return v / tr[0].Score })
			}
			type kv struct {
				item  string
				score float64
			}
			var all []kv
			for k, v := range score {
				all = append(all, kv{k, v})
			}
			slices.SortFunc(all, func(a, b kv) int {
				if a.score > b.score {
					return -1
				}
				if a.score < b.score {
					return 1
				}
				return strings.Compare(a.item, b.item)
			})
			got := e.Recommend(Request{User: user, N: n})
			if len(got) != min(n, len(all)) {
				t.Fatalf("%s n=%d: %d items, want %d", user, n, len(got), min(n, len(all)))
			}
			for i, x := range got {
				if d := x.Score - all[i].score; d > 1e-4 || d < -1e-4 {
					t.Fatalf("%s n=%d rank %d: %s %.5f, full merge %s %.5f", user, n, i, x.Item, x.Score, all[i].item, all[i].score)
				}
			}
		}
	}
}

// FuzzLoadMF: a damaged model file is an error, never a panic, and an
// engine that accepted one still answers.
func FuzzLoadMF(f *testing.F) {
	e := twoWorlds(f)
	var buf bytes.Buffer
	if _, err := e.WriteMF(&buf); err != nil {
		f.Fatal(err)
	}
	b := buf.Bytes()
	f.Add(b)
	f.Add(b[:len(b)/3])
	f.Add([]byte{})
	flipped := bytes.Clone(b)
	flipped[len(flipped)/2] ^= 0xff
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := twoWorldsUntrained(t)
		if _, err := r.LoadMF(context.Background(), bytes.NewReader(data), int64(len(data))); err != nil {
			return
		}
		for _, u := range []string{"a0", "b3", "nobody"} {
			r.Recommend(Request{User: u, N: 5})
			r.Recommend(Request{User: u, N: 5, Source: SourceMF})
		}
	})
}

// TestMFCandidateCacheNeverServesStale: an engine that answered (and
// cached) just before a change answers after it exactly as an engine that
// never answered before: after the user's own events, hidden items, a
// change of category membership, and events on an item newer than the
// model.
func TestMFCandidateCacheNeverServesStale(t *testing.T) {
	cached, fresh := twoWorlds(t), twoWorlds(t)
	users := []string{"a0", "a7", "b3", "b15"}
	ask := func(e *Engine, user, cat string) []string {
		return itemsOf(e.Recommend(Request{User: user, N: 10, Source: SourceMF, Category: cat}))
	}
	for _, u := range users {
		ask(cached, u, "")
		ask(cached, u, "")
	}
	if cached.Stats().MF.CacheHits < uint64(len(users)) {
		t.Fatalf("second requests not answered from the cache: %+v", cached.Stats().MF)
	}
	put := func(id string, hidden bool, cats ...string) event.Record {
		return event.Record{Kind: event.KindItemPut, Item: event.Item{ID: id, Hidden: hidden, Categories: cats}}
	}
	hideTops := func() []event.Record {
		var r []event.Record
		for _, u := range users {
			r = append(r, put(ask(cached, u, "")[0], true))
		}
		return r
	}
	newItem := func() []event.Record {
		var r []event.Record
		for u := range 20 {
			r = append(r, ev(fmt.Sprint("b", u), "Bnew", event.Like, 5, 81_000+u))
		}
		return r
	}
	steps := []struct {
		name   string
		cat    string
		change func() []event.Record
		check  func(after []string) bool // the change must show in the answer
	}{
		{"own events", "", func() []event.Record {
			var r []event.Record
			for k := range 20 {
				r = append(r, ev("a0", fmt.Sprint("B", k), event.Watch, 3, 80_000+k))
			}
			return r
		}, nil},
		{"hidden items", "", hideTops, nil},
		{"category membership", "x", func() []event.Record {
			return []event.Record{put("A11", false, "x"), put("A12", false, "x"), put("B13", false, "x"), put("B14", false, "x")}
		}, nil},
		{"new item", "", newItem, func(after []string) bool { return slices.Contains(after, "Bnew") }},
	}
	cached.Apply([]event.Record{put("A3", false, "x"), put("B4", false, "x")})
	fresh.Apply([]event.Record{put("A3", false, "x"), put("B4", false, "x")})
	for _, st := range steps {
		for _, u := range users { // answer (and cache) right before the change
			ask(cached, u, st.cat)
		}
		recs := st.change()
		cached.Apply(recs)
		fresh.Apply(recs)
		shown := st.check == nil
		for _, u := range users {
			got, want := ask(cached, u, st.cat), ask(fresh, u, st.cat)
			if !slices.Equal(got, want) {
				t.Fatalf("after %s, %s: cached engine %v, fresh engine %v", st.name, u, got, want)
			}
			if st.check != nil && st.check(got) {
				shown = true
			}
		}
		if !shown {
			t.Fatalf("%s: the change shows in no answer, so the step tests nothing", st.name)
		}
	}
}
