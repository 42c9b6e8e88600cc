package server

// GET /v1/users/{id}/recommendations/stream pushes a user's
// recommendations as Server-Sent Events: the current list at once, then a
// new one whenever it changes.
//
// One list's identity (its SSE id) is a hash of its items' ids and
// sources, in order. Scores, explanations and the recommendation id are
// left out: a list whose items stay where they are while their scores
// move is the list the client shows already, and pushing it would only
// make the page flicker. A change of an item's source (trending to
// item_knn, say) is a change: it says why the item is there.
//
// An idle stream costs its handler's goroutine (an 8 KiB stack, blocked
// in one select), its push subscription and its timer, besides what
// net/http keeps for any connection (its buffers, the goroutine that
// notices the client is gone). The buffer an update is written through is
// pooled, held only while writing.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/streamrec/streamrec/push"
	"github.com/streamrec/streamrec/recommend"
)

const (
	// streamHeartbeat is the longest a stream stays silent: a comment is
	// sent then, so that proxies keep the connection and a client that is
	// gone is found by the failed write.
	streamHeartbeat = 25 * time.Second
	// streamWriteGrace bounds one write to a stream (it replaces the
	// server's WriteTimeout, which would cut every stream at its age): a
	// client that reads nothing for this long is taken to be gone.
	streamWriteGrace = 10 * time.Second
	// streamRetryAfter is the Retry-After, in seconds, of a stream refused
	// for the limit.
	streamRetryAfter = "5"
)

// stream is GET /v1/users/{id}/recommendations/stream.
//
// The handler's goroutine lives as long as the stream, and its stack with
// it. The runtime halves an idle stack only while less than a quarter of
// it is used, and the frames of net/http and the middleware under this
// one take more than a quarter of 16 KiB: a stack that once grew past
// 8 KiB (a recommendation does) would stay at 16 KiB for good. So this
// goroutine only waits; the setup, each recommendation and each write run
// aside, on a goroutine that ends with them (BenchmarkStreamPush: 10 KiB
// of stacks per idle stream, net/http's reader included, instead of 18).
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	var es *eventStream
	var err error
	aside(func() bool { es, err = s.openStream(w, r); return true })
	if es == nil {
		return err
	}
	defer es.close()
	done := r.Context().Done()
	for aside(es.step) {
		select {
		case <-done:
			return nil
		case <-s.streamsDone:
			return nil
		case <-es.sub.C():
			es.pending = true
		case <-es.timer.C:
		}
	}
	return nil // after the headers, an error only ends the stream
}

// aside runs f on a goroutine of its own, waits for it and returns its
// result; a panic of f is raised again here, where the server recovers
// it.
func aside(f func() bool) bool {
	var ok bool
	var p any
	var stack []byte
	done := make(chan struct{})
	go func() {
		defer func() {
			if p = recover(); p != nil && p != http.ErrAbortHandler {
				stack = debug.Stack()
			}
			close(done)
		}()
		ok = f()
	}()
	<-done
	switch {
	case p == http.ErrAbortHandler:
		panic(p)
	case p != nil:
		panic(fmt.Sprintf("%v\n\n%s", p, stack))
	}
	return ok
}

// openStream checks the request and sends the stream's headers. It
// returns nil and the error to answer when the stream cannot start, or nil
// and nil when the answer is written already (a refusal, a HEAD request,
// a client gone).
func (s *Server) openStream(w http.ResponseWriter, r *http.Request) (*eventStream, error) {
	if s.hub == nil {
		return nil, errorf(http.StatusNotFound, "streams_off", "recommendation streams are off on this server", nil)
	}
	req, asked, err := s.readRecommendation(r)
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Has("shown") {
		return nil, errorf(http.StatusBadRequest, "invalid_parameter", "shown is not taken on a stream: record what was shown with POST /v1/impressions and the list's recommendation_id", nil)
	}
	if open := s.streams.Add(1); open > int64(s.maxStreams) {
		s.streams.Add(-1)
		// A refusal for load, not a failure: answered here, so that it is
		// not logged as one (Observe counts it).
		w.Header().Set("Retry-After", streamRetryAfter)
		writeError(w, errorf(http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("%d recommendation streams are open, the limit (streams.max); retry later, or poll GET /v1/users/{id}/recommendations", s.maxStreams), nil))
		return nil, nil
	}
	es := &eventStream{s: s, w: w, rc: http.NewResponseController(w), req: req, asked: asked,
		last: strings.TrimSpace(r.Header.Get("Last-Event-ID"))}
	if err := es.rc.SetWriteDeadline(time.Now().Add(streamWriteGrace)); err != nil {
		s.streams.Add(-1)
		// Without it the server's WriteTimeout would cut the stream.
		return nil, fmt.Errorf("server: stream: set write deadline: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		s.streams.Add(-1)
		return nil, nil
	}
	// Subscribed before the first list is computed: a change in between
	// is not lost.
	es.sub = s.hub.Subscribe(req.User)
	if err := es.rc.Flush(); err != nil {
		es.close() // the client is gone
		return nil, nil
	}
	return es, nil
}

// eventStream is one open stream.
type eventStream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	sub   *push.Sub
	req   recommend.Request // as parsed, before experiments apply
	asked asked
	last  string // the id of the list the client holds ("": none)

	timer     *time.Timer // wakes the stream: the interval is over, or a heartbeat is due
	pending   bool        // a change may not have been sent yet
	earliest  time.Time   // no update before this
	lastWrite time.Time
}

// close ends the subscription and frees the stream's slot.
func (es *eventStream) close() {
	if es.timer != nil {
		es.timer.Stop()
	}
	es.sub.Close()
	es.s.streams.Add(-1)
}

// step does what is due after a wake: an update when a change is pending
// and the interval since the last one is over (one at once, at the
// start), a heartbeat when the stream has been silent for
// streamHeartbeat; then it sets the timer for the next thing due. A
// signal within the interval is remembered (pending) and answered when it
// is over. It reports false when a write failed: the stream is over.
func (es *eventStream) step() bool {
	now := time.Now()
	if es.timer == nil { // the start
		es.pending, es.lastWrite = true, now
		es.timer = time.NewTimer(streamHeartbeat)
	}
	if es.pending && !now.Before(es.earliest) {
		es.pending = false
		sent, err := es.update()
		if err != nil {
			return false
		}
		if sent {
			es.earliest, es.lastWrite = now.Add(es.s.streamEvery), now
		}
	}
	if now.Sub(es.lastWrite) >= streamHeartbeat {
		if es.write([]byte(": ping\n\n")) != nil {
			return false
		}
		es.lastWrite = now
	}
	wake := es.lastWrite.Add(streamHeartbeat)
	if es.pending && es.earliest.Before(wake) {
		wake = es.earliest
	}
	es.timer.Reset(wake.Sub(now))
	return true
}

// update computes the user's list and sends it when it is not the one the
// client holds; it reports whether it sent.
func (es *eventStream) update() (bool, error) {
	h, items, id := es.s.current(es.req, es.asked)
	if id == es.last {
		return false, nil
	}
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], "id: "...)
	b = append(b, id...)
	b = append(b, "\nevent: recommendations\ndata: "...)
	at := len(b)
	b = appendList(b, h, items) // one line: JSON escapes every newline
	body := len(b)
	b = append(b, "\n\n"...)
	err := es.write(b)
	if p := es.s.publish; p != nil && err == nil {
		p.Publish(es.req.User, id, b[at:body]) // before the buffer goes back to the pool
	}
	*bp = b
	bufPool.Put(bp)
	if err != nil {
		return false, err
	}
	es.last = id
	return true, nil
}

// current is the list a stream (or a follower) of req sends now: the
// experiments applied, a fresh recommendation id, and the list's id.
func (s *Server) current(req recommend.Request, a asked) (header, []recommend.Scored, string) {
	// req is a copy: personalise overrides its fields; its slices are only read.
	h := s.personalise(&recommendation{Request: &req, asked: a}, s.now())
	var trace recommend.Trace
	req.Trace = &trace
	items := s.eng.Recommend(req)
	s.traced(&trace)
	return h, items, listID(items)
}

// CloseStreams ends every open stream: call it when the server shuts
// down (an open stream would otherwise hold the shutdown for its grace).
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.streamsDone) }) }

// SetPublisher sends every list a stream sends, and those of Follow, to p
// too.
func (s *Server) SetPublisher(p Publisher) { s.publish = p }

// Follow publishes user's list of n items whenever it changes, as a stream
// of that user would send it (at most once per streams.interval), until ctx
// ends or the server shuts down: for users whose lists are published
// without a stream open (streams.kafka.users).
func (s *Server) Follow(ctx context.Context, user string, n int) {
	if s.hub == nil || s.publish == nil {
		return
	}
	sub := s.hub.Subscribe(user)
	defer sub.Close()
	last := ""
	var b []byte
	for {
		h, items, id := s.current(recommend.Request{User: user, N: n}, asked{})
		if id != last {
			b = appendList(b[:0], h, items)
			s.publish.Publish(user, id, b)
			last = id
		}
		wait := time.NewTimer(s.streamEvery)
		select {
		case <-ctx.Done():
		case <-s.streamsDone:
		case <-wait.C: // a change within the interval stays pending in sub
		}
		wait.Stop()
		if ctx.Err() != nil || s.closed() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.streamsDone:
			return
		case <-sub.C():
		}
	}
}

func (s *Server) closed() bool {
	select {
	case <-s.streamsDone:
		return true
	default:
		return false
	}
}

// write sends b to the client at once, within streamWriteGrace.
func (es *eventStream) write(b []byte) error {
	if err := es.rc.SetWriteDeadline(time.Now().Add(streamWriteGrace)); err != nil {
		return err
	}
	if _, err := es.w.Write(b); err != nil {
		return err
	}
	return es.rc.Flush()
}

// listID is the identity of a list: 16 hex digits of the xxhash of its
// items' ids and sources, in order (ids cannot hold NUL, a control
// character, so NUL separates them unambiguously).
func listID(items []recommend.Scored) string {
	var d xxhash.Digest
	d.Reset()
	sep := []byte{0}
	for i := range items {
		d.WriteString(items[i].Item)
		d.Write(sep)
		d.WriteString(items[i].Source)
		d.Write(sep)
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], d.Sum64())
	return hex.EncodeToString(sum[:])
}
