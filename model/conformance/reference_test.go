package conformance

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/trending"
	"github.com/streamrec/streamrec/recommend"
)

// checkTopN: the source's answer for user is the best n of its own scores
// for every item (Engine.Rank over the whole catalogue: ScoreItems for a
// model.Scorer, otherwise Candidates restricted to the list), the items
// the user consumed left out. Rank's scores are the source's scaled to
// [0, 1], an order-preserving map, so the answer's items must be in Rank's
// order and none left out may rank above one answered (within eps, for
// scores the scaling makes equal).
func checkTopN(t *testing.T, e *recommend.Engine, w *world, name, user string, used map[string]bool, n int) {
	t.Helper()
	const eps = 1e-6
	got := e.Recommend(recommend.Request{User: user, N: n, Source: name})
	ranked := e.Rank(recommend.RankRequest{User: user, Items: w.itemIDs()})
	score := map[string]float64{}
	var eligible []recommend.Scored
	for _, r := range ranked {
		if !r.ColdStart && !used[r.Item] {
			score[r.Item] = r.Score
			eligible = append(eligible, r)
		}
	}
	if len(got) != min(n, len(eligible)) {
		t.Fatalf("%s: %d answered, want %d (of %d the source scores): got %v, all %v", user, len(got), min(n, len(eligible)), len(eligible), brief(got), brief(eligible))
	}
	low := math.Inf(1)
	for i, g := range got {
		s, ok := score[g.Item]
		if !ok {
			t.Fatalf("%s: %s answered, which the source does not score for them or they consumed: %v", user, g.Item, brief(got))
		}
		if i > 0 && (g.Score > got[i-1].Score || s > low+eps) {
			t.Fatalf("%s: answer out of order at %d: %v (ranked %v)", user, i, brief(got), brief(eligible))
		}
		low = min(low, s)
	}
	for _, r := range eligible {
		if position(got, r.Item) < 0 && r.Score > low+eps {
			t.Fatalf("%s: %s (%v) left out but ranks above the answer's last (%v): got %v, ranked %v", user, r.Item, r.Score, low, brief(got), brief(eligible))
		}
	}
}

// TestTopNMatchesBruteForce runs checkTopN for every user every 20 events
// of the world and of more events after it (matrix factorisation trained
// halfway, so that its fold-in is what is checked after).
func TestTopNMatchesBruteForce(t *testing.T) {
	forEach(t, func(t *testing.T, preset, name string) {
		if !isSource(t, name) {
			t.Skipf("%s answers nothing", name)
		}
		w := newWorld(t, preset, 8, true)
		e := newEngine(t, preset, name, recommend.Retention{})
		stream := append(slices.Clone(w.events), w.more(9)...)
		e.Apply(w.catalogue())
		half := len(stream) / 2
		e.Apply(stream[:half])
		trainMF(t, e)
		users := append(slices.Clone(w.users), "late", "stranger")
		for at := half; at < len(stream); at += 20 {
			e.Apply(stream[at:min(at+20, len(stream))])
			used := consumed(w.table, stream[:min(at+20, len(stream))])
			for _, u := range users {
				checkTopN(t, e, w, name, u, used[u], 10)
			}
		}
	})
}

// trendRef is trending by brute force from the events: every kept event's
// weight decayed by the half-life to the latest event's time.
type trendRef struct {
	tau  float64
	now  float64
	keep int                       // events kept per user (0: all)
	top  int                       // the model's top list
	evs  map[string][]event.Record // per user, kept, oldest first
}

func (r *trendRef) add(rec event.Record) {
	ev := rec.Event
	r.now = max(r.now, float64(ev.Time.UnixMilli())/1000)
	l := append(r.evs[ev.User], rec)
	if r.keep > 0 && len(l) > r.keep {
		l = l[len(l)-r.keep:]
	}
	r.evs[ev.User] = l
}

func (r *trendRef) scores() map[string]float64 {
	out := map[string]float64{}
	for _, l := range r.evs {
		for _, rec := range l {
			t := float64(rec.Event.Time.UnixMilli()) / 1000
			out[rec.Event.Item] += float64(rec.Event.Weight) * math.Exp((t-r.now)/r.tau)
		}
	}
	return out
}

// answer is the reference's best n for a user who consumed used: of the
// top list (the top best items of positive score, highest first, the
// earlier catalogued on equal scores), those the user did not consume.
func (r *trendRef) answer(w *world, used map[string]bool, n int) []recommend.Scored {
	sc := r.scores()
	var out []recommend.Scored
	for _, id := range w.itemIDs() { // catalogue order is dense id order
		if s := sc[id]; s > 1e-9 {
			out = append(out, recommend.Scored{Item: id, Score: s, Source: trending.Name})
		}
	}
	slices.SortStableFunc(out, func(a, b recommend.Scored) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	out = slices.DeleteFunc(out[:min(r.top, len(out))], func(x recommend.Scored) bool { return used[x.Item] })
	return out[:min(n, len(out))]
}

// TestTrendingReference: after every single event, with and without
// retention, with the default top list (longer than the catalogue) and one
// of 5 (so that items fall out of it and must come back), trending's answer for the event's user and for a user it has
// never seen is the reference's, scores within float32 rounding. The video
// stream ends with dislikes on the top item: the first leaves it on top
// (it still outranks the rest: it must stay in place), later ones take it
// below the others.
func TestTrendingReference(t *testing.T) {
	if !slices.Contains(modelNames(), trending.Name) {
		t.Skip("no trending model configured")
	}
	tau := time.Duration(config.Default().Trending.HalfLife).Seconds() / math.Ln2
	for _, preset := range event.Presets() {
		for _, v := range []struct{ keep, top int }{{0, 0}, {3, 0}, {0, 5}, {3, 5}} {
			t.Run(fmt.Sprintf("%s/keep%d/top%d", preset, v.keep, v.top), func(t *testing.T) {
				c := config.Default()
				if v.top > 0 {
					c.Trending.TopSize = v.top
				}
				keep := v.keep
				w := newWorld(t, preset, 10, true)
				e := newEngineOf(t, c, preset, trending.Name, recommend.Retention{MaxEventsPerUser: keep})
				ref := &trendRef{tau: tau, keep: keep, top: c.Trending.TopSize, evs: map[string][]event.Record{}}
				e.Apply(w.catalogue())
				var seen []event.Record
				step := func(rec event.Record) {
					t.Helper()
					e.Apply([]event.Record{rec})
					ref.add(rec)
					seen = append(seen, rec)
					// What the user consumed among their kept events: an
					// evicted event no longer excludes its item.
					used := consumed(w.table, ref.evs[rec.Event.User])[rec.Event.User]
					got := e.Recommend(recommend.Request{User: rec.Event.User, N: 10, Source: trending.Name})
					for i := range got {
						got[i].Score = float64(float32(got[i].Score))
					}
					if msg := sameList(got, ref.answer(w, used, 10), 1e-5); msg != "" {
						t.Fatalf("after event %d (%s %s %v): %s\n  got  %v\n  want %v", len(seen), rec.Event.User, rec.Event.Item, rec.Event.Type, msg, brief(got), brief(ref.answer(w, used, 10)))
					}
					cold := e.Recommend(recommend.Request{User: "stranger", N: 10, Source: trending.Name})
					if msg := sameList(cold, ref.answer(w, nil, 10), 1e-5); msg != "" {
						t.Fatalf("after event %d, a user never seen: %s\n  got  %v\n  want %v", len(seen), msg, brief(cold), brief(ref.answer(w, nil, 10)))
					}
				}
				for _, rec := range append(slices.Clone(w.events), w.more(11)...) {
					step(rec)
				}
				if preset != event.PresetVideo {
					return
				}
				// Fans of the top item until it leads by more than one
				// dislike's weight, then dislikes on it, from users who
				// never touched it.
				at := seen[len(seen)-1].Event.Time
				top := ref.answer(w, nil, 2)
				for k := 0; top[0].Score-top[1].Score <= 6; k++ {
					at = at.Add(time.Second)
					step(w.record(fmt.Sprint("fan", k), top[0].Item, event.Watch, 1, at, ""))
					top = ref.answer(w, nil, 2)
				}
				for k := 0; ; k++ {
					at = at.Add(time.Second)
					step(w.record(fmt.Sprint("hater", k), top[0].Item, event.Dislike, 1, at, ""))
					now := ref.answer(w, nil, 2)
					if now[0].Item != top[0].Item {
						if k == 0 {
							t.Fatalf("one dislike took %s off the top: the case of a top item that stays is not tested", top[0].Item)
						}
						break
					}
					if k > 100 {
						t.Fatal("dislikes never took the top item down")
					}
				}
			})
		}
	}
}
