package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Scope is what a key may do.
type Scope string

// The scopes. read: every GET; ingest: POST /v1/events; admin: catalogue
// writes (PUT and DELETE on items and users) and /metrics.
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
	// Open lists paths that need no key and are not rate limited.
	Open []string
}

// Access checks API keys and scopes and applies per-key rate limits in front
// of a handler. Keys are compared in constant time (on their SHA-256, so
// that length leaks nothing) and are never logged.
type Access struct {
	cfg    AccessConfig
	hashes [][32]byte
	scopes []map[Scope]bool
	open   map[string]bool

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by key index or client address
}

// NewAccess validates the configuration.
func NewAccess(cfg AccessConfig) (*Access, error) {
	a := &Access{cfg: cfg, open: map[string]bool{}, buckets: map[string]*rate.Limiter{}}
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
	return a, nil
}

// Enabled reports whether keys are required.
func (a *Access) Enabled() bool { return len(a.hashes) > 0 }

// scopeOf says which scope a request needs.
func scopeOf(r *http.Request) Scope {
	switch {
	case r.URL.Path == "/metrics":
		return ScopeAdmin
	case r.Method == http.MethodPost && r.URL.Path == "/v1/events":
		return ScopeIngest
	case r.Method == http.MethodPut || r.Method == http.MethodDelete || r.Method == http.MethodPost:
		return ScopeAdmin
	}
	return ScopeRead
}

// secret reads the key from "Authorization: Bearer KEY" or "X-API-Key: KEY".
func secret(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if k, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(k)
		}
	}
	return r.Header.Get("X-API-Key")
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

func (a *Access) limiter(id string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.buckets[id]
	if l == nil {
		if len(a.buckets) > 100_000 { // client addresses are unbounded: start over
			clear(a.buckets)
		}
		l = rate.NewLimiter(rate.Limit(a.cfg.Rate), a.cfg.Burst)
		a.buckets[id] = l
	}
	return l
}

// Wrap puts the checks in front of h.
func (a *Access) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.open[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		id := "addr:" + clientAddr(r)
		if a.Enabled() {
			s := secret(r)
			if s == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="streamrec"`)
				writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "an API key is required: send Authorization: Bearer KEY or X-API-Key: KEY", nil))
				return
			}
			k := a.lookup(s)
			if k < 0 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="streamrec", error="invalid_token"`)
				writeError(w, errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid", nil))
				return
			}
			if need := scopeOf(r); !a.scopes[k][need] {
				writeError(w, errorf(http.StatusForbidden, "forbidden", fmt.Sprintf("the API key lacks the %q scope this request needs", need), nil))
				return
			}
			id = "key:" + strconv.Itoa(k)
		}
		if a.cfg.Rate > 0 {
			res := a.limiter(id).Reserve()
			if d := res.Delay(); d > 0 {
				res.Cancel()
				retry := int(math.Ceil(d.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(max(retry, 1)))
				writeError(w, errorf(http.StatusTooManyRequests, "rate_limited",
					fmt.Sprintf("more than %g requests per second; retry in %s", a.cfg.Rate, d.Round(time.Millisecond)), nil))
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
