package recommend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/model/mf"
)

// retentionLog is a random log in the video preset: positive, negative and
// zero weights, views that do not consume, a few catalogue records, and
// event times that mostly advance but sometimes arrive late.
func retentionLog(seed uint64, users, items, n int) []event.Record {
	rng := rand.New(rand.NewPCG(seed, 77))
	type kind struct {
		t event.Type
		w float32
	}
	kinds := []kind{{event.Watch, 3}, {event.Watch, 1.1}, {event.View, 0.5}, {event.Like, 4}, {event.Dislike, -4}, {event.Share, 5}, {event.Comment, 3}}
	var recs []event.Record
	sec := 0
	for i := range n {
		if i%97 == 50 {
			recs = append(recs, event.Record{Kind: event.KindItemPut, Item: event.Item{ID: fmt.Sprint("i", rng.IntN(items)), Categories: []string{"c"}}})
		}
		sec += rng.IntN(40)
		at := sec
		if rng.IntN(10) == 0 {
			at -= rng.IntN(400) // late
		}
		k := kinds[rng.IntN(len(kinds))]
		r := ev(fmt.Sprint("u", rng.IntN(users)), fmt.Sprint("i", rng.IntN(items)), k.t, k.w, at)
		r.Event.Time = r.Event.Time.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		recs = append(recs, r)
	}
	return recs
}

// keptByRule applies the retention rule by brute force, independently of
// the engine: for each event in log order, the user's oldest events beyond
// the cap less one go, the clock moves to the event's time if later, and
// while some user's oldest kept event (the earliest, lowest user first) is
// older than max age before the clock, it goes. It returns which records
// are still kept at the end.
func keptByRule(recs []event.Record, r Retention) []bool {
	kept := make([]bool, len(recs))
	queues := map[string][]int{}
	var order []string // users in first-seen order, as the engine numbers them
	var clock int64
	age := r.maxAgeSeconds()
	for i, rec := range recs {
		if rec.Kind != event.KindEvent {
			continue
		}
		u := rec.Event.User
		if _, ok := queues[u]; !ok {
			order = append(order, u)
			queues[u] = nil
		}
		for r.MaxEventsPerUser > 0 && len(queues[u]) >= r.MaxEventsPerUser {
			kept[queues[u][0]] = false
			queues[u] = queues[u][1:]
		}
		clock = max(clock, rec.Event.Time.Unix())
		for age > 0 {
			best := ""
			var bt int64
			for _, v := range order {
				if q := queues[v]; len(q) > 0 {
					if t := recs[q[0]].Event.Time.Unix(); best == "" || t < bt {
						best, bt = v, t
					}
				}
			}
			if best == "" || bt >= clock-age {
				break
			}
			kept[queues[best][0]] = false
			queues[best] = queues[best][1:]
		}
		kept[i] = true
		queues[u] = append(queues[u], i)
	}
	for i, rec := range recs {
		if rec.Kind != event.KindEvent {
			kept[i] = true
		}
	}
	return kept
}

// reference builds an engine without retention from the kept records only,
// after declaring every user and item in the order e numbers them, so that
// dense ids (and so ties) agree.
func reference(t *testing.T, e *Engine, recs []event.Record, kept []bool) *Engine {
	t.Helper()
	ref := newTest(testConfig{Table: videoTable(t)})
	var pre []event.Record
	for u := range e.users.Len() {
		pre = append(pre, event.Record{Kind: event.KindUserPut, User: event.User{ID: e.users.Name(int32(u))}})
	}
	for it := range e.items.Len() {
		pre = append(pre, event.Record{Kind: event.KindItemPut, Item: event.Item{ID: e.items.Name(int32(it))}})
	}
	ref.Apply(pre)
	for i, r := range recs {
		if kept[i] {
			ref.Apply([]event.Record{r})
		}
	}
	return ref
}

// near: equal but for rounding (blended scores are float32).
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*(math.Abs(a)+math.Abs(b)) }

// sameRanking: the same items with the same scores, up to near-ties.
func sameRanking(got, want []Scored) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d items, reference %d", len(got), len(want))
	}
	for x := range got {
		if !near(got[x].Score, want[x].Score) {
			return fmt.Errorf("position %d: %v, reference %v", x, got[x], want[x])
		}
		if got[x].Item != want[x].Item && !slices.ContainsFunc(want, func(w Scored) bool { return w.Item == got[x].Item && near(w.Score, got[x].Score) }) {
			return fmt.Errorf("position %d: %v, not in the reference %v", x, got[x], want)
		}
	}
	return nil
}

// TestRetentionForgetsLikeAReference: for caps, ages and both, an engine
// that applied the whole log with retention holds exactly the events the
// rule keeps, in log order, and every model equals one built from those
// events alone: the same histories, item-kNN counts and neighbours (exact),
// trending scores (to rounding), and the same recommendations.
func TestRetentionForgetsLikeAReference(t *testing.T) {
	recs := retentionLog(1, 40, 60, 4000)
	for _, tc := range []Retention{
		{MaxEventsPerUser: 1},
		{MaxEventsPerUser: 3},
		{MaxEventsPerUser: 12},
		{MaxEventsPerUser: 80},
		{MaxAge: 1500 * time.Second},
		{MaxAge: 10 * time.Hour},
		{MaxEventsPerUser: 20, MaxAge: 3000 * time.Second},
	} {
		t.Run(fmt.Sprintf("cap%d-age%v", tc.MaxEventsPerUser, tc.MaxAge), func(t *testing.T) {
			e := newTest(testConfig{Table: videoTable(t), Retention: tc})
			for i := 0; i < len(recs); i += 37 {
				e.Apply(recs[i:min(i+37, len(recs))])
			}
			kept := keptByRule(recs, tc)
			ref := reference(t, e, recs, kept)

			// Histories: the kept events of each user, in log order.
			var want [][]history.Entry
			for u := range e.users.Len() {
				want = append(want, ref.hist.User(int32(u)))
			}
			nKept := 0
			for i, r := range recs {
				if kept[i] && r.Kind == event.KindEvent {
					nKept++
				}
			}
			st := e.Stats()
			if st.Events != nKept || st.Evicted != uint64(4000-nKept) {
				t.Fatalf("%d events kept, %d evicted; the rule keeps %d of 4000", st.Events, st.Evicted, nKept)
			}
			if tc.MaxEventsPerUser > 0 && tc.MaxEventsPerUser < 80 && st.Evicted == 0 {
				t.Fatal("nothing evicted: the case tests nothing")
			}
			for u := range e.users.Len() {
				if got := e.hist.User(int32(u)); !slices.Equal(got, want[u]) {
					t.Fatalf("user %s: history %v, reference %v", e.users.Name(int32(u)), got, want[u])
				}
			}
			// item-kNN: exact.
			if e.knnPairs() != ref.knnPairs() {
				t.Fatalf("item-kNN pairs %d, reference %d", e.knnPairs(), ref.knnPairs())
			}
			for it := range int32(e.items.Len()) {
				a, as := e.knn().SortedNeighbors(it)
				b, bs := ref.knn().SortedNeighbors(it)
				if !slices.Equal(a, b) || !slices.Equal(as, bs) {
					t.Fatalf("item %d: neighbours %v %v, reference %v %v", it, a, as, b, bs)
				}
			}
			// trending: equal to rounding, and the same top.
			for it := range int32(e.items.Len()) {
				if g, w := e.trend().Score(it), ref.trend().Score(it); math.Abs(g-w) > 1e-12*(math.Abs(g)+math.Abs(w)) || (g == 0) != (w == 0) {
					t.Fatalf("trending score of %d: %v, reference %v", it, g, w)
				}
			}
			if err := sameRanking(e.Trending(20, ""), ref.Trending(20, "")); err != nil {
				t.Fatalf("trending: %v", err)
			}
			if err := sameRanking(e.Trending(20, "c"), ref.Trending(20, "c")); err != nil {
				t.Fatalf("trending in a category: %v", err)
			}
			// Recommendations of every user: item-kNN alone exactly, the blend
			// to rounding.
			for u := range e.users.Len() {
				user := e.users.Name(int32(u))
				g := e.Recommend(Request{User: user, N: 10, Source: SourceItemKNN})
				w := ref.Recommend(Request{User: user, N: 10, Source: SourceItemKNN})
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("%s item_knn: %v, reference %v", user, g, w)
				}
				if err := sameRanking(e.Recommend(Request{User: user, N: 10}), ref.Recommend(Request{User: user, N: 10})); err != nil {
					t.Fatalf("%s blend: %v", user, err)
				}
			}
		})
	}
}

// TestRetentionReplayAndSnapshot: the same log applied live (small groups,
// reads in between), replayed in one call, or applied half, snapshotted,
// restored and applied on, gives the same state, byte for byte, and the
// same answers. (Answers are compared between engines that were not read
// before: a neighbour list computed by an earlier read keeps the norms of
// its neighbours as they were then until its own row changes.)
func TestRetentionReplayAndSnapshot(t *testing.T) {
	recs := retentionLog(2, 50, 80, 5000)
	keep := Retention{MaxEventsPerUser: 15, MaxAge: 2 * time.Hour}
	newE := func() *Engine { return newTest(testConfig{Table: videoTable(t), Retention: keep}) }

	live := newE()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(recs); {
		n := 1 + rng.IntN(30)
		live.Apply(recs[i:min(i+n, len(recs))])
		i += n
		live.Recommend(Request{User: fmt.Sprint("u", rng.IntN(50)), N: 5})
		live.Similar(fmt.Sprint("i", rng.IntN(80)), 5, "")
	}
	replay := newE()
	replay.Apply(recs)

	half := newE()
	half.Apply(recs[:2500])
	b := snapshotOf(t, half)
	restored := newE()
	if err := restored.ReadSnapshot(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	restored.Apply(recs[2500:])

	want := snapshotOf(t, replay)
	if replay.Stats().Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	for name, e := range map[string]*Engine{"live": live, "restored": restored} {
		if got := snapshotOf(t, e); !bytes.Equal(got, want) {
			t.Fatalf("%s: state differs from the replay's", name)
		}
	}
	for u := range 50 {
		user := fmt.Sprint("u", u)
		if g, w := fmt.Sprint(restored.Recommend(Request{User: user, N: 10})), fmt.Sprint(replay.Recommend(Request{User: user, N: 10})); g != w {
			t.Fatalf("restored %s: %s, replay %s", user, g, w)
		}
	}

	// A snapshot taken under another retention is refused: the log is
	// replayed instead.
	other := newTest(testConfig{Table: videoTable(t), Retention: Retention{MaxEventsPerUser: 16, MaxAge: 2 * time.Hour}})
	if err := other.ReadSnapshot(bytes.NewReader(want), int64(len(want))); !errors.Is(err, ErrSnapshotConfig) {
		t.Fatalf("want ErrSnapshotConfig, got %v", err)
	}
}

// TestRetentionFreshAndForgetting: at a cap of 2, every event is reflected
// by the next request, and an item evicted from a user's history counts as
// consumed no more.
func TestRetentionFreshAndForgetting(t *testing.T) {
	e := newTest(testConfig{Table: videoTable(t), Retention: Retention{MaxEventsPerUser: 2}})
	// Others pair x→y, y→z and z→w.
	var recs []event.Record
	for u := range 4 {
		for k, pair := range [][2]string{{"x", "y"}, {"y", "z"}, {"z", "w"}} {
			user := fmt.Sprint("o", u, k)
			recs = append(recs, ev(user, pair[0], event.Watch, 3, 10*u+k), ev(user, pair[1], event.Watch, 3, 10*u+k+1))
		}
	}
	e.Apply(recs)
	for k, step := range []struct{ item, next string }{{"x", "y"}, {"y", "z"}, {"z", "w"}} {
		e.Apply([]event.Record{ev("me", step.item, event.Watch, 3, 100+k)})
		got := e.Recommend(Request{User: "me", N: 3, Source: SourceItemKNN})
		if len(got) == 0 || got[0].Item != step.next {
			t.Fatalf("after %s: %v, want %s first", step.item, got, step.next)
		}
	}
	// "me" keeps y and z; x was evicted, so it may be recommended again.
	u, _ := e.users.Lookup("me")
	if h := e.hist.User(u); len(h) != 2 || e.items.Name(h[0].Item) != "y" || e.hist.Start(u) != 1 {
		t.Fatalf("history %v start %d", h, e.hist.Start(u))
	}
	if !has(e.Recommend(Request{User: "me", N: 10}), "x") {
		t.Fatalf("x was evicted but is still excluded: %v", e.Recommend(Request{User: "me", N: 10}))
	}
}

// TestRetentionMF: matrix factorisation forgets evicted events. Training
// reads only the kept events and records how far each user's history
// started; an eviction without a new event of that user re-solves their
// vector from what is left; an item without a trained vector whose every
// event was evicted has no vector any more.
func TestRetentionMF(t *testing.T) {
	keep := Retention{MaxAge: 1000 * time.Second}
	e := newTest(testConfig{Table: videoTable(t), Retention: keep,
		MF: mf.Config{ALS: als.Config{Factors: 8, Lambda: 1, Alpha: 5, Iterations: 10}, FoldInSteps: 8}})
	var recs []event.Record
	rng := rand.New(rand.NewPCG(5, 6))
	for u := range 30 {
		for _, k := range rng.Perm(20)[:8] {
			recs = append(recs, ev(fmt.Sprint("u", u), fmt.Sprint("i", k), event.Watch, 3, u*20+k))
		}
	}
	e.Apply(recs) // times 0..599: nothing old yet
	// "late" touches two of the items at 600 and 601, and the old ones at 800.
	e.Apply([]event.Record{ev("late", "i1", event.Watch, 3, 600), ev("late", "i2", event.Watch, 3, 601), ev("late", "i3", event.Watch, 3, 800)})
	d, err := e.MFData(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 243 || d.Starts == nil {
		t.Fatalf("training data: %d entries", len(d.Entries))
	}
	if _, err := e.TrainMF(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	late, _ := e.users.Lookup("late")
	trained := slices.Clone(e.mfm().Current().Model.UserVec(int(late)))

	// A new item seeded by one event at 1000, then time moves on: at 1601
	// the events of u0..u29 before 601 are gone and so is half of "late".
	e.Apply([]event.Record{ev("u5", "fresh", event.Watch, 3, 1000)})
	if e.Stats().MF.FreshItems != 1 {
		t.Fatalf("fresh items %d", e.Stats().MF.FreshItems)
	}
	e.Apply([]event.Record{ev("other", "i9", event.Watch, 3, 1601)})
	if h := e.hist.User(late); len(h) != 2 || e.hist.Start(late) != 1 {
		t.Fatalf("late kept %d events from %d", len(h), e.hist.Start(late))
	}
	// Its vector is re-solved from what is kept, warm-started from the trained one.
	folds := e.Stats().MF.FoldIns
	got := e.mfm().UserVector(late, e.hist.User(late), e.hist.Start(late))
	var items []int32
	var weights []float32
	for _, h := range e.hist.User(late) {
		items, weights = append(items, h.Item), append(weights, h.Weight)
	}
	if want := e.mfm().Current().Model.FoldInFrom(trained, items, weights, 8); !slices.Equal(got, want) || e.Stats().MF.FoldIns != folds+1 {
		t.Fatalf("after eviction: vector %v, want a fold-in of the kept events %v", got, want)
	}
	// The fresh item's only event goes at 2001 (older than 1000 s).
	e.Apply([]event.Record{ev("other", "i8", event.Watch, 3, 2001)})
	if e.Stats().MF.FreshItems != 0 {
		t.Fatalf("fresh items after its event was evicted: %d", e.Stats().MF.FreshItems)
	}
	for _, user := range []string{"u5", "other"} {
		if has(e.Recommend(Request{User: user, N: 30, Source: SourceMF}), "fresh") {
			t.Fatalf("%s: mf still recommends an item whose events were evicted", user)
		}
	}
	// Training again reads what is kept; a user's version counts every
	// event they had, evicted ones included.
	d, err = e.MFData(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Versions[late] != 3 || d.Starts[late] != 3 || len(d.Entries) != 2 {
		t.Fatalf("training data after eviction: %d entries, late %d from %d", len(d.Entries), d.Versions[late], d.Starts[late])
	}
}
