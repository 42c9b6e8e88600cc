package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Scope is what a key may do.
type Scope string

// The scopes. read: every GET, and the POSTs that only read (ranking a
// list; with shown=true, ingest as well: the answer is logged as an
// impression); ingest: POST /v1/events and POST /v1/impressions; admin:
// catalogue writes (PUT and DELETE on items and users), experiment writes
// (POST and PATCH) and /metrics.
const (
	ScopeRead   Scope = "read"
	ScopeIngest Scope = "ingest"
	ScopeAdmin  Scope = "admin"
)

// Key is an API key and its scopes.
type Key struct {
	Secret string
	Scopes []Scope
}

// AccessConfig configures Access.
type AccessConfig struct {
	Keys []Key
	// Rate is the requests per second allowed to each key (or, with no keys,
	// to each client address); 0 means unlimited. Burst is the bucket size.
	Rate  float64
	Burst int
	// FailRate and FailBurst limit requests with a missing or wrong key,
	// per client address (guessing keys); 0 means unlimited.
	FailRate  float64
	FailBurst int
	// Open lists paths that need no key and are not rate limited.
	Open []string
	// Require, when set, is the scope every request needs (the admin
	// listener: admin); otherwise the scope follows the route.
	Require Scope
}

// Access checks API keys and scopes and applies per-key rate limits in front
// of a handler. Keys are compared in constant time (on their SHA-256, so
// that length leaks nothing) and are never logged.
type Access struct {
	cfg    AccessConfig
	hashes [][32]byte
	scopes []map[Scope]bool
	open   map[string]bool
	read   func(*http.Request) bool // routes that read whatever their method

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter // by key index or client address
	failures map[string]*rate.Limiter // by client address
	shared   atomic.Pointer[SharedLimit]
}

// NewAccess validates the configuration.
func NewAccess(cfg AccessConfig) (*Access, error) {
	a := &Access{cfg: cfg, open: map[string]bool{}, read: readRoutes(), buckets: map[string]*rate.Limiter{}, failures: map[string]*rate.Limiter{}}
	for _, p := range cfg.Open {
		a.open[p] = true
	}
	for i, k := range cfg.Keys {
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("api key %d: at least 16 characters", i)
		}
		if len(k.Scopes) == 0 {
			return nil, fmt.Errorf("api key %d: no scopes (read, ingest, admin)", i)
		}
		sc := map[Scope]bool{}
		for _, s := range k.Scopes {
			switch s {
			case ScopeRead, ScopeIngest, ScopeAdmin:
				sc[s] = true
			default:
				return nil, fmt.Errorf("api key %d: unknown scope %q (read, ingest, admin)", i, s)
			}
		}
		a.hashes = append(a.hashes, sha256.Sum256([]byte(k.Secret)))
		a.scopes = append(a.scopes, sc)
	}
	if cfg.Rate < 0 || (cfg.Rate > 0 && cfg.Burst < 1) {
		return nil, fmt.Errorf("rate limit: rate must be >= 0 and burst >= 1")
	}
	if cfg.FailRate < 0 || (cfg.FailRate > 0 && cfg.FailBurst < 1) {
		return nil, fmt.Errorf("auth failure limit: rate must be >= 0 and burst >= 1")
	}
	return a, nil
}

// SharedLimit takes one request from a rate limit that every replica
// shares; ok is false when it cannot say (the replica then limits alone).
type SharedLimit func(ctx context.Context, id string, rate float64, burst int) (allowed, ok bool)

// SetShared makes the rate limits (limits.rate_per_second per key, or per
// address without keys) hold across replicas through f.
func (a *Access) SetShared(f SharedLimit) { a.shared.Store(&f) }

// Enabled reports whether keys are required.
func (a *Access) Enabled() bool { return len(a.hashes) > 0 }

// scopeOf says which scope a request needs.
func (a *Access) scopeOf(r *http.Request) Scope {
	switch {
	case r.URL.Path == "/metrics":
		return ScopeAdmin
	case r.Method == http.MethodPost && (r.URL.Path == "/v1/events" || r.URL.Path == "/v1/impressions"):
		return ScopeIngest
	case r.Method == http.MethodPost && a.read(r):
		return ScopeRead
	case r.Method == http.MethodPut || r.Method == http.MethodDelete || r.Method == http.MethodPost || r.Method == http.MethodPatch:
		return ScopeAdmin
	}
	return ScopeRead
}

// secret reads the key from "Authorization: Bearer KEY" (the scheme in any
// case, as RFC 9110 has it) or "X-API-Key: KEY".
func secret(r *http.Request) string {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		if scheme, k, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(k)
		}
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// lookup returns the index of the key, or -1. Every key is compared, in
// constant time.
func (a *Access) lookup(s string) int {
	h := sha256.Sum256([]byte(s))
	found := -1
	for i := range a.hashes {
		if subtle.ConstantTimeCompare(h[:], a.hashes[i][:]) == 1 {
			found = i
		}
	}
	return found
}

func (a *Access) limiter(buckets map[string]*rate.Limiter, id string, r float64, burst int) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := buckets[id]
	if l == nil {
		if len(buckets) > 100_000 { // client addresses are unbounded: start over
			clear(buckets)
		}
		l = rate.NewLimiter(rate.Limit(r), burst)
		buckets[id] = l
	}
	return l
}

// limited answers 429 when the bucket has no token now, and reports it.
func limited(w http.ResponseWriter, l *rate.Limiter, what string) bool {
	res := l.Reserve()
	d := res.Delay()
	if d == 0 {
		return false
	}
	res.Cancel()
	retry := int(math.Ceil(d.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(retry, 1)))
	writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("%s; retry in %s", what, d.Round(time.Millisecond)), nil))
	return true
}

// Wrap puts the checks in front of h.
func (a *Access) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.open[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		addr := clientAddr(r)
		id := "addr:" + addr
		if a.Enabled() {
			k := -1
			s := secret(r)
			if s != "" {
				k = a.lookup(s)
			}
			if k < 0 {
				// Every refused key costs the address a token: guessing is slow.
				if a.cfg.FailRate > 0 && limited(w, a.limiter(a.failures, addr, a.cfg.FailRate, a.cfg.FailBurst),
					fmt.Sprintf("too many requests with a missing or wrong API key from this address (more than %g a second)", a.cfg.FailRate)) {
					return
				}
				if s == "" {
					w.Header().Set("WWW-Authenticate", `Bearer realm="streamrec"`)
					writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "an API key is required: send Authorization: Bearer KEY or X-API-Key: KEY", nil))
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="streamrec", error="invalid_token"`)
				writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid", nil))
				return
			}
			need := a.cfg.Require
			if need == "" {
				need = a.scopeOf(r)
			}
			if !a.scopes[k][need] {
				writeError(w, errorf(http.StatusForbidden, "forbidden", fmt.Sprintf("the API key lacks the %q scope this request needs", need), nil))
				return
			}
			if need == ScopeRead && r.URL.Query().Get("shown") == "true" && !a.scopes[k][ScopeIngest] {
				// A read that logs its answer as an impression writes too.
				writeError(w, errorf(http.StatusForbidden, "forbidden", `the API key lacks the "ingest" scope that shown=true needs (it records the answer as an impression)`, nil))
				return
			}
			id = "key:" + strconv.Itoa(k)
		}
		if a.cfg.Rate > 0 {
			what := fmt.Sprintf("more than %g requests per second", a.cfg.Rate)
			if shared := a.shared.Load(); shared != nil {
				if allowed, ok := (*shared)(r.Context(), id, a.cfg.Rate, a.cfg.Burst); ok {
					if !allowed {
						w.Header().Set("Retry-After", "1")
						writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", what+" across the replicas; retry shortly", nil))
						return
					}
					h.ServeHTTP(w, r)
					return
				}
			}
			if limited(w, a.limiter(a.buckets, id, a.cfg.Rate, a.cfg.Burst), what) {
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func clientAddr(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return addr[:i]
	}
	return addr
}
