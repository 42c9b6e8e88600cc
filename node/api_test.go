package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type errorReply struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

type eventsReply struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index  int    `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

func post(t *testing.T, n *testNode, body string) eventsReply {
	t.Helper()
	var r eventsReply
	if code := call(t, "POST", n.URL+"/v1/events", body, &r); code != http.StatusOK {
		t.Fatalf("POST /v1/events %s: status %d", body, code)
	}
	return r
}

func recs(t *testing.T, n *testNode, user, query string) recReply {
	t.Helper()
	var r recReply
	if code := call(t, "GET", n.URL+"/v1/users/"+user+"/recommendations"+query, nil, &r); code != http.StatusOK {
		t.Fatalf("recommendations for %s: %d", user, code)
	}
	return r
}

func ids(r recReply) []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, it.Item)
	}
	return out
}

// postShop posts the shop's events: phone and case bought together by six
// users, socks by nine others.
func postShop(t *testing.T, n *testNode) {
	t.Helper()
	var batch []string
	for u := range 6 {
		batch = append(batch,
			fmt.Sprintf(`{"user_id":"u%d","item_id":"phone","type":"purchase"}`, u),
			fmt.Sprintf(`{"user_id":"u%d","item_id":"case","type":"purchase"}`, u))
	}
	for u := range 9 {
		batch = append(batch, fmt.Sprintf(`{"user_id":"p%d","item_id":"socks","type":"purchase"}`, u))
	}
	if r := post(t, n, "["+strings.Join(batch, ",")+"]"); r.Accepted != len(batch) {
		t.Fatalf("accepted %d of %d", r.Accepted, len(batch))
	}
}

// TestReadYourWrites: the request after an acknowledged POST reflects it.
func TestReadYourWrites(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	postShop(t, n)
	before := recs(t, n, "alice", "?n=1")
	if len(before.Items) != 1 || before.Items[0].Item != "socks" || before.Items[0].Source != "trending" {
		t.Fatalf("cold start: %+v", before)
	}
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	after := recs(t, n, "alice", "?n=1")
	if len(after.Items) != 1 || after.Items[0].Item != "case" || after.Items[0].Source != "item_knn" {
		t.Fatalf("the next request must reflect alice's view of the phone: %+v", after)
	}
	// The similar and trending endpoints see the same writes.
	var sim recReply
	call(t, "GET", n.URL+"/v1/items/phone/similar?n=5", nil, &sim)
	if len(sim.Items) == 0 || sim.Items[0].Item != "case" {
		t.Fatalf("similar to phone: %+v", sim)
	}
	var tr recReply
	call(t, "GET", n.URL+"/v1/trending?n=1", nil, &tr)
	if len(tr.Items) != 1 || tr.Items[0].Item != "socks" {
		t.Fatalf("trending: %+v", tr)
	}
	post(t, n, `[{"user_id":"bob","item_id":"case","type":"purchase"},{"user_id":"bob2","item_id":"case","type":"purchase"},{"user_id":"bob3","item_id":"case","type":"purchase"},{"user_id":"bob4","item_id":"case","type":"purchase"}]`)
	call(t, "GET", n.URL+"/v1/trending?n=1", nil, &tr)
	if tr.Items[0].Item != "case" {
		t.Fatalf("trending after four purchases of case: %+v", tr)
	}
}

func TestCatalogueEndpoints(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	var item map[string]any
	code := call(t, "PUT", n.URL+"/v1/items/boot", `{"title":"Boot","categories":["shoes"],"tags":["leather"],"description":"A boot.","attributes":{"price":80},"published_at":"2025-01-01T00:00:00Z"}`, &item)
	if code != http.StatusOK || item["id"] != "boot" {
		t.Fatalf("PUT item: %d %v", code, item)
	}
	call(t, "GET", n.URL+"/v1/items/boot", nil, &item)
	if item["title"] != "Boot" || item["description"] != "A boot." {
		t.Fatalf("GET item: %v", item)
	}
	var bulk map[string]int
	code = call(t, "PUT", n.URL+"/v1/items", `[{"id":"sandal","categories":["shoes"]},{"id":"hat","categories":["hats"]}]`, &bulk)
	if code != http.StatusOK || bulk["accepted"] != 2 {
		t.Fatalf("bulk PUT: %d %v", code, bulk)
	}
	post(t, n, `[{"user_id":"a","item_id":"boot","type":"view"},{"user_id":"b","item_id":"hat","type":"view"},{"user_id":"c","item_id":"hat","type":"view"},{"user_id":"d","item_id":"sandal","type":"cart"}]`)
	r := recs(t, n, "z", "?category=shoes")
	if got := ids(r); len(got) != 2 || got[0] != "sandal" || got[1] != "boot" {
		t.Fatalf("shoes for a new user: %v", got)
	}
	var tr recReply
	call(t, "GET", n.URL+"/v1/trending?category=hats", nil, &tr)
	if got := ids(tr); len(got) != 1 || got[0] != "hat" {
		t.Fatalf("trending hats: %v", got)
	}
	// Hide, then delete.
	call(t, "PUT", n.URL+"/v1/items/sandal", `{"categories":["shoes"],"hidden":true}`, nil)
	if got := ids(recs(t, n, "z", "?category=shoes")); len(got) != 1 || got[0] != "boot" {
		t.Fatalf("hidden sandal still shown: %v", got)
	}
	if code := call(t, "DELETE", n.URL+"/v1/items/boot", nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE item: %d", code)
	}
	if code := call(t, "GET", n.URL+"/v1/items/boot", nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET deleted item: %d", code)
	}
	if got := ids(recs(t, n, "z", "?category=shoes")); len(got) != 0 {
		t.Fatalf("deleted boot still shown: %v", got)
	}
	if code := call(t, "DELETE", n.URL+"/v1/items/never", nil, nil); code != http.StatusNotFound {
		t.Fatalf("DELETE unknown item: %d", code)
	}

	// Users.
	var u map[string]any
	if code := call(t, "PUT", n.URL+"/v1/users/alice", `{"attributes":{"country":"FR"}}`, &u); code != http.StatusOK {
		t.Fatalf("PUT user: %d", code)
	}
	call(t, "GET", n.URL+"/v1/users/alice", nil, &u)
	if attrs, _ := u["attributes"].(map[string]any); attrs["country"] != "FR" {
		t.Fatalf("GET user: %v", u)
	}
	if code := call(t, "DELETE", n.URL+"/v1/users/alice", nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE user: %d", code)
	}
	if code := call(t, "GET", n.URL+"/v1/users/alice", nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET deleted user: %d", code)
	}
}

func TestUserEventsAndDedup(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	r := post(t, n, `[
		{"event_id":"e1","user_id":"u","item_id":"a","type":"view","timestamp":"2025-01-01T10:00:00Z","context":{"page":"home"}},
		{"event_id":"e1","user_id":"u","item_id":"a","type":"view","timestamp":"2025-01-01T10:00:00Z"},
		{"user_id":"u","item_id":"b","type":"click","timestamp":"2025-01-01T10:01:00Z"},
		{"user_id":"u","item_id":"b","type":"click","timestamp":"2025-01-01T10:01:01Z"},
		{"user_id":"u","type":"search","context":{"query":"red boots"},"timestamp":"2025-01-01T10:02:00Z"}]`)
	if r.Accepted != 3 || r.Duplicates != 2 || len(r.Rejected) != 0 {
		t.Fatalf("reply %+v; want 3 accepted, 2 duplicates", r)
	}
	// A retry of the same request is all duplicates.
	r = post(t, n, `[{"event_id":"e1","user_id":"u","item_id":"a","type":"view","timestamp":"2025-01-01T10:00:00Z"}]`)
	if r.Accepted != 0 || r.Duplicates != 1 {
		t.Fatalf("retry: %+v", r)
	}
	var evs struct {
		Events []struct {
			EventID string          `json:"event_id"`
			ItemID  string          `json:"item_id"`
			Type    string          `json:"type"`
			Weight  float32         `json:"weight"`
			Context json.RawMessage `json:"context"`
		} `json:"events"`
	}
	call(t, "GET", n.URL+"/v1/users/u/events?n=50", nil, &evs)
	if len(evs.Events) != 3 || evs.Events[0].Type != "search" || evs.Events[2].EventID != "e1" || evs.Events[1].Weight != 2 {
		t.Fatalf("events (newest first): %+v", evs)
	}
	if !bytes.Contains(evs.Events[2].Context, []byte("home")) {
		t.Fatalf("context not kept: %s", evs.Events[2].Context)
	}
	call(t, "GET", n.URL+"/v1/users/u/events?n=1", nil, &evs)
	if len(evs.Events) != 1 {
		t.Fatalf("n=1 gave %d", len(evs.Events))
	}
}

func TestNDJSONAndAtomic(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	req, _ := http.NewRequest("POST", n.URL+"/v1/events", strings.NewReader("{\"user_id\":\"u\",\"item_id\":\"a\",\"type\":\"view\"}\n{\"user_id\":\"u\",\"item_id\":\"b\",\"type\":\"view\"}\n"))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r eventsReply
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || r.Accepted != 2 {
		t.Fatalf("ndjson: %d %+v", resp.StatusCode, r)
	}
	var e errorReply
	code := call(t, "POST", n.URL+"/v1/events?atomic=true", `[{"user_id":"v","item_id":"a","type":"view"},{"user_id":"v","item_id":"b","type":"fly"}]`, &e)
	if code != http.StatusUnprocessableEntity || e.Error.Code != "invalid_events" || !bytes.Contains(e.Error.Details, []byte(`"index":1`)) {
		t.Fatalf("atomic with a bad event: %d %+v", code, e)
	}
	var evs struct{ Events []any }
	call(t, "GET", n.URL+"/v1/users/v/events", nil, &evs)
	if len(evs.Events) != 0 {
		t.Fatalf("atomic batch stored %d events", len(evs.Events))
	}
	// Without atomic, the good one is stored and the bad one reported.
	r = post(t, n, `[{"user_id":"v","item_id":"a","type":"view"},{"user_id":"v","item_id":"b","type":"fly"}]`)
	if r.Accepted != 1 || len(r.Rejected) != 1 || r.Rejected[0].Index != 1 || r.Rejected[0].Field != "type" {
		t.Fatalf("partial batch: %+v", r)
	}
}

// TestConcurrentIngestGroupCommit: many concurrent writers, every event
// acknowledged is stored once and applied.
func TestConcurrentIngestGroupCommit(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	const writers, batches, size = 8, 10, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var evs []string
				for i := range size {
					evs = append(evs, fmt.Sprintf(`{"event_id":"w%d-b%d-%d","user_id":"w%d","item_id":"i%d","type":"view"}`, w, b, i, w, (b*size+i)%97))
				}
				var r eventsReply
				if code := call(t, "POST", n.URL+"/v1/events", "["+strings.Join(evs, ",")+"]", &r); code != 200 || r.Accepted+r.Duplicates != size {
					t.Errorf("writer %d batch %d: %d %+v", w, b, code, r)
				}
			}
		}()
	}
	wg.Wait()
	st := n.Engine.Stats()
	if got := n.Store.LastSeq(); got != uint64(st.Applied) || st.Applied == 0 {
		t.Fatalf("log has %d records, models applied %d", got, st.Applied)
	}
}
