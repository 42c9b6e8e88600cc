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
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
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
	// Progress, when set, is told how many requests were answered so far.
	Progress func(done int)
}

// Result is what a serve run measured. Latencies are in milliseconds.
type Result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"achieved_rate"`
	// From each request's due time (includes queueing).
	P50, P90, P99, P999, Max float64
	// From the moment the request was written (service time).
	ServiceP50, ServiceP99 float64
}

// Serve runs the open-loop recommendation load.
func Serve(ctx context.Context, cfg ServeConfig) (Result, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return Result{}, fmt.Errorf("bench: url %q: want http://host:port", cfg.URL)
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Conns <= 0 || len(cfg.Users) == 0 || cfg.N <= 0 {
		return Result{}, errors.New("bench: rate, duration, conns, n and users must all be positive")
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	lat := make([]time.Duration, total)
	svc := make([]time.Duration, total)
	failed := make([]bool, total)
	jobs := make(chan int, total)
	var done atomic.Int64
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
				req = append(req[:0], "GET /v1/users/"...)
				req = append(req, url.PathEscape(cfg.Users[i%len(cfg.Users)])...)
				req = fmt.Appendf(req, "/recommendations?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n", cfg.N, u.Host)
				sent := time.Now()
				ok := conn != nil && roundTrip(conn, br, req)
				now := time.Now()
				lat[i], svc[i], failed[i] = now.Sub(due), now.Sub(sent), !ok
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
	var ok, okSvc []time.Duration
	res := Result{Seconds: elapsed.Seconds()}
	for i := range total {
		if lat[i] == 0 && svc[i] == 0 && !failed[i] {
			continue // never sent (cancelled)
		}
		res.Requests++
		if failed[i] {
			res.Errors++
			continue
		}
		ok = append(ok, lat[i])
		okSvc = append(okSvc, svc[i])
	}
	res.Rate = float64(res.Requests) / elapsed.Seconds()
	if len(ok) == 0 {
		return res, errors.New("bench: no request succeeded")
	}
	slices.Sort(ok)
	slices.Sort(okSvc)
	q := func(s []time.Duration, p float64) float64 {
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	res.P50, res.P90, res.P99, res.P999, res.Max = q(ok, 0.5), q(ok, 0.9), q(ok, 0.99), q(ok, 0.999), q(ok, 1)
	res.ServiceP50, res.ServiceP99 = q(okSvc, 0.5), q(okSvc, 0.99)
	return res, nil
}

// roundTrip writes one request and reads its whole reply; false on any
// transport error or a non-200 status.
func roundTrip(conn net.Conn, br *bufio.Reader, req []byte) bool {
	if _, err := conn.Write(req); err != nil {
		return false
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// Table formats a result for people.
func (r Result) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d  errors %d  achieved %.0f req/s over %.1fs\n", r.Requests, r.Errors, r.Rate, r.Seconds)
	fmt.Fprintf(&b, "%-26s %8s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p90", "p99", "p99.9", "max")
	fmt.Fprintf(&b, "%-26s %8.3f %8.3f %8.3f %8.3f %8.3f\n", "from due time (open loop)", r.P50, r.P90, r.P99, r.P999, r.Max)
	fmt.Fprintf(&b, "%-26s %8.3f %8s %8.3f\n", "service time", r.ServiceP50, "", r.ServiceP99)
	return b.String()
}
