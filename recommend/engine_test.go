package recommend

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streamrec/streamrec/event"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newEngine(t testing.TB) *Engine {
	tb, err := event.Preset(event.PresetVideo)
	if err != nil {
		t.Fatal(err)
	}
	return newTest(testConfig{Table: tb})
}

func ev(user, item string, typ event.Type, w float32, sec int) event.Record {
	return event.Record{Kind: event.KindEvent, Event: event.Event{User: user, Item: item, Type: typ, Weight: w, Time: t0.Add(time.Duration(sec) * time.Second)}}
}

func itemsOf(s []Scored) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Item)
	}
	return out
}

func has(s []Scored, item string) bool {
	for _, x := range s {
		if x.Item == item {
			return true
		}
	}
	return false
}

// world: users who watch a then b; c is popular on its own.
func world(e *Engine) {
	var recs []event.Record
	for u := range 5 {
		user := fmt.Sprint("u", u)
		recs = append(recs, ev(user, "a", event.Watch, 3, u*10), ev(user, "b", event.Watch, 3, u*10+1))
	}
	for u := range 8 {
		recs = append(recs, ev(fmt.Sprint("p", u), "c", event.Watch, 3, 100+u))
	}
	e.Apply(recs)
}

func TestRecommendNeighboursThenTrending(t *testing.T) {
	e := newEngine(t)
	world(e)
	e.Apply([]event.Record{ev("new", "a", event.Watch, 3, 200)})
	got := e.Recommend(Request{User: "new", N: 3})
	if len(got) != 2 || got[0].Item != "b" || got[0].Source != SourceItemKNN || got[1].Item != "c" || got[1].Source != SourceTrending {
		t.Fatalf("got %+v; want b from item_knn, then c from trending", got)
	}
}

func TestColdStartGetsTrending(t *testing.T) {
	e := newEngine(t)
	world(e)
	got := e.Recommend(Request{User: "stranger", N: 2})
	if len(got) != 2 || got[0].Item != "c" || got[0].Source != SourceTrending {
		t.Fatalf("cold start: %+v", got)
	}
}

func TestConsumedHiddenDeletedNeverShown(t *testing.T) {
	e := newEngine(t)
	world(e)
	e.Apply([]event.Record{ev("x", "a", event.Watch, 3, 300)})
	if has(e.Recommend(Request{User: "x", N: 10}), "a") {
		t.Fatal("a consumed item was recommended")
	}
	e.Apply([]event.Record{{Kind: event.KindItemPut, Item: event.Item{ID: "b", Hidden: true}}})
	if r := e.Recommend(Request{User: "x", N: 10}); has(r, "b") {
		t.Fatalf("hidden item b recommended: %v", itemsOf(r))
	}
	e.Apply([]event.Record{{Kind: event.KindItemDelete, Item: event.Item{ID: "c"}}})
	if r := e.Recommend(Request{User: "x", N: 10}); has(r, "c") {
		t.Fatalf("deleted item c recommended: %v", itemsOf(r))
	}
	if r := e.Trending(10, ""); has(r, "c") || has(r, "b") {
		t.Fatalf("trending shows hidden or deleted items: %v", itemsOf(r))
	}
	if s, _ := e.Similar("a", 10, ""); has(s, "b") {
		t.Fatalf("similar shows a hidden item: %v", itemsOf(s))
	}
	// Putting the item back brings it back.
	e.Apply([]event.Record{{Kind: event.KindItemPut, Item: event.Item{ID: "b"}}})
	if r := e.Recommend(Request{User: "x", N: 10}); !has(r, "b") {
		t.Fatalf("b is visible again but not recommended: %v", itemsOf(r))
	}
}

func TestViewDoesNotConsumeInVideo(t *testing.T) {
	e := newEngine(t)
	world(e)
	// In the video preset a view (an impression) does not consume an item.
	e.Apply([]event.Record{ev("y", "a", event.Watch, 3, 300), ev("y", "b", event.View, 0.5, 301)})
	if !has(e.Recommend(Request{User: "y", N: 10}), "b") {
		t.Fatal("a viewed (not watched) item should still be recommended")
	}
}

func TestCategoryFilter(t *testing.T) {
	e := newEngine(t)
	e.Apply([]event.Record{
		{Kind: event.KindItemPut, Item: event.Item{ID: "a", Categories: []string{"drama"}}},
		{Kind: event.KindItemPut, Item: event.Item{ID: "b", Categories: []string{"comedy"}}},
		{Kind: event.KindItemPut, Item: event.Item{ID: "c", Categories: []string{"comedy", "drama"}}},
	})
	world(e)
	got := e.Recommend(Request{User: "stranger", N: 10, Category: "comedy"})
	if len(got) != 2 || has(got, "a") {
		t.Fatalf("comedy: %v", itemsOf(got))
	}
	if got := e.Trending(10, "drama"); len(got) != 2 || got[0].Item != "c" {
		t.Fatalf("drama trending: %v", itemsOf(got))
	}
	if got := e.Recommend(Request{User: "stranger", N: 10, Category: "nope"}); len(got) != 0 {
		t.Fatalf("unknown category: %v", itemsOf(got))
	}
	// Re-categorising an item moves it.
	e.Apply([]event.Record{{Kind: event.KindItemPut, Item: event.Item{ID: "c", Categories: []string{"horror"}}}})
	if got := e.Trending(10, "drama"); len(got) != 1 {
		t.Fatalf("drama after c moved: %v", itemsOf(got))
	}
}

func TestDislikeLowersNeighbours(t *testing.T) {
	e := newEngine(t)
	world(e)
	e.Apply([]event.Record{ev("z", "a", event.Dislike, -4, 300)})
	r := e.Recommend(Request{User: "z", N: 10})
	for _, s := range r {
		if s.Item == "b" && s.Source == SourceItemKNN {
			t.Fatalf("a disliked item's neighbour was recommended from item_knn: %+v", r)
		}
	}
}

// TestReadsInterleaveWithALongApply: a large group is applied in short
// steps, so readers see it part-applied (they got the lock between two
// steps), and a read that starts after Apply returned sees all of it.
func TestReadsInterleaveWithALongApply(t *testing.T) {
	e := newEngine(t)
	world(e)
	var recs []event.Record
	for i := range 60000 {
		recs = append(recs, ev(fmt.Sprint("g", i%3000), fmt.Sprint("i", i%500), event.Watch, 3, 1000+i))
	}
	before := e.Stats().Applied
	applied := make(chan struct{})
	go func() {
		e.Apply(recs)
		close(applied)
	}()
	partial := 0 // reads that found the group part-applied
	for done := false; !done; {
		e.Recommend(Request{User: "u1", N: 5})
		if a := e.Stats().Applied; a > before && a < before+uint64(len(recs)) {
			partial++
		}
		select {
		case <-applied:
			done = true
		default:
		}
	}
	if partial == 0 {
		t.Fatalf("no read found a group of %d records part-applied: the writer held the lock for the whole group", len(recs))
	}
	if st := e.Stats(); st.Applied != before+uint64(len(recs)) || st.Events != 5*2+8+len(recs) {
		t.Fatalf("after Apply returned: %d records applied, %d events in memory; want %d, %d", st.Applied, st.Events, before+uint64(len(recs)), 5*2+8+len(recs))
	}
	t.Logf("%d reads found the group part-applied", partial)
}

// TestConcurrentReadsAndWrites runs under -race: readers never see a torn
// state while the writer applies.
func TestConcurrentReadsAndWrites(t *testing.T) {
	e := newEngine(t)
	world(e)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				e.Recommend(Request{User: fmt.Sprint("w", (i+r)%20), N: 5})
				e.Similar("a", 5, "")
				e.Trending(5, "")
			}
		}()
	}
	for i := range 300 {
		e.Apply([]event.Record{ev(fmt.Sprint("w", i%20), fmt.Sprint("i", i%37), event.Watch, 3, 400+i)})
	}
	wg.Wait()
	if st := e.Stats(); st.Events != 5*2+8+300 {
		t.Fatalf("events in memory %d", st.Events)
	}
}
