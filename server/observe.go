package server

import (
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/streamrec/streamrec/metrics"
)

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	headed time.Time // when the status was written
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status, r.headed = code, time.Now()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status, r.headed = http.StatusOK, time.Now()
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes) through the recorder.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Observe counts and times every request in front of h, whatever answers it
// (the access checks and limits included), by the route routeOf names. It
// logs one line per request at debug level, and every refusal (401, 403,
// 429, 503) at info level, at most one line a second, without the key.
func Observe(m *metrics.Metrics, log *slog.Logger, routeOf func(*http.Request) string, h http.Handler) http.Handler {
	refusals := &rate.Sometimes{Interval: time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		d := time.Since(start)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := matched(r.Pattern)
		if route == "" {
			route = routeOf(r) // refused before any mux matched it, or unmatched
		}
		if IsStream(r) && !rec.headed.IsZero() {
			d = rec.headed.Sub(start) // a stream's latency is its start, not its life
		}
		m.HTTP(route, r.Method, rec.status, d)
		switch rec.status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable:
			refusals.Do(func() {
				log.Info("request refused (further refusals within a second are counted in streamrec_http_requests_total, not logged)",
					"method", r.Method, "route", route, "status", rec.status, "remote", r.RemoteAddr)
			})
			return
		}
		if log.Enabled(r.Context(), slog.LevelDebug) {
			log.Debug("request", "method", r.Method, "route", route, "status", rec.status, "seconds", d.Seconds(), "remote", r.RemoteAddr)
		}
	})
}

// matched is the route of a pattern a ServeMux matched (it leaves it in
// Request.Pattern, the innermost mux last): the pattern without its method,
// or "" for none or the catch-all "/".
func matched(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	if pattern == "/" {
		return ""
	}
	return pattern
}

// RouteOf names the route of r on mux for metrics: the pattern without its
// method ("/v1/users/{id}/recommendations"), or "unmatched".
func RouteOf(mux *http.ServeMux, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if p := matched(pattern); p != "" {
		return p
	}
	return "unmatched"
}

// Concurrency bounds the requests answered at once: in front of the API, requests beyond these are
// answered 503 at once instead of queueing without bound.
type Concurrency struct {
	// MaxInFlight bounds requests being answered at once; MaxInFlightWrites
	// the writes (POST, PUT) among them, whose decoding holds the most
	// memory and which wait on the disk. A POST that only reads (a rank
	// request: its body bounded by limits.max_body_bytes like any, its
	// work by limits.max_n ids) counts as a read.
	MaxInFlight       int
	MaxInFlightWrites int
	// Open lists paths that are never refused (health checks).
	Open []string
}

// IsStream reports whether r opens a stream of recommendations: a
// connection held open for as long as the client wants, bounded by
// limits.max_streams in its handler rather than by the in-flight limits,
// whose slots it would otherwise hold for good.
func IsStream(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/users/") && strings.HasSuffix(r.URL.Path, "/recommendations/stream")
}

// Limit applies c in front of h.
func Limit(c Concurrency, h http.Handler) http.Handler {
	all := make(chan struct{}, c.MaxInFlight)
	writes := make(chan struct{}, c.MaxInFlightWrites)
	read := readRoutes()
	open := map[string]bool{}
	for _, p := range c.Open {
		open[p] = true
	}
	overloaded := func(w http.ResponseWriter, what string, n int) {
		w.Header().Set("Retry-After", "1")
		writeError(w, errorf(http.StatusServiceUnavailable, "overloaded",
			"the server is answering "+what+" ("+strconv.Itoa(n)+"), its limit; retry shortly", nil))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open[r.URL.Path] || IsStream(r) {
			h.ServeHTTP(w, r)
			return
		}
		if !acquire(all) {
			overloaded(w, "as many requests as limits.max_in_flight allows", c.MaxInFlight)
			return
		}
		defer func() { <-all }()
		if r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodPost && !read(r) {
			if !acquire(writes) {
				overloaded(w, "as many requests with a body as limits.max_in_flight_writes allows", c.MaxInFlightWrites)
				return
			}
			defer func() { <-writes }()
		}
		h.ServeHTTP(w, r)
	})
}

// acquire takes a slot of the semaphore sem if one is free now.
func acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// Canonical answers a path with empty, "." or ".." segments with the JSON
// error shape, instead of the redirect (HTML) that http.ServeMux would send.
func Canonical(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "" || p[0] != '/' {
			writeError(w, errorf(http.StatusBadRequest, "invalid_path", "the path must start with /", nil))
			return
		}
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if clean != p {
			msg := "the path " + strconv.Quote(p) + " has an empty, \".\" or \"..\" segment"
			if strings.Contains(p, "//") {
				msg += " (an empty id?)"
			}
			writeError(w, errorf(http.StatusBadRequest, "invalid_path", msg, nil))
			return
		}
		h.ServeHTTP(w, r)
	})
}
