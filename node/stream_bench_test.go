package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/internal/shared"
)

// BenchmarkStreamPush loads ml-100k, opens 1,000 recommendation streams
// for 1,000 distinct users (the data set's 943 and 57 new ones), then per
// iteration posts one view, by a random one of those users, of the first
// item on their list (consumed items are never recommended: the list must
// change), and times the acknowledgement of the POST to that user's
// stream receiving the new list. Reported: the percentiles of that time;
// the memory and goroutines an idle stream costs the server; the time for
// a hidden item to leave every list that held it (one catalogue change,
// every stream recomputed).
//
// The background trainings are off and matrix factorisation is trained
// once before the streams open: a model swap during the run would
// recompute all 1,000 lists at once, which the hide figure measures on
// its own. A user is drawn only when their stream has not been updated
// within streams.interval, the rate limit a stream keeps by design.
func BenchmarkStreamPush(b *testing.B) {
	const streams = 1000
	d, err := dataset.Load(shared.Dataset(b, "ml-100k"), nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg := defaultConfig(b)
	cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery = 0, 0
	cfg.Ranker.Enabled = false
	cfg.Limits.MaxConnections = 2 * streams // the streams and the client posting events
	n := startNode(b, cfg)
	poster := benchClient()
	benchLoad(b, n, poster, d)
	if _, err := n.Engine.TrainMF(context.Background(), nil, nil); err != nil {
		b.Fatal(err)
	}
	users := streamUsers(d, streams)
	host := strings.TrimPrefix(n.URL, "http://")

	client := benchClientCost(b, users, benchFrame(b, host, users[0]))
	// Every user asked once: what the engine keeps for a user it answered
	// is not the stream's cost.
	for _, u := range users {
		call(b, "GET", n.URL+"/v1/users/"+url.PathEscape(u)+"/recommendations?n=10", nil, nil)
	}
	before, goBefore := inUse()
	open := make([]*benchStream, len(users))
	for i, u := range users {
		open[i] = dialStream(b, host, u)
	}
	b.Cleanup(func() { closeAll(open) })
	for _, s := range open {
		s.first(b)
	}
	after, goAfter := inUse()
	both := before.perStream(after, streams)
	server := memUse{heap: both.heap - client.heap, stack: both.stack - client.stack}
	// Each client has one goroutine: the rest are the server's.
	serverGoroutines := float64(goAfter-goBefore-streams) / streams

	every := time.Duration(cfg.Streams.Interval)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat, fromSend []time.Duration
	early := 0 // updates read before the POST's reply was
	for b.Loop() {
		s := open[rng.IntN(len(open))]
		for time.Since(s.updated) < every+10*time.Millisecond {
			s = open[rng.IntN(len(open))]
		}
		item := s.items[0]
		sent := time.Now()
		benchPost(b, poster, n.URL+"/v1/events", fmt.Sprintf(`[{"user_id":%q,"item_id":%q,"type":"view"}]`, s.user, item))
		acked := time.Now()
		u := s.next(b, 5*time.Second)
		if slices.Contains(u.items, item) {
			b.Fatalf("%s's update still holds %s, which they viewed", s.user, item)
		}
		if u.at.Before(acked) {
			early++
		}
		lat = append(lat, max(u.at.Sub(acked), 0))
		fromSend = append(fromSend, u.at.Sub(sent))
	}
	b.StopTimer()
	hidden, holders, fanout := benchHide(b, n, open)

	q := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.5), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(lat, 1), "max-ms")
	b.ReportMetric(q(fromSend, 0.99), "send-p99-ms")
	b.ReportMetric(float64(early), "before-ack")
	b.ReportMetric(float64(server.heap+server.stack), "server-B/stream")
	b.ReportMetric(float64(client.heap+client.stack), "client-B/stream")
	b.ReportMetric(serverGoroutines, "server-goroutines/stream")
	b.ReportMetric(float64(fanout.Microseconds())/1000, "hide-fanout-ms")
	b.Logf("%d streams; an idle stream costs the server %d B of heap in use and %d B of stacks, %.1f goroutines (the clients' share, %d B + %d B, measured apart and taken off); hiding %s updated the %d lists holding it in %s",
		streams, server.heap, server.stack, serverGoroutines, client.heap, client.stack, hidden, holders, fanout.Round(time.Millisecond))
}

// benchLoad puts the data set's catalogue and events on the node.
func benchLoad(b *testing.B, n *testNode, client *http.Client, d *dataset.Data) {
	b.Helper()
	if len(d.Items) > 0 {
		body, _ := json.Marshal(d.Items)
		benchDo(b, client, "PUT", n.URL+"/v1/items", body)
	}
	for i := 0; i < len(d.Events); i += 5000 {
		body, _ := json.Marshal(d.Events[i:min(i+5000, len(d.Events))])
		benchDo(b, client, "POST", n.URL+"/v1/events", body)
	}
}

func benchPost(b *testing.B, client *http.Client, url, body string) {
	benchDo(b, client, "POST", url, []byte(body))
}

// benchDo sends a request whose reply must be 200.
func benchDo(b *testing.B, client *http.Client, method, url string, body []byte) {
	b.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: status %d", method, url, resp.StatusCode)
	}
}

// streamUsers is the data set's users, in order of appearance, made up to
// n with new ones.
func streamUsers(d *dataset.Data, n int) []string {
	seen := map[string]bool{}
	var users []string
	for _, e := range d.Events {
		if !seen[e.UserID] && len(users) < n {
			seen[e.UserID] = true
			users = append(users, e.UserID)
		}
	}
	for i := 0; len(users) < n; i++ {
		users = append(users, fmt.Sprintf("new-%d", i))
	}
	return users
}

// benchHide hides the item most lists hold and times until every stream
// holding it has a list without it.
func benchHide(b *testing.B, n *testNode, open []*benchStream) (string, int, time.Duration) {
	b.Helper()
	count := map[string]int{}
	for _, s := range open {
		for _, it := range s.items {
			count[it]++
		}
	}
	var item string
	for it, c := range count {
		if c > count[item] || c == count[item] && it < item {
			item = it
		}
	}
	var holders []*benchStream
	for _, s := range open {
		if slices.Contains(s.items, item) {
			holders = append(holders, s)
		}
	}
	if code := call(b, "PUT", n.URL+"/v1/items/"+url.PathEscape(item), `{"hidden":true}`, nil); code != http.StatusOK {
		b.Fatalf("hide %s: %d", item, code)
	}
	start := time.Now()
	var last time.Duration
	for _, s := range holders {
		for slices.Contains(s.items, item) {
			u := s.next(b, 30*time.Second)
			last = max(last, u.at.Sub(start))
		}
	}
	return item, len(holders), last
}

// inUse is the heap in use and the stacks, after a collection, and the
// goroutines.
func inUse() (memUse, int) {
	for range 6 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memUse{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse)}, runtime.NumGoroutine()
}

// memUse is the heap in use and the stacks.
type memUse struct{ heap, stack int64 }

// perStream is the growth from m to after, per stream.
func (m memUse) perStream(after memUse, streams int) memUse {
	return memUse{heap: (after.heap - m.heap) / int64(streams), stack: (after.stack - m.stack) / int64(streams)}
}

// benchFrame is one stream's first event as it came on the wire (for the
// client's share of the memory).
func benchFrame(b *testing.B, host, user string) string {
	s := dialStream(b, host, user)
	defer s.close()
	u := s.first(b)
	return "id: " + u.id + "\nevent: recommendations\ndata: " + u.data + "\n\n"
}

// benchClientCost measures what the benchmark's clients cost this process
// per stream: as many of them, reading the same first event from a bare
// listener that keeps their connections and runs nothing for them.
func benchClientCost(b *testing.B, users []string, frame string) memUse {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	reply := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n", len(frame), frame)
	conns := make(chan []net.Conn, 1)
	go func() {
		var held []net.Conn
		for range users {
			c, err := l.Accept()
			if err != nil {
				break
			}
			br := bufio.NewReader(c)
			http.ReadRequest(br)
			io.WriteString(c, reply)
			held = append(held, c)
		}
		conns <- held
	}()
	before, _ := inUse()
	open := make([]*benchStream, len(users))
	for i, u := range users {
		open[i] = dialStream(b, l.Addr().String(), u)
	}
	for _, s := range open {
		s.first(b)
	}
	held := <-conns
	after, _ := inUse()
	closeAll(open)
	for _, c := range held {
		c.Close()
	}
	// The bare listener's share (its accepted connections) is in the
	// figure: it is counted as the client's, so the server's is, if
	// anything, understated by a few hundred bytes a stream.
	return before.perStream(after, len(users))
}

// benchStream is one stream, read by one goroutine over a raw connection:
// the lightest client, so that most of the cores and the memory measured
// are the server's.
type benchStream struct {
	user    string
	conn    net.Conn
	updates chan benchUpdate // closed at the end of the stream
	// items and updated are the last list read, by the benchmark's
	// goroutine.
	items   []string
	updated time.Time
}

// benchUpdate is one list a stream received.
type benchUpdate struct {
	at       time.Time
	id, data string
	items    []string
}

func dialStream(b *testing.B, host, user string) *benchStream {
	b.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	s := &benchStream{user: user, conn: conn, updates: make(chan benchUpdate, 16)}
	req := "GET /v1/users/" + url.PathEscape(user) + "/recommendations/stream?n=10 HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		b.Fatal(err)
	}
	go s.read()
	return s
}

// read parses the stream into s.updates until the connection ends.
func (s *benchStream) read() {
	defer close(s.updates)
	resp, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	br := bufio.NewReader(resp.Body)
	var u benchUpdate
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch line = strings.TrimSuffix(line, "\n"); {
		case line == "" && u.id != "":
			u.at = time.Now()
			s.updates <- u // decoded by next, on the benchmark's goroutine
			u = benchUpdate{}
		case strings.HasPrefix(line, "id: "):
			u.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			u.data = line[len("data: "):]
		}
	}
}

// first waits for the stream's first list.
func (s *benchStream) first(b *testing.B) benchUpdate { return s.next(b, time.Minute) }

// next waits for the stream's next list, and keeps it as the stream's.
func (s *benchStream) next(b *testing.B, within time.Duration) benchUpdate {
	b.Helper()
	select {
	case u, ok := <-s.updates:
		if !ok {
			b.Fatalf("the stream of %s ended", s.user)
		}
		var l recReply
		if err := json.Unmarshal([]byte(u.data), &l); err != nil {
			b.Fatalf("the stream of %s sent %q: %v", s.user, u.data, err)
		}
		u.items = ids(l)
		s.items, s.updated = u.items, u.at
		return u
	case <-time.After(within):
		b.Fatalf("no update on the stream of %s within %s", s.user, within)
		return benchUpdate{}
	}
}

func (s *benchStream) close() { s.conn.Close() }

func closeAll(open []*benchStream) {
	for _, s := range open {
		if s != nil {
			s.close()
		}
	}
}
