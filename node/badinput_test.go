package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// snapshot is everything a client can read back.
var recommendationID = regexp.MustCompile(`"recommendation_id":"[^"]*",`)

func snapshot(t *testing.T, n *testNode) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{
		"/v1/users/u1/events?n=100", "/v1/users/u1/recommendations?n=20", "/v1/users/u2/recommendations?n=20",
		"/v1/trending?n=20", "/v1/items/a/similar?n=20", "/v1/items/a", "/v1/users/u1",
	} {
		resp, err := http.Get(n.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = recommendationID.ReplaceAll(body, nil) // a fresh id on every answer
		fmt.Fprintf(&b, "%s %d %s\n", path, resp.StatusCode, body)
	}
	fmt.Fprintf(&b, "last_seq %d\n", n.Store.LastSeq())
	return b.String()
}

// TestBadInputLeavesStoreUnchanged sends every kind of bad request and
// checks each gets its 4xx with a JSON error naming the problem, and that
// nothing a client can read changed.
func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Limits.MaxBodyBytes = 64 << 10
	cfg.Limits.MaxBatchEvents = 100
	n := startNode(t, cfg)
	call(t, "PUT", n.URL+"/v1/items/a", `{"title":"A","categories":["c"]}`, nil)
	call(t, "PUT", n.URL+"/v1/users/u1", `{"attributes":{"x":1}}`, nil)
	post(t, n, `[{"user_id":"u1","item_id":"a","type":"view"},{"user_id":"u1","item_id":"b","type":"purchase"},{"user_id":"u2","item_id":"a","type":"click"}]`)
	before := snapshot(t, n)

	long := strings.Repeat("x", 300)
	many := "[" + strings.Repeat(`{"user_id":"u","item_id":"i","type":"view"},`, 100) + `{"user_id":"u","item_id":"i","type":"view"}]`
	var ranks []string
	for i := range 1001 {
		ranks = append(ranks, fmt.Sprintf("%q", fmt.Sprint("i", i)))
	}
	tooManyRanked := `{"items":[` + strings.Join(ranks, ",") + `]}`
	tooManyExcluded := strings.Repeat("x,", 1000) + "x"
	huge := `[{"user_id":"u","item_id":"i","type":"view","context":{"pad":"` + strings.Repeat("y", 70<<10) + `"}}]`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code, mention                   string
	}{
		{"broken JSON", "POST", "/v1/events", "application/json", `[{"user_id":"u1",`, 400, "invalid_json", "invalid JSON"},
		{"not JSON at all", "POST", "/v1/events", "application/json", `hello`, 400, "invalid_json", "invalid JSON"},
		{"empty body", "POST", "/v1/events", "application/json", ``, 400, "invalid_json", "empty"},
		{"wrong field type", "POST", "/v1/events", "application/json", `[{"user_id":1,"item_id":"a","type":"view"}]`, 422, "invalid_events", "user_id"},
		{"wrong value type", "POST", "/v1/events", "application/json", `[{"user_id":"u1","item_id":"a","type":"view","value":"lots"}]`, 422, "invalid_events", "value"},
		{"empty user id", "POST", "/v1/events", "application/json", `[{"user_id":"","item_id":"a","type":"view"}]`, 422, "invalid_events", "user_id"},
		{"oversized item id", "POST", "/v1/events", "application/json", `[{"user_id":"u1","item_id":"` + long + `","type":"view"}]`, 422, "invalid_events", "item_id"},
		{"unknown event type", "POST", "/v1/events", "application/json", `[{"user_id":"u1","item_id":"a","type":"teleport"}]`, 422, "invalid_events", "teleport"},
		{"future timestamp", "POST", "/v1/events", "application/json", `[{"user_id":"u1","item_id":"a","type":"view","timestamp":"2999-01-01T00:00:00Z"}]`, 422, "invalid_events", "future"},
		{"atomic batch with one bad event", "POST", "/v1/events?atomic=true", "application/json", `[{"user_id":"u1","item_id":"z","type":"view"},{"user_id":"u1","item_id":"a","type":"nope"}]`, 422, "invalid_events", "nothing was stored"},
		{"bad atomic flag", "POST", "/v1/events?atomic=maybe", "application/json", `[]`, 400, "invalid_parameter", "atomic"},
		{"too many events", "POST", "/v1/events", "application/json", many, 413, "too_many_events", "at most 100"},
		{"body over the limit", "POST", "/v1/events", "application/json", huge, 413, "body_too_large", "larger than the limit"},
		{"unsupported content type", "POST", "/v1/events", "application/xml", `<e/>`, 415, "unsupported_media_type", "application/x-ndjson"},
		{"unknown route", "GET", "/v1/nope", "", ``, 404, "not_found", "/v1/nope"},
		{"unknown method", "PATCH", "/v1/events", "application/json", `[]`, 405, "method_not_allowed", "POST"},
		{"delete on recommendations", "DELETE", "/v1/users/u1/recommendations", "", ``, 405, "method_not_allowed", "GET"},
		{"n not a number", "GET", "/v1/users/u1/recommendations?n=ten", "", ``, 400, "invalid_parameter", "n must be"},
		{"n too large", "GET", "/v1/trending?n=100000", "", ``, 400, "invalid_parameter", "n must be"},
		{"n zero", "GET", "/v1/items/a/similar?n=0", "", ``, 400, "invalid_parameter", "n must be"},
		{"oversized path id", "GET", "/v1/users/" + long + "/recommendations", "", ``, 400, "invalid_id", "at most 256"},
		{"item body not JSON", "PUT", "/v1/items/a", "application/json", `{"title":`, 400, "invalid_json", "invalid JSON"},
		{"item unknown field", "PUT", "/v1/items/a", "application/json", `{"titel":"A"}`, 400, "invalid_json", "titel"},
		{"item id mismatch", "PUT", "/v1/items/a", "application/json", `{"id":"b"}`, 400, "invalid_item", "differs"},
		{"item attributes not an object", "PUT", "/v1/items/a", "application/json", `{"attributes":[1]}`, 400, "invalid_item", "attributes"},
		{"bulk items with a bad one", "PUT", "/v1/items", "application/json", `[{"id":"ok"},{"id":""}]`, 422, "invalid_items", "nothing was stored"},
		{"user body wrong type", "PUT", "/v1/users/u1", "application/json", `{"attributes":"x"}`, 400, "invalid_user", "attributes"},
		{"similar to unknown item", "GET", "/v1/items/ghost/similar", "", ``, 404, "not_found", "ghost"},
		{"unknown item", "GET", "/v1/items/ghost", "", ``, 404, "not_found", "ghost"},
		{"delete unknown user", "DELETE", "/v1/users/ghost", "", ``, 404, "not_found", "ghost"},
		// Data after one event object would be dropped unseen.
		{"two concatenated objects", "POST", "/v1/events", "application/json", `{"user_id":"u1","item_id":"z","type":"view"}{"user_id":"u1","item_id":"y","type":"view"}`, 400, "invalid_json", "data after the first event object"},
		{"newline-separated objects sent as JSON", "POST", "/v1/events", "", "{\"user_id\":\"u1\",\"item_id\":\"z\",\"type\":\"view\"}\n{\"user_id\":\"u1\",\"item_id\":\"y\",\"type\":\"view\"}\n", 400, "invalid_json", "x-ndjson"},
		{"object then garbage", "POST", "/v1/events", "application/json", `{"user_id":"u1","item_id":"z","type":"view"} xyz`, 400, "invalid_json", "data after"},
		// Invalid UTF-8 would become U+FFFD and merge distinct ids.
		{"invalid UTF-8 user id in a body", "POST", "/v1/events", "application/json", "[{\"user_id\":\"u\xff1\",\"item_id\":\"a\",\"type\":\"view\"}]", 422, "invalid_events", `"field":"user_id","reason":"is not valid UTF-8"`},
		{"invalid UTF-8 in a single event", "POST", "/v1/events", "application/json", "{\"user_id\":\"u1\",\"item_id\":\"a\xc3\",\"type\":\"view\"}", 422, "invalid_events", `"field":"item_id"`},
		{"invalid UTF-8 in an item document", "PUT", "/v1/items/a", "application/json", "{\"title\":\"A\xff\"}", 422, "invalid_utf8", "title is not valid UTF-8"},
		{"invalid UTF-8 in a bulk item", "PUT", "/v1/items", "application/json", "[{\"id\":\"ok\"},{\"id\":\"b\xfe\"}]", 422, "invalid_utf8", "[1].id is not valid UTF-8"},
		{"invalid UTF-8 in a user attribute", "PUT", "/v1/users/u1", "application/json", "{\"attributes\":{\"city\":\"\xff\"}}", 422, "invalid_utf8", "attributes.city"},
		// null is not a document.
		{"null item", "PUT", "/v1/items/a", "application/json", `null`, 400, "invalid_json", "null"},
		{"null user", "PUT", "/v1/users/u1", "application/json", ` null `, 400, "invalid_json", "null"},
		{"null item list", "PUT", "/v1/items", "application/json", `null`, 400, "invalid_json", "null"},
		// One rule for unknown fields: refused, named.
		{"unknown event field", "POST", "/v1/events", "application/json", `[{"user_id":"u1","item_id":"a","type":"view","colour":"red"}]`, 422, "invalid_events", `"field":"colour"`},
		{"unsupported content encoding", "POST", "/v1/events", "application/json", `[]`, 415, "unsupported_media_type", "Content-Encoding"},
		{"empty id in the path", "GET", "/v1/users//recommendations", "", ``, 400, "invalid_path", "empty id"},
		{"dot segments in the path", "GET", "/v1/items/../../x", "", ``, 400, "invalid_path", ".."},
		// Ranking a list: a read, refused like any body.
		{"rank body not JSON", "POST", "/v1/users/u1/rank", "application/json", `{"items":[`, 400, "invalid_json", "invalid JSON"},
		{"rank body empty", "POST", "/v1/users/u1/rank", "application/json", ``, 400, "invalid_json", "empty body"},
		{"rank body null", "POST", "/v1/users/u1/rank", "application/json", `null`, 400, "invalid_json", "null"},
		{"rank unknown field", "POST", "/v1/users/u1/rank", "application/json", `{"items":["a"],"explain":true}`, 400, "invalid_json", "unknown field"},
		{"rank data after the object", "POST", "/v1/users/u1/rank", "application/json", `{"items":["a"]} []`, 400, "invalid_json", "data after"},
		{"rank invalid UTF-8", "POST", "/v1/users/u1/rank", "application/json", "{\"items\":[\"a\",\"b\xff\"]}", 422, "invalid_utf8", "items[1] is not valid UTF-8"},
		{"rank no items", "POST", "/v1/users/u1/rank", "application/json", `{"items":[]}`, 400, "invalid_items", "got none"},
		{"rank items missing", "POST", "/v1/users/u1/rank", "application/json", `{}`, 400, "invalid_items", "got none"},
		{"rank too many items", "POST", "/v1/users/u1/rank", "application/json", tooManyRanked, 400, "invalid_items", "at most 1000"},
		{"rank empty id", "POST", "/v1/users/u1/rank", "application/json", `{"items":["a",""]}`, 400, "invalid_items", "items[1] must not be empty"},
		{"rank oversized id", "POST", "/v1/users/u1/rank", "application/json", `{"items":["` + long + `"]}`, 400, "invalid_items", "items[0] is 300 bytes long"},
		{"rank duplicate ids", "POST", "/v1/users/u1/rank", "application/json", `{"items":["a","b","a"]}`, 400, "invalid_items", "items[2] repeats items[0]"},
		{"rank bad explain", "POST", "/v1/users/u1/rank?explain=maybe", "application/json", `{"items":["a"]}`, 400, "invalid_parameter", "explain must be true or false"},
		{"rank oversized user id", "POST", "/v1/users/" + long + "/rank", "application/json", `{"items":["a"]}`, 400, "invalid_id", "at most 256"},
		{"get on rank", "GET", "/v1/users/u1/rank", "", ``, 405, "method_not_allowed", "POST"},
		// The controls of a recommendation answer.
		{"exclude too many", "GET", "/v1/users/u1/recommendations?exclude=" + tooManyExcluded, "", ``, 400, "invalid_parameter", "exclude lists more than 1000 ids"},
		{"exclude empty id", "GET", "/v1/users/u1/recommendations?exclude=a,,b", "", ``, 400, "invalid_parameter", "exclude[1] must not be empty"},
		{"exclude oversized id", "GET", "/v1/users/u1/recommendations?exclude=" + long, "", ``, 400, "invalid_parameter", "exclude[0] is 300 bytes long"},
		{"diversity above 1", "GET", "/v1/users/u1/recommendations?diversity=1.5", "", ``, 400, "invalid_parameter", "diversity must be a number from 0 to 1"},
		{"diversity negative", "GET", "/v1/users/u1/recommendations?diversity=-0.5", "", ``, 400, "invalid_parameter", "diversity must be"},
		{"diversity not a number", "GET", "/v1/users/u1/recommendations?diversity=high", "", ``, 400, "invalid_parameter", "diversity must be"},
		{"max_per_category zero", "GET", "/v1/users/u1/recommendations?max_per_category=0", "", ``, 400, "invalid_parameter", "max_per_category must be"},
		{"max_per_category negative", "GET", "/v1/users/u1/recommendations?max_per_category=-2", "", ``, 400, "invalid_parameter", "max_per_category must be"},
		{"max_per_category not a number", "GET", "/v1/users/u1/recommendations?max_per_category=one", "", ``, 400, "invalid_parameter", "max_per_category must be"},
		{"explain not a boolean", "GET", "/v1/users/u1/recommendations?explain=yes", "", ``, 400, "invalid_parameter", "explain must be true or false"},
		{"similar by an unknown kind", "GET", "/v1/items/a/similar?by=colour", "", ``, 400, "invalid_parameter", "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, n.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			if tt.name == "unsupported content encoding" {
				req.Header.Set("Content-Encoding", "br")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var e errorReply
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("status %d, body %q is not JSON", resp.StatusCode, raw)
			}
			if resp.StatusCode != tt.status || e.Error.Code != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", resp.StatusCode, e.Error.Code, tt.status, tt.code, raw)
			}
			if !strings.Contains(string(raw), tt.mention) {
				t.Fatalf("error does not mention %q: %s", tt.mention, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	if after := snapshot(t, n); after != before {
		t.Fatalf("bad input changed what is stored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
