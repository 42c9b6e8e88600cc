// Package server is streamrec's HTTP JSON API. It decodes requests, runs
// events through the pipeline, hands records to the log's writer, and reads
// recommendations from the engine; it holds no model state of its own.
//
// Invariant: a write is answered 2xx only after the log writer acknowledged
// it (durable and applied); every error is a JSON body
// {"error": {"code", "message", "details"}} with a 4xx or 5xx status.
package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/metrics"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/push"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/store"
)

// Limits bound what one request may ask.
type Limits struct {
	MaxBodyBytes   int64
	MaxBatchEvents int
	MaxN           int
	MaxIDBytes     int
}

// Server serves the API.
type Server struct {
	writer  *ingest.Writer
	eng     *recommend.Engine
	store   *store.Store
	pipe    *pipeline.Pipeline
	limits  Limits
	log     *slog.Logger
	metrics *metrics.Metrics
	now     func() time.Time
	mux     *http.ServeMux

	exp   *experiment.Tracker // nil: experiments off
	ids   *experiment.IDs
	expMu sync.Mutex // experiment writes: checked and logged one at a time

	hub *push.Hub // nil: streams off
	// streamEvery is the least time between two updates of one stream.
	streamEvery time.Duration
	// maxStreams bounds the streams open at once.
	maxStreams int
	streams    atomic.Int64
	// streamsDone, closed by CloseStreams, ends every open stream (the
	// server is shutting down).
	streamsDone chan struct{}
	closeOnce   sync.Once
	// publish, when set, also gets every list a stream or a follower
	// sends (a Kafka topic).
	publish Publisher
	// cache, when set, is the response cache replicas share (Redis).
	cache Cache
}

// Cache is a response cache shared by replicas: best effort both ways (a
// failure is a miss).
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, b []byte)
}

// SetCache puts c in front of recommendation answers.
func (s *Server) SetCache(c Cache) { s.cache = c }

// Publisher takes users' updated lists: the list's id and the answer's
// JSON object. It must not block, nor keep body.
type Publisher interface {
	Publish(user, id string, body []byte)
}

// New returns a server over the given parts; m may be nil.
func New(w *ingest.Writer, eng *recommend.Engine, st *store.Store, pipe *pipeline.Pipeline, limits Limits, log *slog.Logger, m *metrics.Metrics) *Server {
	return &Server{writer: w, eng: eng, store: st, pipe: pipe, limits: limits, log: log, metrics: m, now: time.Now,
		streamsDone: make(chan struct{})}
}

// Route is one method on one path of the API.
type Route struct {
	Method  string
	Pattern string
	// Read marks a route that changes nothing although its method would
	// say it writes (a POST that sends a list to rank): it needs the read
	// scope and is not counted among the writes in flight.
	Read    bool
	handler func(*Server, http.ResponseWriter, *http.Request) error
}

// Routes lists every route the server answers; the OpenAPI file must list
// the same.
func Routes() []Route {
	return []Route{
		{"POST", "/v1/events", false, (*Server).postEvents},
		{"PUT", "/v1/items", false, (*Server).putItems},
		{"PUT", "/v1/items/{id}", false, (*Server).putItem},
		{"GET", "/v1/items/{id}", false, (*Server).getItem},
		{"DELETE", "/v1/items/{id}", false, (*Server).deleteItem},
		{"GET", "/v1/items/{id}/similar", false, (*Server).similar},
		{"PUT", "/v1/users/{id}", false, (*Server).putUser},
		{"GET", "/v1/users/{id}", false, (*Server).getUser},
		{"DELETE", "/v1/users/{id}", false, (*Server).deleteUser},
		{"GET", "/v1/users/{id}/recommendations", false, (*Server).recommendations},
		{"GET", "/v1/users/{id}/recommendations/stream", false, (*Server).stream},
		{"POST", "/v1/users/{id}/rank", true, (*Server).rank},
		{"GET", "/v1/users/{id}/experiments", false, (*Server).userExperiments},
		{"POST", "/v1/impressions", false, (*Server).postImpressions},
		{"POST", "/v1/experiments", false, (*Server).defineExperiment},
		{"GET", "/v1/experiments", false, (*Server).listExperiments},
		{"GET", "/v1/experiments/{name}", false, (*Server).getExperiment},
		{"PATCH", "/v1/experiments/{name}", false, (*Server).changeExperiment},
		{"GET", "/v1/experiments/{name}/results", false, (*Server).experimentResults},
		{"GET", "/v1/users/{id}/events", false, (*Server).userEvents},
		{"GET", "/v1/trending", false, (*Server).trending},
	}
}

// readRoutes returns a matcher of the requests for routes marked Read, for
// the checks in front of the mux (scopes, write limits), where no pattern
// has been matched yet.
func readRoutes() func(*http.Request) bool {
	mux := http.NewServeMux()
	patterns := map[string]bool{}
	for _, rt := range Routes() {
		if rt.Read {
			p := rt.Method + " " + rt.Pattern
			mux.Handle(p, http.NotFoundHandler())
			patterns[p] = true
		}
	}
	return func(r *http.Request) bool {
		_, p := mux.Handler(r) // p is the path, not a pattern, for a redirect
		return patterns[p]
	}
}

// Handler returns the API's HTTP handler; the caller puts Observe (metrics
// and logs) and Canonical (no mux redirects) in front of it.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	byPattern := map[string]map[string]func(*Server, http.ResponseWriter, *http.Request) error{}
	var order []string
	for _, rt := range Routes() {
		if byPattern[rt.Pattern] == nil {
			byPattern[rt.Pattern] = map[string]func(*Server, http.ResponseWriter, *http.Request) error{}
			order = append(order, rt.Pattern)
		}
		byPattern[rt.Pattern][rt.Method] = rt.handler
	}
	for _, pattern := range order {
		methods := byPattern[pattern]
		var allow []string
		for _, m := range []string{"GET", "PUT", "POST", "PATCH", "DELETE"} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h := methods[r.Method]
			if h == nil && r.Method == http.MethodHead {
				h = methods["GET"]
			}
			if h == nil {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				s.fail(w, r, errorf(http.StatusMethodNotAllowed, "method_not_allowed",
					fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, pattern, strings.Join(allow, ", ")), nil))
				return
			}
			if err := s.waitToken(r); err != nil {
				if ae, ok := err.(*apiError); ok && ae.Status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				s.fail(w, r, err)
				return
			}
			if err := h(s, w, r); err != nil {
				s.fail(w, r, err)
			}
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errorf(http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), nil))
	})
	s.mux = mux
	return mux
}

// tokenWait bounds how long a read waits for its consistency token.
const tokenWait = 5 * time.Second

// waitToken holds a request that carries a consistency token (?after= or
// TokenHeader: what a write answered) until this replica reflects it:
// read-your-writes on any replica. 503 when it cannot within tokenWait.
func (s *Server) waitToken(r *http.Request) error {
	v := r.URL.Query().Get("after")
	if v == "" {
		v = r.Header.Get(TokenHeader)
	}
	if v == "" {
		return nil
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_token", fmt.Sprintf("the consistency token must be what a write answered (a number), got %q", v), nil)
	}
	if s.writer.Applied() >= seq {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), tokenWait)
	defer cancel()
	if err := s.writer.WaitApplied(ctx, seq); err != nil {
		return errorf(http.StatusServiceUnavailable, "not_caught_up", fmt.Sprintf("this replica reflects the log up to %d, the token asks for %d; retry shortly", s.writer.Applied(), seq), nil)
	}
	return nil
}

// Route names the route of r for metrics (call after Handler).
func (s *Server) Route(r *http.Request) string { return RouteOf(s.mux, r) }

// fail answers with the error; server-side failures are logged (client
// errors are the client's to read).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if status := writeError(w, err); status >= http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
}

// body limits the request body to the configured size, and decompresses a
// gzip body (Content-Encoding: gzip), whose decompressed size is limited
// alike.
func (s *Server) body(w http.ResponseWriter, r *http.Request) (io.Reader, error) {
	return s.bodyWithin(w, r, s.limits.MaxBodyBytes)
}

// bodyWithin is body with its own limit.
func (s *Server) bodyWithin(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, errorf(http.StatusBadRequest, "invalid_body", "Content-Encoding is gzip but the body is not gzip data: "+err.Error(), nil)
		}
		return http.MaxBytesReader(w, zr, limit), nil
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Encoding %q is not supported; send the body uncompressed or with gzip", enc), nil)
	}
}

// pathID returns the {id} path segment, checked like any id.
func (s *Server) pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if err := s.checkID(what, id); err != nil {
		return "", err
	}
	return id, nil
}

func (s *Server) checkID(what, id string) error {
	if p := s.idProblem(id); p != "" {
		return errorf(http.StatusBadRequest, "invalid_id", what+" "+p, nil)
	}
	return nil
}

// idProblem says what is wrong with an id ("must not be empty"), or "".
func (s *Server) idProblem(id string) string {
	switch {
	case strings.TrimSpace(id) == "":
		return "must not be empty"
	case len(id) > s.limits.MaxIDBytes:
		return fmt.Sprintf("is %d bytes long; at most %d allowed", len(id), s.limits.MaxIDBytes)
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "contains control characters"
	case id != strings.TrimSpace(id):
		return "has leading or trailing white space"
	}
	return ""
}

// intParam reads a positive integer query parameter.
func (s *Server) intParam(r *http.Request, name string, def, max int) (int, error) {
	return intValue(r.URL.Query(), name, def, max)
}

// intValue reads a positive integer query parameter from q.
func intValue(q url.Values, name string, def, max int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("%s must be an integer from 1 to %d, got %q", name, max, v), nil)
	}
	return n, nil
}

type eventsReply struct {
	Accepted   int                  `json:"accepted"`
	Duplicates int                  `json:"duplicates"`
	Rejected   []pipeline.Rejection `json:"rejected"`
	// Token is the consistency token of the write (also in TokenHeader).
	Token string `json:"token,omitempty"`
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) error {
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", fmt.Sprintf("Content-Type %q cannot be parsed", ct), nil)
		case mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/ndjson":
			ndjson = true
		case mt == "application/json", mt == "text/plain", mt == "application/x-www-form-urlencoded":
			// JSON; the last is what curl -d sends when no type is given.
		default:
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("Content-Type %q: send application/json (an array of events) or application/x-ndjson (one event per line)", mt), nil)
		}
	}
	atomic := false
	if v := r.URL.Query().Get("atomic"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("atomic must be true or false, got %q", v), nil)
		}
		atomic = b
	}
	start := time.Now()
	body, err := s.body(w, r)
	if err != nil {
		s.metrics.Rejected("body")
		return err
	}
	inputs, rejected, err := pipeline.Decode(body, ndjson, s.limits.MaxBatchEvents)
	if err != nil {
		s.metrics.Rejected("body")
		return err
	}
	bad := make(map[int]bool, len(rejected))
	for _, rj := range rejected {
		bad[rj.Index] = true
	}
	now := s.now()
	recs := make([]event.Record, 0, len(inputs))
	for i := range inputs {
		if bad[i] {
			continue
		}
		ev, err := s.pipe.Process(&inputs[i], now)
		if err != nil {
			var ve *pipeline.ValidationError
			if errors.As(err, &ve) {
				rejected = append(rejected, pipeline.Rejection{Index: i, Field: ve.Field, Reason: ve.Reason})
				continue
			}
			return err
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
	}
	slices.SortFunc(rejected, func(a, b pipeline.Rejection) int { return a.Index - b.Index })
	s.metrics.Pipeline(time.Since(start))
	for _, rj := range rejected {
		field := rj.Field
		if field == "" {
			field = "event"
		}
		s.metrics.Rejected(field)
	}
	if len(rejected) > 0 && (atomic || len(recs) == 0) {
		msg := fmt.Sprintf("%d of %d events are invalid; nothing was stored", len(rejected), len(inputs))
		return errorf(http.StatusUnprocessableEntity, "invalid_events", msg, map[string]any{"rejected": rejected})
	}
	reply := eventsReply{Rejected: rejected}
	if reply.Rejected == nil {
		reply.Rejected = []pipeline.Rejection{}
	}
	if len(recs) > 0 {
		res, err := s.writer.Submit(r.Context(), recs)
		if err != nil {
			return err
		}
		reply.Accepted = res.Stored
		reply.Duplicates = len(recs) - res.Stored
		reply.Token = strconv.FormatUint(res.Last, 10)
		w.Header().Set(TokenHeader, reply.Token)
		s.countAccepted(recs, res.Duplicate)
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// checkItem validates an item document.
func (s *Server) checkItem(it *event.Item) error {
	if err := s.checkID("item id", it.ID); err != nil {
		return err
	}
	for _, list := range [][]string{it.Categories, it.Tags} {
		for _, c := range list {
			if err := s.checkID("category or tag", c); err != nil {
				return err
			}
		}
	}
	if len(it.Attributes) > 0 && string(it.Attributes) != "null" && it.Attributes[0] != '{' {
		return errorf(http.StatusBadRequest, "invalid_item", "attributes must be a JSON object", nil)
	}
	return nil
}

// decodeJSON reads the request body into v, which want names ("a JSON
// object", "a JSON array of items"), as decodeBytes does.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any, want string) error {
	b, err := s.readBody(w, r, s.limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	return decodeBytes(b, v, want)
}

// readBody reads the whole request body, at most limit bytes (compressed
// and decompressed).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := s.bodyWithin(w, r, limit)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "invalid_body", "reading the body: "+err.Error(), nil)
	}
	return b, nil
}

// decodeBytes decodes one JSON value from b into v. Unknown fields, null,
// data after the value and invalid UTF-8 (which encoding/json would turn
// into U+FFFD) are refused.
func decodeBytes(b []byte, v any, want string) error {
	switch t := bytes.TrimSpace(b); {
	case len(t) == 0:
		return errorf(http.StatusBadRequest, "invalid_json", "empty body: expected "+want, nil)
	case string(t) == "null":
		return errorf(http.StatusBadRequest, "invalid_json", "the body is null: expected "+want, nil)
	case !utf8.Valid(t):
		field := pipeline.InvalidUTF8Path(t)
		msg := "the body is not valid UTF-8"
		if field != "" {
			msg = field + " is not valid UTF-8"
		}
		return errorf(http.StatusUnprocessableEntity, "invalid_utf8", msg, map[string]string{"field": field})
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid_json", "invalid JSON: "+err.Error(), nil)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "invalid_json", "invalid JSON: data after "+want, nil)
	}
	return nil
}

// TokenHeader carries a write's consistency token in its answer, and a
// read's in its request (or ?after=): a read waits until the replica
// answering it reflects the write.
const TokenHeader = "X-Streamrec-Token"

func (s *Server) submit(w http.ResponseWriter, ctx context.Context, recs ...event.Record) error {
	res, err := s.writer.Submit(ctx, recs)
	if err == nil {
		w.Header().Set(TokenHeader, strconv.FormatUint(res.Last, 10))
	}
	return err
}

func (s *Server) countAccepted(recs []event.Record, dup []bool) {
	if s.metrics == nil {
		return
	}
	var byType [event.NumTypes]int
	for i := range recs {
		if !dup[i] {
			byType[recs[i].Event.Type]++
		}
	}
	for t, n := range byType {
		if n > 0 {
			s.metrics.Accepted(event.Type(t).String(), n)
		}
	}
	s.metrics.Duplicates(len(dup) - sum(byType[:]))
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

func (s *Server) putItem(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "item id")
	if err != nil {
		return err
	}
	var it event.Item
	if err := s.decodeJSON(w, r, &it, "a JSON item object"); err != nil {
		return err
	}
	if it.ID != "" && it.ID != id {
		return errorf(http.StatusBadRequest, "invalid_item", fmt.Sprintf("body id %q differs from the path id %q", it.ID, id), nil)
	}
	it.ID = id
	if err := s.checkItem(&it); err != nil {
		return err
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindItemPut, Item: it}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, it)
	return nil
}

func (s *Server) putItems(w http.ResponseWriter, r *http.Request) error {
	var items []event.Item
	if err := s.decodeJSON(w, r, &items, "a JSON array of item objects"); err != nil {
		return err
	}
	if len(items) > s.limits.MaxBatchEvents {
		return errorf(http.StatusRequestEntityTooLarge, "too_many_items", fmt.Sprintf("%d items in one request; at most %d allowed", len(items), s.limits.MaxBatchEvents), nil)
	}
	recs := make([]event.Record, 0, len(items))
	var rejected []pipeline.Rejection
	for i := range items {
		if err := s.checkItem(&items[i]); err != nil {
			rejected = append(rejected, pipeline.Rejection{Index: i, Reason: err.Error()})
			continue
		}
		recs = append(recs, event.Record{Kind: event.KindItemPut, Item: items[i]})
	}
	if len(rejected) > 0 {
		return errorf(http.StatusUnprocessableEntity, "invalid_items", fmt.Sprintf("%d of %d items are invalid; nothing was stored", len(rejected), len(items)), map[string]any{"rejected": rejected})
	}
	if len(recs) > 0 {
		if err := s.submit(w, r.Context(), recs...); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": len(recs)})
	return nil
}

func (s *Server) getItem(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "item id")
	if err != nil {
		return err
	}
	it, err := s.store.Item(id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", fmt.Sprintf("item %q is not in the catalogue", id), nil)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, it)
	return nil
}

func (s *Server) deleteItem(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "item id")
	if err != nil {
		return err
	}
	if _, err := s.store.Item(id); errors.Is(err, store.ErrNotFound) && !s.eng.KnowsItem(id) {
		return errorf(http.StatusNotFound, "not_found", fmt.Sprintf("item %q is not known", id), nil)
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindItemDelete, Item: event.Item{ID: id}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	var u event.User
	if err := s.decodeJSON(w, r, &u, "a JSON user object"); err != nil {
		return err
	}
	if u.ID != "" && u.ID != id {
		return errorf(http.StatusBadRequest, "invalid_user", fmt.Sprintf("body id %q differs from the path id %q", u.ID, id), nil)
	}
	u.ID = id
	if len(u.Attributes) > 0 && string(u.Attributes) != "null" && u.Attributes[0] != '{' {
		return errorf(http.StatusBadRequest, "invalid_user", "attributes must be a JSON object", nil)
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindUserPut, User: u}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	u, err := s.store.User(id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", fmt.Sprintf("user %q has no profile", id), nil)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	if _, err := s.store.User(id); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", fmt.Sprintf("user %q has no profile", id), nil)
	}
	if err := s.submit(w, r.Context(), event.Record{Kind: event.KindUserDelete, User: event.User{ID: id}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) recommendations(w http.ResponseWriter, r *http.Request) error {
	req, asked, err := s.readRecommendation(r)
	if err != nil {
		return err
	}
	shown, err := s.shown(r.URL.Query())
	if err != nil {
		return err
	}
	now := s.now()
	h := s.personalise(&recommendation{Request: &req, asked: asked}, now)
	var key string
	if s.cache != nil && !shown {
		key = s.cacheKey(&req, h)
		if b, ok := s.cache.Get(r.Context(), key); ok {
			w.Header().Set("X-Streamrec-Cache", "hit")
			writeRaw(w, h, b)
			return nil
		}
		w.Header().Set("X-Streamrec-Cache", "miss")
	}
	var trace recommend.Trace
	req.Trace = &trace
	items := s.eng.Recommend(req)
	s.traced(&trace)
	if key != "" {
		s.cache.Set(r.Context(), key, appendItems(nil, items))
	}
	if shown && len(items) > 0 {
		if err := s.recordShown(w, r.Context(), h, items, now); err != nil {
			return err
		}
	}
	writeList(w, h, items)
	return nil
}

// cacheKey names an answer in the shared cache: everything the request
// asks (the user, n, the filters and controls, the variants it is served),
// and the engine's Version for the user — their own events, the
// catalogue, the models — so that no cached list misses any of those.
// Other users' events are not in it: an entry lives cache_ttl.
func (s *Server) cacheKey(req *recommend.Request, h header) string {
	b := make([]byte, 0, 128)
	b = append(b, "rec\x00"...)
	b = append(b, req.User...)
	b = fmt.Appendf(b, "\x00%d\x00%s\x00%v\x00%g\x00%d\x00%t\x00%v", req.N, req.Category, req.Exclude, req.Diversity, req.MaxPerCategory, req.Explain, s.eng.Version(req.User))
	for _, a := range h.assigned {
		b = append(b, 0)
		b = append(b, a.Experiment...)
		b = append(b, '=')
		b = append(b, a.Variant...)
	}
	return string(b)
}

// traced records a request's time and candidates per source.
func (s *Server) traced(trace *recommend.Trace) {
	for _, t := range trace.Sources {
		s.metrics.RecommendSource(t.Name, t.Took, t.Candidates)
	}
}

// controls reads the optional shaping of an answer: exclude, diversity,
// max_per_category and explain. Each absent one leaves req as it was.
func (s *Server) controls(q url.Values, req *recommend.Request) error {
	var err error
	if req.Exclude, err = s.idList(q, "exclude"); err != nil {
		return err
	}
	if v := q.Get("diversity"); v != "" {
		d, err := strconv.ParseFloat(v, 64)
		if err != nil || !(d >= 0 && d <= 1) { // NaN fails both
			return errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("diversity must be a number from 0 to 1, got %q", v), nil)
		}
		req.Diversity = d
	}
	if req.MaxPerCategory, err = intValue(q, "max_per_category", 0, s.limits.MaxN); err != nil {
		return err
	}
	req.Explain, err = boolValue(q, "explain")
	return err
}

// idList reads a list of ids from a query parameter, comma-separated
// and/or repeated; at most limits.max_n of them.
func (s *Server) idList(q url.Values, name string) ([]string, error) {
	vs := q[name]
	if len(vs) == 0 || len(vs) == 1 && vs[0] == "" {
		return nil, nil
	}
	var out []string
	for _, v := range vs {
		for id := range strings.SplitSeq(v, ",") {
			if len(out) == s.limits.MaxN {
				return nil, errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("%s lists more than %d ids; at most %d allowed", name, s.limits.MaxN, s.limits.MaxN), nil)
			}
			if p := s.idProblem(id); p != "" {
				return nil, errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("%s[%d] %s", name, len(out), p), map[string]any{"index": len(out), "item_id": id})
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// boolValue reads a query parameter that is true or false (false when
// absent).
func boolValue(q url.Values, name string) (bool, error) {
	switch v := q.Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("%s must be true or false, got %q", name, v), nil)
	}
}

// rankBodyBytes bounds a rank body by what limits.max_n ids of
// limits.max_id_bytes need (quotes, a comma and a little room for white
// space and escapes each), within limits.max_body_bytes. Rank requests are
// reads, not held to limits.max_in_flight_writes, so this is what keeps
// the memory of max_in_flight of them small.
func (s *Server) rankBodyBytes() int64 {
	return min(s.limits.MaxBodyBytes, int64(s.limits.MaxN)*int64(s.limits.MaxIDBytes+8)+1024)
}

// rankBody is the body of POST /v1/users/{id}/rank.
type rankBody struct {
	Items []string `json:"items"`
}

// parseRank decodes and checks a rank body: 1 to limits.max_n distinct
// valid ids.
func (s *Server) parseRank(b []byte) ([]string, error) {
	var body rankBody
	if err := decodeBytes(b, &body, `a JSON object {"items": [item ids]}`); err != nil {
		return nil, err
	}
	bad := func(msg string, details any) error {
		return errorf(http.StatusBadRequest, "invalid_items", msg, details)
	}
	switch n := len(body.Items); {
	case n == 0:
		return nil, bad(fmt.Sprintf("items must list 1 to %d item ids; got none", s.limits.MaxN), nil)
	case n > s.limits.MaxN:
		return nil, bad(fmt.Sprintf("items lists %d ids; at most %d allowed (limits.max_n)", n, s.limits.MaxN), map[string]int{"count": n, "limit": s.limits.MaxN})
	}
	seen := make(map[string]int, len(body.Items))
	for i, id := range body.Items {
		if p := s.idProblem(id); p != "" {
			return nil, bad(fmt.Sprintf("items[%d] %s", i, p), map[string]any{"index": i, "item_id": id})
		}
		if j, dup := seen[id]; dup {
			return nil, bad(fmt.Sprintf("items[%d] repeats items[%d] (%q); list each item once", i, j, id), map[string]any{"index": i, "first": j, "item_id": id})
		}
		seen[id] = i
	}
	return body.Items, nil
}

// rank orders the items the client sends for the user (a read, though a
// POST: the list is too long for a URL).
func (s *Server) rank(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	explain, err := boolValue(r.URL.Query(), "explain")
	if err != nil {
		return err
	}
	shown, err := s.shown(r.URL.Query())
	if err != nil {
		return err
	}
	b, err := s.readBody(w, r, s.rankBodyBytes())
	if err != nil {
		return err
	}
	items, err := s.parseRank(b)
	if err != nil {
		return err
	}
	var trace recommend.Trace
	req := recommend.RankRequest{User: id, Items: items, Explain: explain, Trace: &trace}
	now := s.now()
	h := s.personalise(&recommendation{Request: &recommend.Request{User: id}, rank: &req, asked: asked{n: true, diversity: true}}, now)
	out := s.eng.Rank(req)
	s.traced(&trace)
	if shown {
		if err := s.recordShown(w, r.Context(), h, out, now); err != nil {
			return err
		}
	}
	writeList(w, h, out)
	return nil
}

type eventJSON struct {
	EventID   string          `json:"event_id,omitempty"`
	UserID    string          `json:"user_id"`
	ItemID    string          `json:"item_id,omitempty"`
	Type      string          `json:"type"`
	Value     float64         `json:"value"`
	Weight    float32         `json:"weight"`
	Timestamp time.Time       `json:"timestamp"`
	Context   json.RawMessage `json:"context,omitempty"`
}

func (s *Server) userEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "user id")
	if err != nil {
		return err
	}
	n, err := s.intParam(r, "n", 50, s.limits.MaxN)
	if err != nil {
		return err
	}
	// Streamed one event at a time through a small buffer: a client that
	// does not read holds a few kilobytes of this process, not the reply.
	w.Header().Set("Content-Type", "application/json")
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 16<<10)
	bw.WriteString(`{"user_id":`)
	bw.Write(appendString(nil, id))
	bw.WriteString(`,"events":[`)
	first := true
	var line []byte
	err = s.store.EachUserEvent(id, n, func(e *event.Event) error {
		var err error
		line, err = json.Marshal(eventJSON{EventID: e.ID, UserID: e.User, ItemID: e.Item, Type: e.Type.String(), Value: e.Value,
			Weight: e.Weight, Timestamp: e.Time, Context: e.Context})
		if err != nil {
			return err
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		if _, err := bw.Write(line); err != nil {
			panic(http.ErrAbortHandler) // the client is gone: nothing to answer
		}
		return nil
	})
	if err != nil {
		if cw.n == 0 {
			return err // nothing sent yet: answer with the error
		}
		// Part of the reply is on its way: cut the connection so the client
		// sees a broken reply, not a short one.
		s.log.Error("user events reply failed midway", "user", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	bw.WriteString("]}\n")
	_ = bw.Flush() // the client may be gone; nothing useful to do
	return nil
}

func (s *Server) similar(w http.ResponseWriter, r *http.Request) error {
	id, err := s.pathID(r, "item id")
	if err != nil {
		return err
	}
	n, err := s.intParam(r, "n", 10, s.limits.MaxN)
	if err != nil {
		return err
	}
	by := r.URL.Query().Get("by")
	items, err := s.eng.Similar(id, n, by)
	if errors.Is(err, recommend.ErrUnknownSimilarity) {
		return errorf(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("by=%q: no source answers that similarity (behaviour, content, or leave it out for both)", by), nil)
	}
	if errors.Is(err, recommend.ErrUnknownItem) {
		return errorf(http.StatusNotFound, "not_found", fmt.Sprintf("item %q has no events and no catalogue entry", id), nil)
	}
	if err != nil {
		return err
	}
	writeItems(w, "item_id", id, items)
	return nil
}

func (s *Server) trending(w http.ResponseWriter, r *http.Request) error {
	n, err := s.intParam(r, "n", 10, s.limits.MaxN)
	if err != nil {
		return err
	}
	writeItems(w, "", "", s.eng.Trending(n, r.URL.Query().Get("category")))
	return nil
}

// countingWriter counts the bytes that reached w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
