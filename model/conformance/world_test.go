package conformance

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/recommend"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// topics give the catalogue's text: each item's title, tags and category
// come from one topic, so content has something to match.
var topics = [][]string{
	{"mountain", "river", "forest", "hiking", "camping", "trail"},
	{"galaxy", "rocket", "planet", "orbit", "astronaut", "comet"},
	{"pasta", "cheese", "tomato", "basil", "garlic", "olive"},
	{"guitar", "drums", "piano", "melody", "rhythm", "concert"},
}

// The pivot items: A then X in many sessions (and alike in text), so that
// an event on A must bring X.
const (
	pivotA = "pa"
	pivotX = "px"
)

// world is a small generated log: the catalogue, the users and their
// events in time order.
type world struct {
	preset string
	table  *event.Table
	items  []event.Item
	users  []string
	events []event.Record // KindEvent only, in log order
}

func presetTable(t testing.TB, preset string) *event.Table {
	c := config.Default()
	c.Preset = preset
	tb, err := c.Table()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// record makes an event record of the preset, its weight from the table.
func (w *world) record(user, item string, typ event.Type, value float64, at time.Time, session string) event.Record {
	r, ok := w.table.Rule(typ)
	if !ok {
		panic(fmt.Sprintf("%s does not accept %v", w.preset, typ))
	}
	value = min(max(value, r.MinValue), r.MaxValue)
	ev := event.Event{User: user, Item: item, Type: typ, Value: value, Time: at, Weight: w.table.Weight(typ, value)}
	if session != "" {
		ev.Context = []byte(fmt.Sprintf(`{"session_id":%q,"device":"web"}`, session))
	}
	return event.Record{Kind: event.KindEvent, Event: ev}
}

// types are the preset's interaction types, as a generator draws them.
func (w *world) randomType(rng *rand.Rand) (event.Type, float64) {
	if w.preset == event.PresetVideo {
		switch k := rng.IntN(10); {
		case k < 4:
			return event.Watch, 0.2 + 0.8*rng.Float64()
		case k < 6:
			return event.View, 1
		case k < 7:
			return event.Like, 1
		case k < 8:
			return event.Dislike, 1
		case k < 9:
			return event.Share, 1
		default:
			return event.Comment, 1
		}
	}
	switch k := rng.IntN(10); {
	case k < 5:
		return event.View, 1
	case k < 7:
		return event.Click, 1
	case k < 8:
		return event.Favorite, 1
	case k < 9:
		return event.Cart, 1
	default:
		return event.Purchase, 1
	}
}

// strong is a consumed type of large positive weight.
func (w *world) strong() event.Type {
	if w.preset == event.PresetVideo {
		return event.Like
	}
	return event.Cart
}

// newWorld generates the catalogue (36 topic items and the two pivots), 12
// users with 3 or 4 sessions each (gaps over 30 minutes, every other user's
// sessions named by a session_id in the context, one user switching
// session_id without a gap) and, when pattern, 12 users who do A then X.
func newWorld(t testing.TB, preset string, seed uint64, pattern bool) *world {
	w := &world{preset: preset, table: presetTable(t, preset)}
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range 36 {
		tp := topics[i%len(topics)]
		title := fmt.Sprintf("%s %s %s", tp[rng.IntN(6)], tp[rng.IntN(6)], tp[rng.IntN(6)])
		w.items = append(w.items, event.Item{ID: fmt.Sprintf("i%02d", i), Title: title,
			Description: "the " + tp[rng.IntN(6)] + " collection",
			Categories:  []string{fmt.Sprint("topic", i%len(topics))}, Tags: []string{tp[rng.IntN(6)], tp[rng.IntN(6)]}})
	}
	w.items = append(w.items,
		event.Item{ID: pivotA, Title: "zebra quantum lantern", Categories: []string{"pivot"}, Tags: []string{"zebra", "quantum"}},
		event.Item{ID: pivotX, Title: "zebra quantum compass", Categories: []string{"pivot"}, Tags: []string{"zebra", "quantum"}})
	var evs []event.Record
	for u := range 12 {
		user := fmt.Sprintf("u%02d", u)
		w.users = append(w.users, user)
		fav := u % len(topics)
		at := t0.Add(time.Duration(rng.IntN(3600)) * time.Second)
		for s := range 3 + rng.IntN(2) {
			sid := ""
			if u%2 == 1 {
				sid = fmt.Sprintf("%s-s%d", user, s)
			}
			for range 2 + rng.IntN(4) {
				i := fav + len(topics)*rng.IntN(9)
				if rng.IntN(4) == 0 {
					i = rng.IntN(36)
				}
				typ, v := w.randomType(rng)
				evs = append(evs, w.record(user, w.items[i].ID, typ, v, at, sid))
				at = at.Add(time.Duration(30+rng.IntN(240)) * time.Second)
			}
			if u == 3 && s == 0 {
				continue // the next session starts by its session_id alone
			}
			at = at.Add(time.Duration(45+rng.IntN(600)) * time.Minute)
		}
	}
	if pattern {
		for p := range 12 {
			user := fmt.Sprintf("p%02d", p)
			w.users = append(w.users, user)
			at := t0.Add(time.Duration(600+rng.IntN(40*3600)) * time.Second)
			evs = append(evs, w.record(user, pivotA, w.strong(), 1, at, ""),
				w.record(user, pivotX, w.strong(), 1, at.Add(time.Minute), ""))
		}
	}
	slices.SortStableFunc(evs, func(a, b event.Record) int { return a.Event.Time.Compare(b.Event.Time) })
	w.events = evs
	return w
}

// catalogue is the item and user records that come before the events, so
// that dense ids are the same in every engine fed the world.
func (w *world) catalogue() []event.Record {
	var recs []event.Record
	for _, it := range w.items {
		recs = append(recs, event.Record{Kind: event.KindItemPut, Item: it})
	}
	for _, u := range w.users {
		recs = append(recs, event.Record{Kind: event.KindUserPut, User: event.User{ID: u}})
	}
	return recs
}

func (w *world) records() []event.Record { return append(w.catalogue(), w.events...) }

// more is a second stream, after the world's: further events of its users
// and of a new one.
func (w *world) more(seed uint64) []event.Record {
	rng := rand.New(rand.NewPCG(seed, 11))
	at := w.events[len(w.events)-1].Event.Time.Add(time.Hour)
	var recs []event.Record
	users := append(slices.Clone(w.users), "late")
	for range 40 {
		user := users[rng.IntN(len(users))]
		typ, v := w.randomType(rng)
		recs = append(recs, w.record(user, w.items[rng.IntN(len(w.items))].ID, typ, v, at, ""))
		at = at.Add(time.Duration(1+rng.IntN(300)) * time.Second)
	}
	return recs
}

func (w *world) itemIDs() []string {
	out := make([]string, len(w.items))
	for i, it := range w.items {
		out[i] = it.ID
	}
	return out
}

// consumed is what each user consumed in recs (by the preset's table).
func consumed(tb *event.Table, recs []event.Record) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, r := range recs {
		if r.Kind != event.KindEvent {
			continue
		}
		if rule, _ := tb.Rule(r.Event.Type); rule.Consumed {
			if out[r.Event.User] == nil {
				out[r.Event.User] = map[string]bool{}
			}
			out[r.Event.User][r.Event.Item] = true
		}
	}
	return out
}

// modelNames are the default configuration's models, in order.
func modelNames() []string {
	c := config.Default()
	var names []string
	for _, m := range c.Models() {
		names = append(names, m.Name())
	}
	return names
}

// newModel is a new instance of the default configuration's model name.
func newModel(t testing.TB, name string) model.Model { return newModelOf(t, config.Default(), name) }

// newModelOf is a new instance of configuration c's model name.
func newModelOf(t testing.TB, c config.Config, name string) model.Model {
	for _, m := range c.Models() {
		if m.Name() == name {
			return m
		}
	}
	t.Fatalf("no model %q in config.Models()", name)
	return nil
}

// newEngine is an engine holding model name alone (blend weight 1, so that
// the blend is that source, scaled), under preset.
func newEngine(t testing.TB, preset, name string, keep recommend.Retention) *recommend.Engine {
	return newEngineOf(t, config.Default(), preset, name, keep)
}

// newEngineOf is newEngine with the model configured by c.
func newEngineOf(t testing.TB, c config.Config, preset, name string, keep recommend.Retention) *recommend.Engine {
	return recommend.New(recommend.Config{Table: presetTable(t, preset), Models: []model.Model{newModelOf(t, c, name)},
		Blend: map[string]float32{name: 1}, Retention: keep})
}

func isSource(t testing.TB, name string) bool {
	_, ok := newModel(t, name).(model.Source)
	return ok
}

// forEach runs f for every model and both presets.
func forEach(t *testing.T, f func(t *testing.T, preset, name string)) {
	for _, name := range modelNames() {
		for _, preset := range event.Presets() {
			t.Run(name+"/"+preset, func(t *testing.T) { f(t, preset, name) })
		}
	}
}

// trainMF trains the engine's matrix factorisation when it has one.
func trainMF(t testing.TB, e *recommend.Engine) bool {
	_, err := e.TrainMF(context.Background(), nil, nil)
	if err == recommend.ErrNoMF {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// apply applies recs in chunks of size n.
func apply(e *recommend.Engine, recs []event.Record, n int) {
	for len(recs) > 0 {
		k := min(n, len(recs))
		e.Apply(recs[:k])
		recs = recs[k:]
	}
}

func snapshotBytes(t testing.TB, e *recommend.Engine) []byte {
	var b bytes.Buffer
	if _, err := e.WriteSnapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// answers is everything a user-facing engine says for the world's users (and
// one it has never seen): each user's answer from the source and from the
// blend, and, when the model knows similarity, every item's similar items.
type answers map[string][]recommend.Scored

func collect(t testing.TB, e *recommend.Engine, w *world, name string, n int) answers {
	out := answers{}
	users := append(slices.Clone(w.users), "late", "stranger")
	for _, u := range users {
		out["source "+u] = e.Recommend(recommend.Request{User: u, N: n, Source: name})
		out["blend "+u] = e.Recommend(recommend.Request{User: u, N: n})
	}
	if _, ok := newModel(t, name).(model.Similar); ok {
		for _, it := range w.itemIDs() {
			s, err := e.Similar(it, n, "")
			if err != nil {
				t.Fatal(err)
			}
			out["similar "+it] = s
		}
	}
	return out
}

// sameAnswers fails unless a and b hold the same lists: the same items in
// the same order and the same scores, within relative tol (0: exactly); two
// items may swap where their scores agree within tol.
func sameAnswers(t testing.TB, what string, a, b answers, tol float64) {
	t.Helper()
	bad := 0
	for _, k := range slices.Sorted(mapsKeys(a)) {
		if msg := sameList(a[k], b[k], tol); msg != "" {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s: %s\n  got  %v\n  want %v", what, k, msg, brief(a[k]), brief(b[k]))
			}
		}
	}
	if len(a) != len(b) {
		t.Errorf("%s: %d answers, want %d", what, len(a), len(b))
	}
}

func mapsKeys(a answers) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
	}
}

func close(a, b, tol float64) bool {
	if tol == 0 {
		return a == b
	}
	return math.Abs(a-b) <= tol*max(math.Abs(a), math.Abs(b), 1e-12)
}

func sameList(a, b []recommend.Scored, tol float64) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d items, want %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Source != b[i].Source {
			return fmt.Sprintf("position %d from %q, want %q", i, a[i].Source, b[i].Source)
		}
		if !close(a[i].Score, b[i].Score, tol) {
			return fmt.Sprintf("position %d scores %v, want %v", i, a[i].Score, b[i].Score)
		}
		if a[i].Item != b[i].Item && !(tol > 0 && swapped(a, b, i, tol)) {
			return fmt.Sprintf("position %d is %s, want %s", i, a[i].Item, b[i].Item)
		}
	}
	return ""
}

// swapped: b[i]'s item is in a at a position whose score agrees with b[i]'s.
func swapped(a, b []recommend.Scored, i int, tol float64) bool {
	for j := range a {
		if a[j].Item == b[i].Item {
			return close(a[j].Score, b[i].Score, tol)
		}
	}
	return false
}

type short struct {
	Item  string
	Score float64
}

func brief(s []recommend.Scored) []short {
	out := make([]short, len(s))
	for i, x := range s {
		out[i] = short{x.Item, x.Score}
	}
	return out
}

func itemsOf(s []recommend.Scored) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Item
	}
	return out
}

func position(s []recommend.Scored, item string) int {
	return slices.IndexFunc(s, func(x recommend.Scored) bool { return x.Item == item })
}
