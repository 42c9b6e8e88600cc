package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
)

// sseEvent is one event of a stream, as a client parses it.
type sseEvent struct {
	ID, Event, Data string
	At              time.Time // when the client had read it whole
}

// streamList is the data of a recommendations event.
type streamList struct {
	UserID           string `json:"user_id"`
	RecommendationID string `json:"recommendation_id"`
	recReply
}

// sseClient reads one open stream in the background.
type sseClient struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent // closed at the end of the stream
}

// openStream opens GET /v1/users/{user}/recommendations/stream{query},
// resuming from lastID when it is not empty; the stream must answer 200.
// It is closed when the test ends, before the node stops.
func openStream(t testing.TB, n *testNode, user, query, lastID string) *sseClient {
	t.Helper()
	resp := streamRequest(t, n, user, query, lastID)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("stream of %s: status %d", user, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q", ct)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 64)}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

// streamRequest sends the stream's request and returns the response as it
// is, the body unread.
func streamRequest(t testing.TB, n *testNode, user, query, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", n.URL+"/v1/users/"+user+"/recommendations/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// A transport of its own: a stream holds its connection, and closing
	// the body closes it.
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Close ends the stream from the client's side.
func (c *sseClient) Close() { c.resp.Body.Close() }

// read parses the stream (id, event and data fields; comments skipped)
// into c.events.
func (c *sseClient) read() {
	defer close(c.events)
	br := bufio.NewReader(c.resp.Body)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data != nil || ev.ID != "" {
				ev.Data, ev.At = strings.Join(data, "\n"), time.Now()
				c.events <- ev
			}
			ev, data = sseEvent{}, nil
		case field == "": // a comment (": ping")
		case field == "id":
			ev.ID = value
		case field == "event":
			ev.Event = value
		case field == "data":
			data = append(data, value)
		}
	}
}

// next waits for the next event, at most within; ok is false if none came.
func (c *sseClient) next(within time.Duration) (sseEvent, bool) {
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-time.After(within):
		return sseEvent{}, false
	}
}

// list waits for the next event and decodes it as a list.
func (c *sseClient) list(within time.Duration) (sseEvent, streamList) {
	c.t.Helper()
	ev, ok := c.next(within)
	if !ok {
		c.t.Fatalf("no stream update within %s", within)
	}
	if ev.Event != "recommendations" || ev.ID == "" {
		c.t.Fatalf("event %q with id %q, want recommendations with an id", ev.Event, ev.ID)
	}
	var l streamList
	if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
		c.t.Fatalf("data %q is not a JSON list: %v", ev.Data, err)
	}
	return ev, l
}

// quiet fails the test if an event arrives within d.
func (c *sseClient) quiet(d time.Duration, why string) {
	c.t.Helper()
	if ev, ok := c.next(d); ok {
		c.t.Fatalf("%s, yet the stream sent %q: %s", why, ev.ID, ev.Data)
	}
}

// pairs is a list's items as "item/source", the content a stream's id
// stands for.
func pairs(r recReply) []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, it.Item+"/"+it.Source)
	}
	return out
}

// seedShop is TestReadYourWrites's shop: phone and case bought together by
// six users, socks by nine others, all three in the catalogue. A new
// user's top item is socks (trending); after a view of the phone it is
// case (item_knn).
func seedShop(t *testing.T, n *testNode) {
	t.Helper()
	for _, it := range []string{"phone", "case", "socks"} {
		if code := call(t, "PUT", n.URL+"/v1/items/"+it, `{"categories":["shop"]}`, nil); code != http.StatusOK {
			t.Fatalf("PUT item %s: %d", it, code)
		}
	}
	postShop(t, n)
}

// streamConfig is the default configuration with the given stream
// interval.
func streamConfig(t *testing.T, every time.Duration) config.Config {
	cfg := defaultConfig(t)
	cfg.Streams.Interval = config.Duration(every)
	return cfg
}

// TestStreamFirstList: the first list comes at once and holds what GET
// recommendations answers for the same parameters.
func TestStreamFirstList(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seedShop(t, n)
	for _, tc := range []struct{ user, query string }{
		{"alice", ""},                   // cold: trending
		{"u0", "?n=5"},                  // warm
		{"carol", "?n=2&exclude=socks"}, // shaped
		{"bob", "?category=shop&explain=true"},
	} {
		s := openStream(t, n, tc.user, tc.query, "")
		ev, got := s.list(time.Second)
		want := recs(t, n, tc.user, tc.query)
		if !slices.Equal(pairs(got.recReply), pairs(want)) || len(want.Items) == 0 {
			t.Errorf("%s%s: stream's first list %v, GET answers %v", tc.user, tc.query, pairs(got.recReply), pairs(want))
		}
		if got.UserID != tc.user {
			t.Errorf("%s: the list names user %q", tc.user, got.UserID)
		}
		if len(ev.ID) != 16 {
			t.Errorf("%s: id %q, want 16 hex digits", tc.user, ev.ID)
		}
		s.Close()
	}
	// The same content has the same id, whoever asks and however.
	a, b := openStream(t, n, "carol", "?n=3", ""), openStream(t, n, "dave", "?n=3&diversity=0", "")
	ea, la := a.list(time.Second)
	eb, lb := b.list(time.Second)
	if !slices.Equal(pairs(la.recReply), pairs(lb.recReply)) || ea.ID != eb.ID {
		t.Errorf("two new users' lists %v and %v have ids %q and %q: the same content must have the same id", pairs(la.recReply), pairs(lb.recReply), ea.ID, eb.ID)
	}
}

// TestStreamPushesOwnEvents: an acknowledged event of the user is on the
// stream at once, and the list reflects it; an event of another user
// does not update the stream.
func TestStreamPushesOwnEvents(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seedShop(t, n)
	s := openStream(t, n, "alice", "?n=1", "")
	first, l := s.list(time.Second)
	if got := pairs(l.recReply); !slices.Equal(got, []string{"socks/trending"}) {
		t.Fatalf("first list %v, want socks from trending", got)
	}
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	acked := time.Now()
	ev, l := s.list(2 * time.Second)
	if got := pairs(l.recReply); !slices.Equal(got, []string{"case/item_knn"}) {
		t.Fatalf("after alice viewed the phone the stream sent %v, want case from item_knn", got)
	}
	if ev.ID == first.ID {
		t.Fatalf("a new list with the old id %q", ev.ID)
	}
	// The first list was sent just now: this one waits out the interval.
	if took := ev.At.Sub(acked); took > time.Second {
		t.Fatalf("the update came %s after the acknowledgement", took)
	} else {
		t.Logf("ack → update: %s (the interval since the first list included)", took)
	}

	// Other users' events: twelve of them buy a hat, the top trending item
	// now. Alice's stream is told of her own events only.
	var batch []string
	for u := range 12 {
		batch = append(batch, fmt.Sprintf(`{"user_id":"h%d","item_id":"hat","type":"purchase"}`, u))
	}
	post(t, n, "["+strings.Join(batch, ",")+"]")
	s.quiet(300*time.Millisecond, "only other users' events were written")
	// Her next event, past the interval, is on the stream at once, with
	// the newest state (others' events included).
	post(t, n, `[{"user_id":"alice","item_id":"case","type":"view"}]`)
	acked = time.Now()
	ev, l = s.list(2 * time.Second)
	if want := ids(recs(t, n, "alice", "?n=1")); !slices.Equal(ids(l.recReply), want) || slices.Contains(want, "case") {
		t.Fatalf("after alice viewed the case the stream sent %v, GET answers %v", ids(l.recReply), want)
	}
	if took := ev.At.Sub(acked); took > 500*time.Millisecond {
		t.Fatalf("the update came %s after the acknowledgement", took)
	} else {
		t.Logf("ack → update: %s", took)
	}
}

// TestStreamCatalogueChange: hiding or deleting an item on the list
// pushes a list without it.
func TestStreamCatalogueChange(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seedShop(t, n)
	s := openStream(t, n, "alice", "?n=3", "")
	_, l := s.list(time.Second)
	if got := ids(l.recReply); !slices.Contains(got, "socks") || !slices.Contains(got, "phone") {
		t.Fatalf("first list %v, want socks and phone on it", got)
	}
	if code := call(t, "PUT", n.URL+"/v1/items/socks", `{"categories":["shop"],"hidden":true}`, nil); code != http.StatusOK {
		t.Fatalf("hide socks: %d", code)
	}
	_, l = s.list(2 * time.Second)
	if got := ids(l.recReply); slices.Contains(got, "socks") {
		t.Fatalf("after socks were hidden the stream sent %v", got)
	}
	if code := call(t, "DELETE", n.URL+"/v1/items/phone", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete phone: %d", code)
	}
	_, l = s.list(2 * time.Second)
	if got := ids(l.recReply); slices.Contains(got, "phone") || slices.Contains(got, "socks") {
		t.Fatalf("after phone was deleted the stream sent %v", got)
	}
	// A catalogue change that leaves alice's list as it is sends nothing.
	call(t, "PUT", n.URL+"/v1/items/lamp", `{"categories":["home"]}`, nil)
	s.quiet(400*time.Millisecond, "a new item no one used leaves the list as it is")
}

// TestStreamResume: a reconnect with the id of the current list gets
// nothing until the list changes; one with an old id gets the current list
// at once.
func TestStreamResume(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	seedShop(t, n)
	s := openStream(t, n, "alice", "?n=1", "")
	first, _ := s.list(time.Second)
	s.Close()

	again := openStream(t, n, "alice", "?n=1", first.ID)
	again.quiet(300*time.Millisecond, "the client holds the current list")
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	changed, l := again.list(2 * time.Second)
	if changed.ID == first.ID || !slices.Equal(ids(l.recReply), []string{"case"}) {
		t.Fatalf("after the change the resumed stream sent %q %v", changed.ID, ids(l.recReply))
	}
	again.Close()

	stale := openStream(t, n, "alice", "?n=1", first.ID)
	ev, l := stale.list(time.Second)
	if ev.ID != changed.ID || !slices.Equal(ids(l.recReply), []string{"case"}) {
		t.Fatalf("resumed from an old id: %q %v, want the current list %q", ev.ID, ids(l.recReply), changed.ID)
	}
	junk := openStream(t, n, "alice", "?n=1", "not-an-id")
	if ev, _ := junk.list(time.Second); ev.ID != changed.ID {
		t.Fatalf("resumed from a junk id: %q, want %q", ev.ID, changed.ID)
	}
}

// TestStreamInterval: changes faster than streams.interval are sent at
// most once per interval, and the last of them is not lost.
func TestStreamInterval(t *testing.T) {
	const every = 300 * time.Millisecond
	n := startNode(t, streamConfig(t, every))
	// Items t0…t9, each bought by its own users, t0 most: the list of a
	// new user is trending minus what she used, so each view changes it.
	var batch []string
	for i := range 10 {
		for u := range 20 - i {
			batch = append(batch, fmt.Sprintf(`{"user_id":"b%d-%d","item_id":"t%d","type":"purchase"}`, i, u, i))
		}
	}
	post(t, n, "["+strings.Join(batch, ",")+"]")
	s := openStream(t, n, "alice", "?n=3", "")
	_, l := s.list(time.Second)
	if got := ids(l.recReply); !slices.Equal(got, []string{"t0", "t1", "t2"}) {
		t.Fatalf("first list %v", got)
	}
	const views, apart = 7, 100 * time.Millisecond
	began := time.Now()
	for i := range views {
		post(t, n, fmt.Sprintf(`[{"user_id":"alice","item_id":"t%d","type":"view"}]`, i))
		time.Sleep(apart)
	}
	took := time.Since(began)
	var got []sseEvent
	var last streamList
	for {
		ev, ok := s.next(2 * every)
		if !ok {
			break
		}
		got = append(got, ev)
		json.Unmarshal([]byte(ev.Data), &last)
	}
	// One per interval, and one more for the last change: no more.
	if most := int(took/every) + 2; len(got) < 2 || len(got) > most {
		t.Fatalf("%d updates for %d changes within %s, want 2 to %d", len(got), views, took, most)
	}
	for i := 1; i < len(got); i++ {
		// The server keeps the interval; the client's clock may see two
		// updates a little closer.
		if gap := got[i].At.Sub(got[i-1].At); gap < every-50*time.Millisecond {
			t.Errorf("updates %d and %d only %s apart, interval %s", i-1, i, gap, every)
		}
	}
	if want := []string{"t7", "t8", "t9"}; !slices.Equal(ids(last.recReply), want) {
		t.Fatalf("last update %v, want %v (the last change must not be lost)", ids(last.recReply), want)
	}
	t.Logf("%d updates for %d changes", len(got), views)
}

// TestStreamBadInput: what is wrong with the request is a JSON error
// before the stream starts, as for GET recommendations.
func TestStreamBadInput(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	for _, tc := range []struct {
		user, query string
		status      int
		code        string
	}{
		{"%20", "", http.StatusBadRequest, "invalid_id"},
		{strings.Repeat("x", 300), "", http.StatusBadRequest, "invalid_id"},
		{"alice", "?n=0", http.StatusBadRequest, "invalid_parameter"},
		{"alice", "?diversity=2", http.StatusBadRequest, "invalid_parameter"},
	} {
		resp := streamRequest(t, n, tc.user, tc.query, "")
		var e errorReply
		err := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || e.Error.Code != tc.code {
			t.Errorf("%.20s%s: %d %q (%v), want %d %s", tc.user, tc.query, resp.StatusCode, e.Error.Code, err, tc.status, tc.code)
		}
	}
}

// TestStreamLimit: past streams.max a stream is refused 503 with
// Retry-After, and a slot is free again once a stream ends.
func TestStreamLimit(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Streams.Max = 2
	n := startNode(t, cfg)
	a, b := openStream(t, n, "a", "", ""), openStream(t, n, "b", "", "")
	a.list(time.Second)
	b.list(time.Second)
	resp := streamRequest(t, n, "c", "", "")
	var e errorReply
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || e.Error.Code != "too_many_streams" {
		t.Fatalf("third stream: %d Retry-After %q code %q, want 503 too_many_streams with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Code)
	}
	// Reads are not held up by the streams.
	recs(t, n, "c", "")
	a.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := streamRequest(t, n, "c", "", "")
		if resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a stream closed by its client still holds its slot: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamOutlivesWriteTimeout: a stream is not cut by timeouts.write.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Timeouts.Write = config.Duration(time.Second)
	n := startNode(t, cfg)
	seedShop(t, n)
	start := time.Now()
	s := openStream(t, n, "alice", "?n=1", "")
	s.list(time.Second)
	time.Sleep(1300 * time.Millisecond)
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	if _, l := s.list(time.Second); !slices.Equal(ids(l.recReply), []string{"case"}) {
		t.Fatalf("update after the write timeout: %v", ids(l.recReply))
	}
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	post(t, n, `[{"user_id":"alice","item_id":"case","type":"view"}]`)
	if _, l := s.list(time.Second); slices.Contains(ids(l.recReply), "case") {
		t.Fatalf("update 2.5 s in still holds the case: %v", ids(l.recReply))
	}
}

// TestStreamRecommendationIDs: with experiments on, each list sent has
// its own recommendation id, as each GET answer has.
func TestStreamRecommendationIDs(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Experiments.Enabled = true
	n := startNode(t, cfg)
	seedShop(t, n)
	s := openStream(t, n, "alice", "?n=1", "")
	_, first := s.list(time.Second)
	post(t, n, `[{"user_id":"alice","item_id":"phone","type":"view"}]`)
	_, next := s.list(2 * time.Second)
	if first.RecommendationID == "" || next.RecommendationID == "" || first.RecommendationID == next.RecommendationID {
		t.Fatalf("recommendation ids %q then %q: want one of its own on each list", first.RecommendationID, next.RecommendationID)
	}
}
