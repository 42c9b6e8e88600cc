package bench

// Saturate puts a number on "how close to the HTTP stack's own ceiling does
// the server get": the same closed-loop load (each connection sends its
// next request as soon as the previous answer is read) against a minimal
// reference server and against the server measured, in alternating rounds,
// and the ratio of their throughputs.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClosedConfig configures one closed-loop round against one server.
type ClosedConfig struct {
	URL      string        // server base URL, http://host:port
	Duration time.Duration // how long to send
	Conns    int           // keep-alive connections, one request in flight on each
	Users    []string      // user ids to ask for, in turn (the same order every round)
	N        int           // n= of each request
	Key      string        // API key, sent as "Authorization: Bearer KEY"
	// Progress, when set, is told how many requests were answered so far
	// (every 1000).
	Progress func(done int)
}

// ClosedResult is what a closed-loop round measured.
type ClosedResult struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"requests_per_second"` // answered (2xx) requests per second
	// BodyBytes is the mean size of an answer's body: the two servers of a
	// comparison should send about the same.
	BodyBytes float64 `json:"body_bytes"`
	// Latency of each answered request, from writing it to having read the
	// whole answer.
	Latency Summary `json:"latency"`
	// FirstError describes the first failed request, if any.
	FirstError string `json:"first_error,omitempty"`
}

// ClosedLoop runs one closed-loop round: cfg.Conns connections, each
// sending GET /v1/users/{id}/recommendations?n=N as soon as the previous
// answer is read, for cfg.Duration. Before the clock starts each
// connection is opened and sends one request (not counted), so a server
// that does not answer fails here, with its reason.
func ClosedLoop(ctx context.Context, cfg ClosedConfig) (ClosedResult, error) {
	u, err := serverURL(cfg.URL)
	if err != nil {
		return ClosedResult{}, err
	}
	if cfg.Duration <= 0 || cfg.Conns <= 0 || len(cfg.Users) == 0 || cfg.N <= 0 {
		return ClosedResult{}, errors.New("bench: duration, conns, n and users must all be positive")
	}
	// The requests, built once: building them is the generator's cost, the
	// same for every server, and kept out of the loop.
	auth := authHeader(cfg.Key)
	reqs := make([][]byte, len(cfg.Users))
	for i, user := range cfg.Users {
		reqs[i] = appendRecRequest(nil, u.Host, user, cfg.N, auth)
	}

	conns := make([]*closedConn, cfg.Conns)
	closeAll := func() {
		for _, c := range conns {
			if c != nil && c.conn != nil {
				c.conn.Close()
			}
		}
	}
	for i := range conns {
		c := &closedConn{host: u.Host, deadline: time.Now().Add(cfg.Duration + 15*time.Second)}
		if err := c.dial(); err != nil {
			closeAll()
			return ClosedResult{}, fmt.Errorf("bench: %s: connect: %w", cfg.URL, err)
		}
		conns[i] = c
		// The warm-up request, on each connection.
		if _, err := c.do(reqs[i%len(reqs)]); err != nil {
			closeAll()
			return ClosedResult{}, fmt.Errorf("bench: %s: %s: %w", cfg.URL, requestLine(reqs[i%len(reqs)]), err)
		}
	}

	lat := NewLatency()
	var next, done, errs, bodyBytes atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if c.conn != nil {
					c.conn.Close()
				}
			}()
			for ctx.Err() == nil {
				at := time.Now()
				if !at.Before(end) {
					return
				}
				req := reqs[int(next.Add(1)-1)%len(reqs)]
				n, err := c.do(req)
				if err == nil {
					lat.Record(time.Since(at))
					bodyBytes.Add(n)
				} else {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", requestLine(req), err))
					if c.conn == nil { // it could not reconnect: do not spin
						time.Sleep(10 * time.Millisecond)
					}
				}
				if d := done.Add(1); cfg.Progress != nil && d%1000 == 0 {
					cfg.Progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return ClosedResult{}, err
	}
	ok := done.Load() - errs.Load()
	res := ClosedResult{
		Requests: int(done.Load()), Errors: int(errs.Load()), Seconds: elapsed.Seconds(),
		Rate: float64(ok) / elapsed.Seconds(), Latency: lat.Summary(),
	}
	if ok > 0 {
		res.BodyBytes = float64(bodyBytes.Load()) / float64(ok)
	}
	if s, _ := firstErr.Load().(string); s != "" {
		res.FirstError = s
	}
	if ok == 0 {
		return res, fmt.Errorf("bench: %s: no request succeeded (%s)", cfg.URL, res.FirstError)
	}
	return res, nil
}

// closedConn is one keep-alive connection of a closed loop.
type closedConn struct {
	host     string
	deadline time.Time // of every read and write: a server that stops answering must not hang the run
	conn     net.Conn  // nil after a failed reconnect
	br       *bufio.Reader
}

func (c *closedConn) dial() error {
	conn, err := net.DialTimeout("tcp", c.host, 5*time.Second)
	if err != nil {
		c.conn = nil
		return err
	}
	c.conn = conn
	_ = conn.SetDeadline(c.deadline)
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// do sends one request and reads the whole answer; it returns the body's
// size. An answer other than 2xx is an error; so is a transport error,
// after which the connection is replaced (as it is when the server asks
// to close it).
func (c *closedConn) do(req []byte) (int64, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, fmt.Errorf("reconnect: %w", err)
		}
	}
	n, status, keep, err := exchange(c.conn, c.br, req)
	if err != nil || !keep {
		c.conn.Close()
		c.conn = nil
		_ = c.dial() // a failure shows on the next request
	}
	if err != nil {
		return 0, err
	}
	if status < 200 || status > 299 {
		return 0, fmt.Errorf("status %d", status)
	}
	return n, nil
}

// exchange writes req and reads its answer to the end of the body.
func exchange(conn net.Conn, br *bufio.Reader, req []byte) (n int64, status int, keep bool, err error) {
	if _, err := conn.Write(req); err != nil {
		return 0, 0, false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, 0, false, err
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, resp.StatusCode, false, err
	}
	return n, resp.StatusCode, !resp.Close, nil
}

// requestLine is "GET /path" of a raw request, for messages.
func requestLine(req []byte) string {
	s := string(req)
	if i := strings.Index(s, " HTTP/"); i >= 0 {
		s = s[:i]
	}
	return s
}

// SaturateConfig configures a saturation comparison.
type SaturateConfig struct {
	Reference string // the minimal server's URL
	Target    string // the measured server's URL
	// TargetName labels the measured server in tables ("streamrec" when
	// empty).
	TargetName string
	Duration   time.Duration // per round
	Rounds     int           // rounds per server; they alternate, the reference first
	Conns      int
	Users      []string
	N          int
	Key        string
	// Round, when set, is called before each round (i counts from 1 to
	// 2*Rounds) with the ClosedConfig it will run; it may set its
	// Progress. Done, when set, is called after each round.
	Round func(i int, server string, cfg *ClosedConfig)
	Done  func(r SaturateRound)
}

// SaturateRound is one round of a comparison.
type SaturateRound struct {
	Round  int    `json:"round"`  // 1, 2, ... per server
	Server string `json:"server"` // "reference" or the target's name
	ClosedResult
}

// SaturateResult is a whole comparison.
type SaturateResult struct {
	Reference string          `json:"reference_url"`
	Target    string          `json:"url"`
	Name      string          `json:"name"`
	Conns     int             `json:"conns"`
	Seconds   float64         `json:"seconds_per_round"`
	Rounds    []SaturateRound `json:"rounds"`
	// Pairs is the target's requests/s over the reference's, per pair of
	// adjacent rounds (reference i, target i).
	Pairs []float64 `json:"pair_ratios"`
	// Ratio is the median of Pairs; ReferenceRate and TargetRate are the
	// medians of each server's rounds.
	Ratio         float64 `json:"ratio"`
	ReferenceRate float64 `json:"reference_requests_per_second"`
	TargetRate    float64 `json:"requests_per_second"`
}

// Saturate runs cfg.Rounds rounds against each server, alternating
// reference, target, reference, target, ..., all with the same client,
// connections, requests and headers.
func Saturate(ctx context.Context, cfg SaturateConfig) (SaturateResult, error) {
	if cfg.Rounds <= 0 {
		return SaturateResult{}, errors.New("bench: rounds must be positive")
	}
	name := cfg.TargetName
	if name == "" {
		name = "streamrec"
	}
	res := SaturateResult{Reference: cfg.Reference, Target: cfg.Target, Name: name, Conns: cfg.Conns, Seconds: cfg.Duration.Seconds()}
	var refRates, tgtRates []float64
	for i := range 2 * cfg.Rounds {
		server, u := "reference", cfg.Reference
		if i%2 == 1 {
			server, u = name, cfg.Target
		}
		cc := ClosedConfig{URL: u, Duration: cfg.Duration, Conns: cfg.Conns, Users: cfg.Users, N: cfg.N, Key: cfg.Key}
		if cfg.Round != nil {
			cfg.Round(i+1, server, &cc)
		}
		r, err := ClosedLoop(ctx, cc)
		if err != nil {
			return res, fmt.Errorf("%s round %d: %w", server, i/2+1, err)
		}
		round := SaturateRound{Round: i/2 + 1, Server: server, ClosedResult: r}
		res.Rounds = append(res.Rounds, round)
		if i%2 == 0 {
			refRates = append(refRates, r.Rate)
		} else {
			tgtRates = append(tgtRates, r.Rate)
			res.Pairs = append(res.Pairs, r.Rate/refRates[len(refRates)-1])
		}
		if cfg.Done != nil {
			cfg.Done(round)
		}
	}
	res.Ratio, res.ReferenceRate, res.TargetRate = median(res.Pairs), median(refRates), median(tgtRates)
	return res, nil
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// SaturateHeader is the head of the per-round table.
func SaturateHeader() string {
	return fmt.Sprintf("%-5s %-10s %10s %7s %10s %9s %9s %9s %6s\n", "round", "server", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "bytes")
}

// Row is one round's line of the table.
func (r SaturateRound) Row() string {
	return fmt.Sprintf("%-5d %-10s %10d %7d %10s %9.3f %9.3f %9.3f %6.0f\n", r.Round, r.Server, r.Requests, r.Errors,
		Thousands(r.Rate), r.Latency.P50, r.Latency.P90, r.Latency.P99, r.BodyBytes)
}

// Summary is the comparison's conclusion: the ratio per pair, then the
// headline.
func (r SaturateResult) Summary() string {
	var b strings.Builder
	pairs := make([]string, len(r.Pairs))
	for i, p := range r.Pairs {
		pairs[i] = fmt.Sprintf("%.2f", p)
	}
	fmt.Fprintf(&b, "%s/reference, per pair of rounds: %s\n", r.Name, strings.Join(pairs, ", "))
	fmt.Fprintf(&b, "%s %s req/s = %.2f of the minimal server's %s (medians over %d rounds each, %d connections, closed loop)\n",
		r.Name, Thousands(r.TargetRate), r.Ratio, Thousands(r.ReferenceRate), len(r.Pairs), r.Conns)
	return b.String()
}

// Table is the whole comparison for people: every round, then Summary.
func (r SaturateResult) Table() string {
	var b strings.Builder
	b.WriteString(SaturateHeader())
	for _, rd := range r.Rounds {
		b.WriteString(rd.Row())
	}
	b.WriteString(r.Summary())
	return b.String()
}

// Thousands formats a rate rounded to a whole number, with commas
// between thousands: 74300.4 → "74,300".
func Thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ReferenceBody is the reference server's fixed answer: n items in the
// shape and about the size of GET /v1/users/{id}/recommendations.
func ReferenceBody(n int) []byte {
	b := []byte(`{"user_id":"100042","items":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"item_id":"%d","score":%s,"source":"item_knn"}`,
			100000+7919*i%90000, strconv.FormatFloat(float64(float32(0.9876543-0.0312345*float64(i))), 'g', -1, 32))
	}
	return append(b, "]}\n"...)
}

// ReferenceHandler is the minimal server: every GET (any path) gets body,
// as application/json; anything else 405. No routing, no parsing, no
// encoding: what is left is the HTTP stack's own cost.
func ReferenceHandler(body []byte) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		_, _ = w.Write(body)
	})
}
