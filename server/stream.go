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
// An idle stream costs its handler's goroutine, blocked in one select on
// the request's context, its push subscription and one timer; the buffer
// an update is written through is pooled, held only while writing.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
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
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	if s.hub == nil {
		return errorf(http.StatusNotFound, "streams_off", "recommendation streams are off on this server", nil)
	}
	req, asked, err := s.readRecommendation(r)
	if err != nil {
		return err
	}
	if open := s.streams.Add(1); open > int64(s.maxStreams) {
		s.streams.Add(-1)
		// A refusal for load, not a failure: answered here, so that it is
		// not logged as one (Observe counts it).
		w.Header().Set("Retry-After", streamRetryAfter)
		writeError(w, errorf(http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("%d recommendation streams are open, the limit (streams.max); retry later, or poll GET /v1/users/{id}/recommendations", s.maxStreams), nil))
		return nil
	}
	defer s.streams.Add(-1)
	es := &eventStream{s: s, w: w, rc: http.NewResponseController(w), req: req, asked: asked,
		last: strings.TrimSpace(r.Header.Get("Last-Event-ID"))}
	if err := es.rc.SetWriteDeadline(time.Now().Add(streamWriteGrace)); err != nil {
		// Without it the server's WriteTimeout would cut the stream.
		return fmt.Errorf("server: stream: set write deadline: %w", err)
	}
	// Subscribed before the first list is computed: a change in between
	// is not lost.
	sub := s.hub.Subscribe(req.User)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if err := es.rc.Flush(); err != nil {
		return nil // the client is gone
	}
	es.run(r.Context(), sub)
	return nil // after the headers, an error only ends the stream
}

// eventStream is one open stream.
type eventStream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	req   recommend.Request // as parsed, before experiments apply
	asked asked
	last  string // the id of the list the client holds ("": none)
}

// run sends updates until ctx is done or a write fails: one at once, then
// one after each signal of sub whose list differs from the last sent, at
// least the server's stream interval apart. A signal within the interval
// is remembered and answered when it has passed.
func (es *eventStream) run(ctx context.Context, sub *push.Sub) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	pending := true        // a change may not have been sent yet
	var earliest time.Time // no update before this
	lastWrite := time.Now()
	for {
		now := time.Now()
		if pending && !now.Before(earliest) {
			pending = false
			sent, err := es.update(now)
			if err != nil {
				return
			}
			if sent {
				earliest, lastWrite = now.Add(es.s.streamEvery), now
			}
		}
		if now.Sub(lastWrite) >= streamHeartbeat {
			if es.write([]byte(": ping\n\n")) != nil {
				return
			}
			lastWrite = now
		}
		wake := lastWrite.Add(streamHeartbeat)
		if pending && earliest.Before(wake) {
			wake = earliest
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
			pending = true
		case <-timer.C:
		}
	}
}

// update computes the user's list and sends it when it is not the one the
// client holds; it reports whether it sent.
func (es *eventStream) update(now time.Time) (bool, error) {
	req := es.req // personalise overrides fields; the slices are only read
	h := es.s.personalise(&recommendation{Request: &req, asked: es.asked}, now)
	var trace recommend.Trace
	req.Trace = &trace
	items := es.s.eng.Recommend(req)
	es.s.traced(&trace)
	id := listID(items)
	if id == es.last {
		return false, nil
	}
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], "id: "...)
	b = append(b, id...)
	b = append(b, "\nevent: recommendations\ndata: "...)
	b = appendList(b, h, items) // one line: JSON escapes every newline
	b = append(b, "\n\n"...)
	err := es.write(b)
	*bp = b
	bufPool.Put(bp)
	if err != nil {
		return false, err
	}
	es.last = id
	return true, nil
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
