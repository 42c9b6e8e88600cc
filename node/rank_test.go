package node

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// explainedReply is an answer with the optional fields of an item.
type explainedReply struct {
	UserID string       `json:"user_id"`
	Items  []rankedItem `json:"items"`
}

type rankedItem struct {
	Item          string   `json:"item_id"`
	Score         float64  `json:"score"`
	Source        string   `json:"source"`
	ColdStart     bool     `json:"cold_start"`
	Because       []string `json:"because"`
	Contributions []struct {
		Source string  `json:"source"`
		Score  float64 `json:"score"`
	} `json:"contributions"`
}

func (r explainedReply) ids() []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, it.Item)
	}
	return out
}

func get(t *testing.T, n *testNode, path string) explainedReply {
	t.Helper()
	var r explainedReply
	if code := call(t, "GET", n.URL+path, nil, &r); code != http.StatusOK {
		t.Fatalf("GET %s: %d", path, code)
	}
	return r
}

func rankList(t *testing.T, n *testNode, user, query string, items ...string) explainedReply {
	t.Helper()
	var r explainedReply
	if code := call(t, "POST", n.URL+"/v1/users/"+user+"/rank"+query, map[string]any{"items": items}, &r); code != http.StatusOK {
		t.Fatalf("rank %v for %s: %d", items, user, code)
	}
	return r
}

// copiesNode serves a catalogue where alice's best items are near-copies:
// ten users bought seed with a1, a2 and a3 (one category, one title), six
// bought seed with b (another category, another title), and a few users
// bought other things alone. Alice bought seed.
func copiesNode(t *testing.T) *testNode {
	t.Helper()
	n := startNode(t, defaultConfig(t))
	if code := call(t, "PUT", n.URL+"/v1/items", `[
		{"id":"seed","title":"Seed","categories":["s"]},
		{"id":"a1","title":"red running shoe","categories":["a"]},
		{"id":"a2","title":"red running shoe","categories":["a"]},
		{"id":"a3","title":"red running shoe","categories":["a"]},
		{"id":"b","title":"wool winter hat","categories":["b"]},
		{"id":"c","title":"green garden chair","categories":["c"]},
		{"id":"newbie"}]`, nil); code != http.StatusOK {
		t.Fatalf("PUT items: %d", code)
	}
	var evs []string
	buy := func(u, item string) {
		evs = append(evs, fmt.Sprintf(`{"user_id":%q,"item_id":%q,"type":"purchase"}`, u, item))
	}
	for u := range 10 {
		for _, it := range []string{"seed", "a1", "a2", "a3"} {
			buy(fmt.Sprintf("g%d", u), it)
		}
	}
	for u := range 6 {
		buy(fmt.Sprintf("h%d", u), "seed")
		buy(fmt.Sprintf("h%d", u), "b")
	}
	for u := range 3 {
		buy(fmt.Sprintf("k%d", u), "c")
	}
	buy("alice", "seed")
	post(t, n, "["+strings.Join(evs, ",")+"]")
	return n
}

// TestRank: a given list comes back in the blend's order with the blend's
// scores; unknown and unscorable ids follow in the order given, marked
// cold_start; consumed items are ranked too.
func TestRank(t *testing.T) {
	n := copiesNode(t)
	rec := get(t, n, "/v1/users/alice/recommendations?n=50")
	if len(rec.Items) < 4 {
		t.Fatalf("recommendations: %+v", rec)
	}
	want := map[string]float64{}
	list := []string{"ghost2"}
	for _, it := range rec.Items {
		want[it.Item] = it.Score
		list = append(list, it.Item)
	}
	list = append(list, "seed", "newbie", "ghost1")
	slices.Reverse(list[1 : len(list)-3]) // not the answer's order
	got := rankList(t, n, "alice", "", list...)
	if got.UserID != "alice" || len(got.Items) != len(list) {
		t.Fatalf("rank %v: %+v", list, got)
	}
	var cold []string
	for i, it := range got.Items {
		if it.ColdStart {
			if it.Score != 0 || it.Source != "" {
				t.Fatalf("cold item %+v has a score or a source", it)
			}
			cold = append(cold, it.Item)
			continue
		}
		if len(cold) > 0 {
			t.Fatalf("scored item %s after cold ones %v: %+v", it.Item, cold, got.Items)
		}
		if it.Source == "" || it.Score <= 0 {
			t.Fatalf("scored item without a source or score: %+v", it)
		}
		if i > 0 && it.Score > got.Items[i-1].Score {
			t.Fatalf("not best first: %+v", got.Items)
		}
	}
	if strings.Join(cold, ",") != "ghost2,newbie,ghost1" {
		t.Fatalf("cold start items %v, want ghost2,newbie,ghost1 (the order given)", cold)
	}
	pos := slices.IndexFunc(got.Items, func(x rankedItem) bool { return x.Item == "seed" })
	if pos < 0 || got.Items[pos].ColdStart {
		t.Fatalf("alice's own purchase seed must still be ranked: %+v", got.Items)
	}

	// Ranking exactly what recommendations answered gives its order and
	// its scores.
	exact := rankList(t, n, "alice", "", append([]string{"ghost"}, backward(rec.ids())...)...)
	if g, w := strings.Join(exact.ids(), ","), strings.Join(rec.ids(), ",")+",ghost"; g != w {
		t.Fatalf("rank order %s, recommendations %s", g, w)
	}
	for _, it := range exact.Items[:len(rec.Items)] {
		if w := want[it.Item]; math.Abs(it.Score-w) > 1e-6+1e-5*w {
			t.Fatalf("%s: rank score %v, recommendations %v", it.Item, it.Score, w)
		}
	}

	// Rank requests are reads, not held to max_in_flight_writes: their
	// bodies are bounded by what max_n ids need, far below max_body_bytes.
	var e errorReply
	padded := `{"items":["a1"]` + strings.Repeat(" ", 300_000) + "}"
	if code := call(t, "POST", n.URL+"/v1/users/alice/rank", padded, &e); code != http.StatusRequestEntityTooLarge || e.Error.Code != "body_too_large" {
		t.Fatalf("a 300 KB rank body: %d %+v", code, e)
	}

	// A user never seen gets the list in trending order.
	fresh := rankList(t, n, "nobody", "", "c", "b", "seed")
	if g := strings.Join(fresh.ids(), ","); g != "seed,b,c" {
		t.Fatalf("unknown user: %s, want seed,b,c (by popularity)", g)
	}
}

// backward is slices.Backward collected.
func backward(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func isCopy(id string) bool { return strings.HasPrefix(id, "a") }

// TestRecommendationControls: exclude, diversity, max_per_category and
// explain shape the answer; without them it is what it was.
func TestRecommendationControls(t *testing.T) {
	n := copiesNode(t)
	plain := get(t, n, "/v1/users/alice/recommendations?n=5")
	if got := plain.ids(); len(got) != 5 || !isCopy(got[0]) || !isCopy(got[1]) {
		t.Fatalf("the copies should lead: %v", got)
	}
	for _, it := range plain.Items {
		if it.Because != nil || it.Contributions != nil || it.ColdStart {
			t.Fatalf("explained without explain=true: %+v", it)
		}
	}
	if again := get(t, n, "/v1/users/alice/recommendations?n=5&diversity=0&explain=false"); !slices.Equal(again.ids(), plain.ids()) {
		t.Fatalf("defaults spelt out changed the answer: %v, was %v", again.ids(), plain.ids())
	}

	t.Run("exclude", func(t *testing.T) {
		top := plain.ids()
		got := get(t, n, "/v1/users/alice/recommendations?n=5&exclude="+url.QueryEscape(top[0]+",ghost")+"&exclude="+top[2])
		want := slices.DeleteFunc(slices.Clone(top), func(id string) bool { return id == top[0] || id == top[2] })
		if !slices.Equal(got.ids(), want) {
			t.Fatalf("excluding %s and %s: %v, want %v", top[0], top[2], got.ids(), want)
		}
	})

	t.Run("diversity", func(t *testing.T) {
		got := get(t, n, "/v1/users/alice/recommendations?n=5&diversity=1").ids()
		if len(got) != 5 || got[0] != plain.ids()[0] {
			t.Fatalf("diversity=1: %v (the most relevant item still comes first)", got)
		}
		copies := 0
		for _, id := range got[:3] {
			if isCopy(id) {
				copies++
			}
		}
		if copies != 1 || slices.Equal(got, plain.ids()) {
			t.Fatalf("diversity=1 should follow the first copy with dissimilar items: %v (diversity=0: %v)", got, plain.ids())
		}
	})

	t.Run("max_per_category", func(t *testing.T) {
		got := get(t, n, "/v1/users/alice/recommendations?n=5&max_per_category=1").ids()
		slices.Sort(got)
		if strings.Join(got, ",") != "a1,b,c" {
			t.Fatalf("one item per category: %v, want a1, b and c", got)
		}
	})

	t.Run("explain", func(t *testing.T) {
		for _, path := range []string{"/v1/users/alice/recommendations?n=5&explain=true", "/v1/users/alice/rank?explain=true"} {
			var r explainedReply
			if strings.HasSuffix(path, "rank?explain=true") {
				r = rankList(t, n, "alice", "?explain=true", "c", "b", "a3", "a2", "a1")
			} else {
				r = get(t, n, path)
			}
			if len(r.Items) != 5 {
				t.Fatalf("%s: %+v", path, r)
			}
			for _, it := range r.Items {
				sum := 0.0
				for _, c := range it.Contributions {
					sum += c.Score
				}
				if len(it.Contributions) == 0 || math.Abs(sum-it.Score) > 1e-6+1e-5*it.Score {
					t.Fatalf("%s: %s: contributions %+v sum to %v, score %v", path, it.Item, it.Contributions, sum, it.Score)
				}
				if !slices.ContainsFunc(it.Contributions, func(c struct {
					Source string  `json:"source"`
					Score  float64 `json:"score"`
				}) bool {
					return c.Source == it.Source
				}) {
					t.Fatalf("%s: %s: its source %s is not among its contributions %+v", path, it.Item, it.Source, it.Contributions)
				}
				for _, b := range it.Because {
					if b != "seed" {
						t.Fatalf("%s: %s: because %v holds an item alice never touched", path, it.Item, it.Because)
					}
				}
				if isCopy(it.Item) && !slices.Equal(it.Because, []string{"seed"}) {
					t.Fatalf("%s: %s: because %v, want [seed]", path, it.Item, it.Because)
				}
			}
		}
	})
}

// TestSimilarBy: similar items by behaviour (who bought them) or content
// (how they are described), and a 400 for any other kind.
func TestSimilarBy(t *testing.T) {
	n := copiesNode(t)
	for _, tt := range []struct{ by, source string }{{"behaviour", "item_knn"}, {"content", "content"}, {"", ""}} {
		got := get(t, n, "/v1/items/a1/similar?n=3&by="+tt.by)
		ids := got.ids()
		slices.Sort(ids)
		if len(ids) < 2 || ids[0] != "a2" || ids[1] != "a3" {
			t.Fatalf("by=%q: %+v, want a2 and a3 first", tt.by, got.Items)
		}
		for _, it := range got.Items[:2] {
			if tt.source != "" && it.Source != tt.source {
				t.Fatalf("by=%q: source %q, want %q", tt.by, it.Source, tt.source)
			}
		}
	}
	// By content, b shares no word with a1; by behaviour it shares no buyer.
	for _, by := range []string{"behaviour", "content"} {
		if ids := get(t, n, "/v1/items/a1/similar?by="+by).ids(); slices.Contains(ids, "b") {
			t.Fatalf("by=%s: b is not like a1: %v", by, ids)
		}
	}
	var e errorReply
	if code := call(t, "GET", n.URL+"/v1/items/a1/similar?by=colour", nil, &e); code != http.StatusBadRequest ||
		e.Error.Code != "invalid_parameter" || !strings.Contains(e.Error.Message, "colour") {
		t.Fatalf("by=colour: %d %+v", code, e)
	}
}
