package recommend

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/event"
)

// shop: a catalogue of 3 categories (x0.. in "x", y0.. in "y", z0.. in "z");
// users who use x-items together, so item-kNN ranks the x-items first for
// someone who used x0.
func shop(t *testing.T) *Engine {
	e := newEngine(t)
	var recs []event.Record
	for _, c := range []string{"x", "y", "z"} {
		for i := range 6 {
			recs = append(recs, event.Record{Kind: event.KindItemPut, Item: event.Item{ID: fmt.Sprint(c, i), Categories: []string{c}}})
		}
	}
	sec := 0
	for u := range 12 {
		user := fmt.Sprint("u", u)
		for i := range 6 {
			recs = append(recs, ev(user, fmt.Sprint("x", i), event.Watch, 3, sec))
			sec++
		}
		recs = append(recs, ev(user, fmt.Sprint("y", u%6), event.Watch, 3, sec), ev(user, fmt.Sprint("z", u%3), event.Watch, 3, sec+1))
		sec += 2
	}
	recs = append(recs, ev("me", "x0", event.Watch, 3, sec))
	e.Apply(recs)
	return e
}

func TestRankOrdersTheGivenList(t *testing.T) {
	e := shop(t)
	// The list: items the sources score (not consumed), then an item the
	// user consumed and an id never seen (twice).
	list := []string{"z2", "y1", "x3", "x5", "y4", "z0", "x1"}
	// The definition: each source's raw scores on the list (each alone,
	// asked for everything it has), scaled by its best on the list,
	// weighted, summed.
	want := map[string]float64{}
	w := e.Blend()
	for _, src := range e.Sources() {
		raw := map[string]float64{}
		best := 0.0
		for _, x := range e.Recommend(Request{User: "me", N: 1000, Source: src}) {
			if slices.Contains(list, x.Item) {
				raw[x.Item] = x.Score
				best = max(best, x.Score)
			}
		}
		for it, v := range raw {
			if best > 0 {
				want[it] += float64(w[src]) * v / best
			}
		}
	}
	got := e.Rank(RankRequest{User: "me", Items: list})
	for i, s := range got {
		if i > 0 && s.Score > got[i-1].Score {
			t.Fatalf("not best first at %d: %+v", i, got)
		}
		if v := want[s.Item]; math.Abs(v-s.Score) > 1e-4 {
			t.Fatalf("%s ranked %.5f, the definition gives %.5f", s.Item, s.Score, v)
		}
	}
	got = e.Rank(RankRequest{User: "me", Items: append(slices.Clone(list), "x0", "never-seen", "never-seen")})
	if len(got) != len(list)+2 {
		t.Fatalf("%d items for a list of %d distinct: %+v", len(got), len(list)+2, got)
	}
	last := got[len(got)-1]
	if last.Item != "never-seen" || !last.ColdStart || last.Score != 0 || last.Source != "" {
		t.Fatalf("last %+v: want the unknown id, cold start", last)
	}
	if !slices.ContainsFunc(got, func(s Scored) bool { return s.Item == "x0" }) {
		t.Fatal("a consumed item given in the list was left out")
	}
	if got := e.Rank(RankRequest{User: "me"}); len(got) != 0 {
		t.Fatalf("empty list: %+v", got)
	}
}

func TestExcludeAndMaxPerCategory(t *testing.T) {
	e := shop(t)
	base := itemsOf(e.Recommend(Request{User: "me", N: 6}))
	ex := e.Recommend(Request{User: "me", N: 6, Exclude: []string{base[0], base[2], "unknown"}})
	if has(ex, base[0]) || has(ex, base[2]) || len(ex) != 6 {
		t.Fatalf("exclude %v from %v: %v", []string{base[0], base[2]}, base, itemsOf(ex))
	}
	capped := e.Recommend(Request{User: "me", N: 6, MaxPerCategory: 1})
	per := map[string]int{}
	for _, s := range capped {
		per[s.Item[:1]]++
	}
	for c, n := range per {
		if n > 1 {
			t.Fatalf("category %s has %d items: %v", c, n, itemsOf(capped))
		}
	}
	if len(capped) < 2 {
		t.Fatalf("capped answer %v: want items of more than one category", itemsOf(capped))
	}
	if d := e.Recommend(Request{User: "me", N: 6, Diversity: 0}); !slices.Equal(itemsOf(d), base) {
		t.Fatalf("diversity 0 changed the answer: %v, want %v", itemsOf(d), base)
	}
}

func TestDiversityBreaksUpNearCopies(t *testing.T) {
	e := shop(t)
	base := e.Recommend(Request{User: "me", N: 4})
	div := e.Recommend(Request{User: "me", N: 4, Diversity: 0.9})
	cats := func(s []Scored) int {
		seen := map[string]bool{}
		for _, x := range s {
			seen[x.Item[:1]] = true
		}
		return len(seen)
	}
	if cats(div) <= cats(base) {
		t.Fatalf("diversity 0.9: %v (%d categories), relevance alone: %v (%d)", itemsOf(div), cats(div), itemsOf(base), cats(base))
	}
	if div[0].Item != base[0].Item {
		t.Fatalf("diversity must keep the most relevant first: %v vs %v", itemsOf(div), itemsOf(base))
	}
}

func TestExplain(t *testing.T) {
	e := shop(t)
	for _, s := range e.Recommend(Request{User: "me", N: 5, Explain: true}) {
		var sum float64
		for _, p := range s.Parts {
			sum += p.Score
		}
		if len(s.Parts) == 0 || math.Abs(sum-s.Score) > 1e-4 {
			t.Fatalf("%s: parts %+v sum to %.5f, score %.5f", s.Item, s.Parts, sum, s.Score)
		}
		if s.Source == SourceItemKNN && !slices.Equal(s.Because, []string{"x0"}) {
			t.Fatalf("%s from item_knn because %v, want [x0]", s.Item, s.Because)
		}
	}
	for _, s := range e.Recommend(Request{User: "me", N: 5}) {
		if s.Parts != nil || s.Because != nil {
			t.Fatalf("explanations without explain=true: %+v", s)
		}
	}
}

// TestExcludeBypassesCachedCandidates: mf keeps each user's candidate list
// for the next request; a request that excludes items must neither be
// answered from that list nor leave its own filtered list behind.
func TestExcludeBypassesCachedCandidates(t *testing.T) {
	e := twoWorlds(t)
	for _, src := range []string{SourceMF, ""} {
		first := itemsOf(e.Recommend(Request{User: "a0", N: 10, Source: src}))
		ex := itemsOf(e.Recommend(Request{User: "a0", N: 10, Source: src, Exclude: first[:2]}))
		if slices.Contains(ex, first[0]) || slices.Contains(ex, first[1]) || len(ex) != 10 {
			t.Fatalf("source %q: excluding %v answered %v", src, first[:2], ex)
		}
		if again := itemsOf(e.Recommend(Request{User: "a0", N: 10, Source: src})); !slices.Equal(again, first) {
			t.Fatalf("source %q: after an excluding request %v, want %v again", src, again, first)
		}
	}
}
