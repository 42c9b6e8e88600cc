// Package bench is streamrec's load generator: it measures a running server
// from the outside, over real connections.
//
// Serve sends recommendation requests open-loop: request i is due at
// start + i/rate whether or not earlier ones were answered, and its latency
// is measured from that due time, so a slow server's queueing is counted (no
// coordinated omission).
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServeConfig configures a serve run.
type ServeConfig struct {
	URL      string        // server base URL, http://host:port
	Rate     int           // requests per second
	Duration time.Duration // how long to send
	Conns    int           // keep-alive connections
	Users    []string      // user ids to ask for, in turn
	N        int           // n= of each request
	Key      string        // API key, when the server needs one
	// Progress, when set, is told how many requests were answered so far.
	Progress func(done int)
}

// Result is what a serve run measured.
type Result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"achieved_rate"`
	// Latency from each request's due time (includes queueing).
	Latency Summary `json:"latency"`
	// Service time: from the moment the request was written.
	Service Summary `json:"service"`
}

// serverURL parses the URL of the server to measure: plain HTTP, a host.
func serverURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("bench: url %q: want http://host:port", raw)
	}
	return u, nil
}

// Serve runs the open-loop recommendation load.
func Serve(ctx context.Context, cfg ServeConfig) (Result, error) {
	u, err := serverURL(cfg.URL)
	if err != nil {
		return Result{}, err
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Conns <= 0 || len(cfg.Users) == 0 || cfg.N <= 0 {
		return Result{}, errors.New("bench: rate, duration, conns, n and users must all be positive")
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	lat, svc := NewLatency(), NewLatency()
	var sent, errs atomic.Int64
	jobs := make(chan int, total)
	var done atomic.Int64
	auth := authHeader(cfg.Key)
	conns := make([]net.Conn, cfg.Conns)
	for i := range conns {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return Result{}, fmt.Errorf("bench: connect: %w", err)
		}
		conns[i] = c
	}
	interval := time.Second / time.Duration(cfg.Rate)
	start := time.Now()
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			br := bufio.NewReader(conn)
			var req []byte
			for i := range jobs {
				due := start.Add(time.Duration(i) * interval)
				req = appendRecRequest(req[:0], u.Host, cfg.Users[i%len(cfg.Users)], cfg.N, auth)
				at := time.Now()
				ok := conn != nil && roundTrip(conn, br, req)
				now := time.Now()
				sent.Add(1)
				if ok {
					lat.Record(now.Sub(due))
					svc.Record(now.Sub(at))
				} else {
					errs.Add(1)
				}
				if !ok { // the connection is unusable: open a new one
					if conn != nil {
						conn.Close()
					}
					conn, _ = net.Dial("tcp", u.Host)
					if conn != nil {
						br.Reset(conn)
					}
				}
				if n := done.Add(1); cfg.Progress != nil && n%1000 == 0 {
					cfg.Progress(int(n))
				}
			}
		}()
	}
	// Dispatch whatever is due, in 1 ms steps: finer sleeps cost the
	// generator more than they measure.
	for i := 0; i < total; {
		if err := ctx.Err(); err != nil {
			break
		}
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(min(d, time.Millisecond))
		}
		for due := time.Since(start); i < total && time.Duration(i)*interval <= due; i++ {
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	res := Result{
		Requests: int(sent.Load()), Errors: int(errs.Load()), Seconds: elapsed.Seconds(),
		Rate: float64(sent.Load()) / elapsed.Seconds(), Latency: lat.Summary(), Service: svc.Summary(),
	}
	if res.Requests == res.Errors {
		return res, errors.New("bench: no request succeeded")
	}
	return res, nil
}

// roundTrip writes one request and reads its whole reply; false on any
// transport error or a non-200 status.
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte) bool {
	_, status, _, err := exchange(conn, br, req)
	return err == nil && status == http.StatusOK
}

// authHeader is the request header line that carries key ("" for none).
func authHeader(key string) string {
	if key == "" {
		return ""
	}
	return "Authorization: Bearer " + key + "\r\n"
}

// appendRecRequest appends the raw GET recommendations request for user,
// auth one of authHeader's lines: what every mode of the generator sends.
func appendRecRequest(dst []byte, host, user string, n int, auth string) []byte {
	return fmt.Appendf(dst, "GET /v1/users/%s/recommendations?n=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: streamrec-bench\r\n%s\r\n",
		url.PathEscape(user), n, host, auth)
}

// Table formats a result for people.
func (r Result) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "serve: requests %d  errors %d  achieved %.0f req/s over %.1fs\n", r.Requests, r.Errors, r.Rate, r.Seconds)
	writeHeader(&b)
	writeRow(&b, "from due time (open loop)", r.Latency)
	writeRow(&b, "service time", r.Service)
	return b.String()
}

func writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "%-28s %9s %9s %9s %9s %9s\n", "latency (ms)", "p50", "p90", "p99", "p99.9", "max")
}

func writeRow(b *strings.Builder, name string, s Summary) {
	fmt.Fprintf(b, "%-28s %9.3f %9.3f %9.3f %9.3f %9.3f\n", name, s.P50, s.P90, s.P99, s.P999, s.Max)
}
