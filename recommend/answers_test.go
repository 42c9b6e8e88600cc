package recommend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/event"
)

// TestAnswersAreNeverStale: an engine that keeps answers and one that does
// not, fed the same stream one record at a time (events of every kind of
// weight, items hidden, put back and deleted), and changed the same way
// between records (the blend set, mf trained and installed, a ranker
// installed and removed), answer every request the same, asked once or
// twice; and the second asking, with nothing written between, is a hit.
func TestAnswersAreNeverStale(t *testing.T) {
	tb, err := event.Preset(event.PresetVideo)
	if err != nil {
		t.Fatal(err)
	}
	cached := newTest(testConfig{Table: tb, Answers: 64})
	plain := newTest(testConfig{Table: tb})
	rng := rand.New(rand.NewPCG(1, 2))
	types := []struct {
		typ event.Type
		w   float32
	}{{event.Watch, 3}, {event.Like, 4}, {event.Dislike, -4}, {event.View, 1}}
	user := func() string { return fmt.Sprint("u", rng.IntN(12)) }
	item := func() string { return fmt.Sprint("i", rng.IntN(30)) }
	request := func() Request {
		req := Request{User: user(), N: 1 + rng.IntN(8)}
		switch rng.IntN(5) {
		case 0:
			req.Exclude = []string{item(), item()}
		case 1:
			req.Diversity = 0.5
		case 2:
			req.Explain = true
		case 3:
			req.Source = SourceItemKNN
		}
		return req
	}
	ask := func(step int, req Request) {
		want := plain.Recommend(req)
		var h0 uint64
		for k := range 2 {
			if k == 1 {
				h0, _ = cached.AnswerStats()
			}
			got := cached.Recommend(req)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, asking %d of %+v: cached engine %v, plain engine %v", step, k+1, req, got, want)
			}
			if len(got) > 0 {
				got[0].Item = "changed by the caller" // must not reach the kept answer
			}
		}
		if h, _ := cached.AnswerStats(); h != h0+1 {
			t.Fatalf("step %d: %d hits after asking twice with nothing written, want %d", step, h, h0+1)
		}
	}
	both := func(f func(e *Engine)) { f(cached); f(plain) }
	for step := range 600 {
		var rec event.Record
		switch r := rng.IntN(40); {
		case r == 0:
			rec = event.Record{Kind: event.KindItemPut, Item: event.Item{ID: item(), Hidden: true}}
		case r == 1:
			rec = event.Record{Kind: event.KindItemPut, Item: event.Item{ID: item()}}
		case r == 2:
			rec = event.Record{Kind: event.KindItemDelete, Item: event.Item{ID: item()}}
		default:
			ty := types[rng.IntN(len(types))]
			rec = ev(user(), item(), ty.typ, ty.w, step*60)
		}
		both(func(e *Engine) { e.Apply([]event.Record{rec}) })
		reqs := []Request{request(), request(), request()}
		for _, req := range reqs {
			ask(step, req)
		}
		// The same requests again after a change of anything else.
		switch step {
		case 150:
			both(func(e *Engine) { e.SetBlend(map[string]float32{SourceTrending: 2}) })
		case 300:
			tr, err := plain.TrainMF(context.Background(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			cached.InstallMF(tr, nil)
		case 400:
			r := &Ranker{Sources: []string{SourceItemKNN, SourceTrending}, Weights: [][]float32{{0, 1}}}
			both(func(e *Engine) {
				if err := e.SetRanker(r); err != nil {
					t.Fatal(err)
				}
			})
		case 500:
			both(func(e *Engine) { _ = e.SetRanker(nil) })
		}
		for _, req := range reqs {
			ask(step, req)
		}
	}
}

// TestAnswersBounded: once max items are kept no more are, until a write
// empties them; an answer kept for a state is never served for another.
func TestAnswersBounded(t *testing.T) {
	a := newAnswers(3)
	list := []Scored{{Item: "x"}}
	a.put(1, []byte("a"), list)
	a.put(1, []byte("a"), list) // kept once
	a.put(1, []byte("b"), nil)  // an empty answer counts one
	a.put(1, []byte("c"), []Scored{{Item: "x"}, {Item: "y"}})
	if len(a.m) != 2 || a.items != 2 {
		t.Fatalf("%d answers of %d items kept, want 2 of 2 (3 at most)", len(a.m), a.items)
	}
	a.put(1, []byte("d"), list)
	if len(a.m) != 3 || a.items != 3 {
		t.Fatalf("%d answers of %d items kept, want 3 of 3", len(a.m), a.items)
	}
	if _, ok := a.get(1, []byte("c")); ok {
		t.Error("an answer put past the bound was kept")
	}
	if _, ok := a.get(2, []byte("a")); ok {
		t.Error("an answer of epoch 1 served at epoch 2")
	}
	a.put(2, []byte("c"), list)
	if _, ok := a.get(2, []byte("c")); !ok || len(a.m) != 1 || a.items != 1 {
		t.Errorf("epoch 2: %d answers kept, want only the new one", len(a.m))
	}
	a.put(1, []byte("late"), list) // a reader of the older state, finishing late
	if _, ok := a.get(1, []byte("late")); ok || len(a.m) != 1 {
		t.Error("a late answer of an older epoch was kept")
	}
	if newAnswers(0) != nil {
		t.Error("no cache wanted, one made")
	}
}

// TestAnswerKeysDiffer: requests that differ in anything an answer depends
// on have different keys.
func TestAnswerKeysDiffer(t *testing.T) {
	reqs := []Request{
		{User: "u", N: 10},
		{User: "u", N: 11},
		{User: "v", N: 10},
		{User: "u", N: 10, Category: "c"},
		{User: "u", N: 10, Source: "item_knn"},
		{User: "u", N: 10, Exclude: []string{"a"}},
		{User: "u", N: 10, Exclude: []string{"a", "b"}},
		{User: "u", N: 10, Exclude: []string{"ab"}},
		{User: "u", N: 10, Diversity: 0.5},
		{User: "u", N: 10, MaxPerCategory: 2},
		{User: "u", N: 10, Explain: true},
		{User: "u", N: 10, At: 1e9},
		{User: "u", N: 10, NoRanker: true},
		{User: "u", N: 10, Blend: map[string]float32{}},
		{User: "u", N: 10, Blend: map[string]float32{"mf": 1}},
		{User: "u", N: 10, Blend: map[string]float32{"mf": 2}},
		{User: "uc", N: 10},
		{User: "u", N: 10, Category: "", Source: "c"},
	}
	seen := map[string]int{}
	for i := range reqs {
		k := string(answerKey(nil, &reqs[i]))
		if j, ok := seen[k]; ok {
			t.Errorf("requests %d %+v and %d %+v share a key", j, reqs[j], i, reqs[i])
		}
		seen[k] = i
	}
	a := Request{User: "u", N: 3, Blend: map[string]float32{"a": 1, "b": 2, "c": 3}}
	for range 20 { // map order must not matter
		if string(answerKey(nil, &a)) != string(answerKey(nil, &Request{User: "u", N: 3, Blend: map[string]float32{"c": 3, "b": 2, "a": 1}})) {
			t.Fatal("the same blend in another order gave another key")
		}
	}
}

// TestAnswersUnderConcurrentWrites: readers asking while the writer
// applies (race detector) get, for their own acknowledged event, an answer
// that reflects it: it is never in the list (consumed), however often they
// asked before it.
func TestAnswersUnderConcurrentWrites(t *testing.T) {
	tb, err := event.Preset(event.PresetVideo)
	if err != nil {
		t.Fatal(err)
	}
	e := newTest(testConfig{Table: tb, Answers: 256})
	world(e)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			u := fmt.Sprint("reader", r)
			for k := range 150 {
				it := fmt.Sprint("x", k%40)
				e.Recommend(Request{User: u, N: 40})
				e.Recommend(Request{User: u, N: 40})
				e.Apply([]event.Record{ev(u, it, event.Watch, 3, 1000+k)})
				if has(e.Recommend(Request{User: u, N: 40}), it) {
					errs <- fmt.Errorf("%s was shown %s, watched and acknowledged before it asked", u, it)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for k := range 300 {
			e.Apply([]event.Record{ev(fmt.Sprint("w", k%7), fmt.Sprint("x", k%40), event.Watch, 3, 2000+k)})
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
