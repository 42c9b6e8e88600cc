package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/recommend"
)

func testServer() *Server {
	return &Server{limits: Limits{MaxBodyBytes: 1 << 20, MaxBatchEvents: 100, MaxN: 5, MaxIDBytes: 8}}
}

// TestParseRank: the rank body decoder takes 1 to max_n distinct valid ids
// and refuses everything else with a 4xx that names the problem.
func TestParseRank(t *testing.T) {
	s := testServer()
	tests := []struct {
		name, body string
		want       []string
		status     int
		code       string
		mention    string
	}{
		{"one", `{"items":["a"]}`, []string{"a"}, 0, "", ""},
		{"order kept", ` {"items":["c","a","b"]} `, []string{"c", "a", "b"}, 0, "", ""},
		{"max_n ids", `{"items":["a","b","c","d","e"]}`, []string{"a", "b", "c", "d", "e"}, 0, "", ""},
		{"unicode id", `{"items":["☃"]}`, []string{"☃"}, 0, "", ""},
		{"empty body", ``, nil, 400, "invalid_json", "empty body"},
		{"null", `null`, nil, 400, "invalid_json", "null"},
		{"not JSON", `items`, nil, 400, "invalid_json", "invalid JSON"},
		{"an array", `["a"]`, nil, 400, "invalid_json", "invalid JSON"},
		{"unknown field", `{"items":["a"],"n":3}`, nil, 400, "invalid_json", `unknown field \"n\"`},
		{"trailing data", `{"items":["a"]}{"items":["b"]}`, nil, 400, "invalid_json", "data after"},
		{"invalid UTF-8", "{\"items\":[\"a\xff\"]}", nil, 422, "invalid_utf8", "items[0]"},
		{"no items field", `{}`, nil, 400, "invalid_items", "got none"},
		{"items null", `{"items":null}`, nil, 400, "invalid_items", "got none"},
		{"empty list", `{"items":[]}`, nil, 400, "invalid_items", "got none"},
		{"too many", `{"items":["a","b","c","d","e","f"]}`, nil, 400, "invalid_items", "at most 5"},
		{"not strings", `{"items":[1]}`, nil, 400, "invalid_json", "invalid JSON"},
		{"empty id", `{"items":["a",""]}`, nil, 400, "invalid_items", "items[1] must not be empty"},
		{"blank id", `{"items":["  "]}`, nil, 400, "invalid_items", "items[0] must not be empty"},
		{"long id", `{"items":["a","b","123456789"]}`, nil, 400, "invalid_items", "items[2] is 9 bytes long"},
		{"control character", `{"items":["a\u0001"]}`, nil, 400, "invalid_items", "items[0] contains control"},
		{"padded id", `{"items":[" a"]}`, nil, 400, "invalid_items", "items[0] has leading"},
		{"duplicate", `{"items":["a","b","a"]}`, nil, 400, "invalid_items", `items[2] repeats items[0] (\"a\")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.parseRank([]byte(tt.body))
			if tt.status == 0 {
				if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("got %q, %v; want a %d error", got, err, tt.status)
			}
			rec := httptest.NewRecorder()
			writeError(rec, err)
			if rec.Code != tt.status || ae.Code != tt.code || !strings.Contains(rec.Body.String(), tt.mention) {
				t.Fatalf("got %d %s %s; want %d %s mentioning %q", rec.Code, ae.Code, rec.Body, tt.status, tt.code, tt.mention)
			}
		})
	}
}

// FuzzRankBody: any body is either refused with a 4xx or gives 1 to max_n
// distinct ids that pass the id checks.
func FuzzRankBody(f *testing.F) {
	for _, b := range []string{`{"items":["a","b"]}`, `{"items":[]}`, `{"items":["a","a"]}`, `null`, "{\"items\":[\"\xff\"]}", `{"items":["a"]} x`, `{"items":["\u00e9","b\u0000"]}`} {
		f.Add([]byte(b))
	}
	s := testServer()
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := s.parseRank(b)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("error %v is not a 4xx", err)
			}
			return
		}
		if len(items) < 1 || len(items) > s.limits.MaxN {
			t.Fatalf("%d items accepted", len(items))
		}
		seen := map[string]bool{}
		for _, id := range items {
			if seen[id] || s.idProblem(id) != "" {
				t.Fatalf("accepted %q in %q", id, items)
			}
			seen[id] = true
		}
	})
}

// TestControls: the answer-shaping parameters are read only when present,
// and a bad one is a 400 that names it.
func TestControls(t *testing.T) {
	s := testServer()
	tests := []struct {
		query string
		want  recommend.Request
		err   string
	}{
		{"", recommend.Request{}, ""},
		{"exclude=", recommend.Request{}, ""},
		{"exclude=a,b&exclude=c", recommend.Request{Exclude: []string{"a", "b", "c"}}, ""},
		{"exclude=a,b,c,d,e", recommend.Request{Exclude: []string{"a", "b", "c", "d", "e"}}, ""},
		{"exclude=a,b,c&exclude=d,e,f", recommend.Request{}, "exclude lists more than 5 ids"},
		{"exclude=a,,b", recommend.Request{}, "exclude[1] must not be empty"},
		{"exclude=123456789", recommend.Request{}, "exclude[0] is 9 bytes long"},
		{"exclude=%FF", recommend.Request{}, "exclude[0] is not valid UTF-8"},
		{"diversity=0", recommend.Request{}, ""},
		{"diversity=0.5", recommend.Request{Diversity: 0.5}, ""},
		{"diversity=1", recommend.Request{Diversity: 1}, ""},
		{"diversity=1.01", recommend.Request{}, "diversity must be a number from 0 to 1"},
		{"diversity=-0.1", recommend.Request{}, "diversity must be"},
		{"diversity=NaN", recommend.Request{}, "diversity must be"},
		{"diversity=lots", recommend.Request{}, "diversity must be"},
		{"max_per_category=2", recommend.Request{MaxPerCategory: 2}, ""},
		{"max_per_category=0", recommend.Request{}, "max_per_category must be an integer from 1 to 5"},
		{"max_per_category=-1", recommend.Request{}, "max_per_category must be"},
		{"max_per_category=one", recommend.Request{}, "max_per_category must be"},
		{"explain=true", recommend.Request{Explain: true}, ""},
		{"explain=false", recommend.Request{}, ""},
		{"explain=yes", recommend.Request{}, "explain must be true or false"},
		{"explain=1", recommend.Request{}, "explain must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/users/u/recommendations?"+tt.query, nil)
			var got recommend.Request
			err := s.controls(r.URL.Query(), &got)
			if tt.err != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "invalid_parameter" || !strings.Contains(ae.Message, tt.err) {
					t.Fatalf("got %v; want a 400 invalid_parameter mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(got.Exclude, ",") != strings.Join(tt.want.Exclude, ",") || got.Diversity != tt.want.Diversity ||
				got.MaxPerCategory != tt.want.MaxPerCategory || got.Explain != tt.want.Explain {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestReadRoutes: rank is a read for the scope and write-limit checks,
// whatever the id; other POSTs are not.
func TestReadRoutes(t *testing.T) {
	a, err := NewAccess(AccessConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method, path string
		want         Scope
	}{
		{"POST", "/v1/users/u1/rank", ScopeRead},
		{"POST", "/v1/users/a%2Fb/rank", ScopeRead},
		{"POST", "/v1/users/u1/rank/x", ScopeAdmin},
		{"POST", "/v1/events", ScopeIngest},
		{"POST", "/v1/users/u1", ScopeAdmin},
		{"PUT", "/v1/users/u1/rank", ScopeAdmin},
		{"GET", "/v1/users/u1/recommendations", ScopeRead},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := a.scopeOf(r); got != tt.want {
			t.Errorf("%s %s: scope %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestWriteItemsExplained(t *testing.T) {
	items := []recommend.Scored{
		{Item: "a", Score: float64(float32(0.75)), Source: "item_knn", Because: []string{"x", "y\"z"},
			Parts: []recommend.Part{{Source: "item_knn", Score: float64(float32(0.5))}, {Source: "mf", Score: float64(float32(0.25))}}},
		{Item: "b", Score: 0.5, Source: "trending"},
		{Item: "ghost", Source: "", ColdStart: true},
	}
	rec := httptest.NewRecorder()
	writeItems(rec, "user_id", "u", items)
	body := rec.Body.String()
	var got struct {
		Items []recommend.Scored `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	if len(got.Items) != 3 || strings.Join(got.Items[0].Because, ",") != `x,y"z` || len(got.Items[0].Parts) != 2 ||
		got.Items[0].Parts[1] != (recommend.Part{Source: "mf", Score: float64(float32(0.25))}) || !got.Items[2].ColdStart {
		t.Fatalf("got %+v from %s", got.Items, body)
	}
	if !strings.Contains(body, `{"item_id":"b","score":0.5,"source":"trending"}`) || strings.Count(body, "cold_start") != 1 ||
		!strings.Contains(body, `"contributions":[{"source":"item_knn","score":0.5},`) {
		t.Fatalf("fields written where absent, or scores not at float32 precision: %s", body)
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// TestWriteItemsAllocations: a plain answer's allocations do not grow
// with its length.
func TestWriteItemsAllocations(t *testing.T) {
	if shared.Race {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	plain := func(n int) []recommend.Scored {
		out := make([]recommend.Scored, n)
		for i := range out {
			out[i] = recommend.Scored{Item: "item", Score: 0.25, Source: "item_knn"}
		}
		return out
	}
	w := &discard{h: http.Header{}}
	few, many := plain(2), plain(200)
	writeItems(w, "user_id", "u", many) // grow the pooled buffer
	a := testing.AllocsPerRun(100, func() { writeItems(w, "user_id", "u", few) })
	b := testing.AllocsPerRun(100, func() { writeItems(w, "user_id", "u", many) })
	if b > a {
		t.Fatalf("%v allocations for 2 items, %v for 200", a, b)
	}
}

// TestRankBodyBound: a rank body is held to what max_n ids of
// max_id_bytes need, far below max_body_bytes, since rank requests are not
// counted among the writes in flight.
func TestRankBodyBound(t *testing.T) {
	s := testServer()
	limit := s.rankBodyBytes()
	if limit != 5*16+1024 {
		t.Fatalf("rank body limit %d", limit)
	}
	for _, tt := range []struct {
		pad    int
		status int
	}{{int(limit) - 100, 0}, {int(limit), 413}} {
		body := `{"items":["a"]` + strings.Repeat(" ", tt.pad) + "}"
		r := httptest.NewRequest("POST", "/v1/users/u/rank", strings.NewReader(body))
		r.SetPathValue("id", "u")
		rec := httptest.NewRecorder()
		b, err := s.readBody(rec, r, limit)
		if tt.status == 0 {
			if err != nil {
				t.Fatalf("%d bytes: %v", len(body), err)
			}
			if _, err := s.parseRank(b); err != nil {
				t.Fatalf("%d bytes: %v", len(body), err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("%d bytes read within a limit of %d", len(body), limit)
		}
		if st := writeError(rec, err); st != tt.status || !strings.Contains(rec.Body.String(), "body_too_large") {
			t.Fatalf("%d bytes: %d %s", len(body), st, rec.Body)
		}
	}
}
