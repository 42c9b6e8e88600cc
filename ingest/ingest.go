// Package ingest is the single writer of the event log. Requests from any
// number of goroutines are queued; the writer takes everything queued,
// drops duplicates, appends it to the store in one synced batch (group
// commit: concurrent requests share one fsync), applies it to the models in
// log order, and only then answers each request.
//
// Invariant: a record is acknowledged only after it is durable and applied,
// and models see records in exactly the order of the log, live and on replay.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/metrics"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/store"
)

// ErrClosed is returned once the writer stopped.
var ErrClosed = errors.New("ingest: writer closed")

// ErrBroken is returned after a write to the store failed (or, in remote
// mode, following the remote log did): nothing more is accepted until a
// restart (what was acknowledged before stays durable).
var ErrBroken = errors.New("ingest: the log cannot be written; restart required")

// ErrUnavailable is returned (wrapped, with the cause) for a write that
// could not become durable within Config.Durable — a full or stalled disk —
// or that was refused because the writer is stalled so. It was not
// acknowledged; the error says whether it may still be stored.
var ErrUnavailable = errors.New("storage unavailable")

// Result is the outcome of one submission.
type Result struct {
	// Duplicate[i] is true when recs[i] repeated an event already in the log
	// (it was not stored again).
	Duplicate []bool
	Stored    int
	FirstSeq  uint64 // sequence number of the first stored record
	// Last is the sequence number a read must see for these records to be
	// reflected (a consistency token: the last of them in the log, or, when
	// all were duplicates, what was applied when they were refused).
	Last uint64
}

// Request states: queued, taken by the writer, abandoned by its caller
// (who gave up waiting; the writer then skips it).
const (
	queued int32 = iota
	taken
	abandoned
)

type request struct {
	recs  []event.Record
	res   Result
	err   error
	done  chan struct{}
	state atomic.Int32
}

// Writer is the log's single writer.
type Writer struct {
	store    *store.Store
	eng      *recommend.Engine
	dedup    *pipeline.Dedup
	log      *slog.Logger
	cfg      Config
	lastSnap uint64 // sequence number of the latest snapshot written or loaded
	// dedupRestored: the window came with the snapshot, so the replay
	// starts after it.
	dedupRestored bool

	queue chan *request
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error

	commitSince atomic.Int64 // unix nanoseconds when the running store write began; 0: none
	stallLog    rate.Sometimes

	// applied is the sequence number the engine reflects; appliedCh is
	// closed (and replaced) each time it grows, for WaitApplied.
	applied   atomic.Uint64
	appliedCh atomic.Pointer[chan struct{}]

	// Remote mode (Config.Remote): the follower applies the log; dups
	// remembers the sequence numbers it found duplicate, for Submit.
	stopFollow context.CancelFunc
	dups       []atomic.Uint64
	// appending counts appends to the remote log in flight; stalledSince
	// is when one last outlived timeouts.durable (0: none since the last
	// that went through).
	appending    atomic.Int64
	stalledSince atomic.Int64
}

// Remote is a log kept elsewhere (a Kafka topic, package cluster) that
// several replicas append to and each applies whole, in its order.
type Remote interface {
	// Append stores recs durably and returns each one's sequence number.
	Append(ctx context.Context, recs []event.Record) ([]uint64, error)
	// End is the sequence number of the last record, asked now.
	End(ctx context.Context) (uint64, error)
	// Start is the sequence number of the first record it still holds
	// (1 while it holds its whole history).
	Start(ctx context.Context) (uint64, error)
	// Seen is End as last seen, without asking.
	Seen() uint64
	// RecordAt is the record of sequence number seq.
	RecordAt(ctx context.Context, seq uint64) (event.Record, error)
	// Tail calls fn with the records from sequence number from on, in
	// order, until ctx ends or fn fails.
	Tail(ctx context.Context, from uint64, fn func(first uint64, recs []event.Record) error) error
}

// dupRing is how many recent sequence numbers remote mode remembers as
// duplicates (a request is answered long before that many more records).
const dupRing = 1 << 18

// Config configures the writer.
type Config struct {
	// MaxBatch bounds how many records one group commit holds.
	MaxBatch int
	// DedupIDs is how many event ids the dedup window remembers: a restart
	// from a snapshot replays at least that many records into it.
	DedupIDs int
	// SnapshotEvery writes a model snapshot after this many new records
	// (0: only at shutdown).
	SnapshotEvery uint64
	// Metrics, when set, records commits, applies and snapshots.
	Metrics *metrics.Metrics
	// Progress, when set, is told how far the rebuild at start got.
	Progress func(done, total uint64)
	// Applied, when set, is told of every group of records the writer
	// applied, before their writers are answered (the push hub: it must
	// not block). It must not keep recs.
	Applied func(recs []event.Record)
	// Remote, when set, is the log (cluster mode): Submit appends there and
	// waits until this replica has applied the records; a follower applies
	// the remote log in order, de-duplicating as it goes (in log order, so
	// every replica agrees), and keeps a copy in the local store (sequence
	// numbers equal), which the start replays before following the rest.
	Remote Remote
	// Durable bounds how long Submit waits for its records to become
	// durable (default 10 s); past it, or while a store write has taken
	// longer than that, Submit returns ErrUnavailable.
	Durable time.Duration
}

// New restores the models from the latest snapshot, if one fits the
// configuration, replays the log after it (and enough of the log before it
// to rebuild the dedup window), and starts the writer. newEngine makes an
// empty engine.
func New(ctx context.Context, st *store.Store, newEngine func() *recommend.Engine, dedup *pipeline.Dedup, log *slog.Logger, cfg Config) (*Writer, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20000
	}
	if cfg.Durable <= 0 {
		cfg.Durable = 10 * time.Second
	}
	w := &Writer{store: st, dedup: dedup, log: log, cfg: cfg,
		queue: make(chan *request, 1024), stop: make(chan struct{}),
		stallLog: rate.Sometimes{Interval: 10 * time.Second}}
	first := make(chan struct{})
	w.appliedCh.Store(&first)
	w.eng = w.restore(newEngine)
	if err := w.replay(ctx); err != nil {
		return nil, err
	}
	w.setApplied(w.eng.Applied())
	if cfg.Remote != nil {
		if err := w.startFollowing(ctx); err != nil {
			return nil, err
		}
		return w, nil
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// setApplied records that the engine reflects the log up to seq and wakes
// WaitApplied.
func (w *Writer) setApplied(seq uint64) {
	w.applied.Store(seq)
	next := make(chan struct{})
	old := w.appliedCh.Swap(&next)
	close(*old)
}

// Applied is the sequence number the engine reflects.
func (w *Writer) Applied() uint64 { return w.applied.Load() }

// WaitApplied returns once the engine reflects the log up to seq (a
// consistency token), or ctx's error.
func (w *Writer) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		ch := *w.appliedCh.Load()
		if w.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Lag is how many records of the log this replica has not applied yet (0
// for a local log).
func (w *Writer) Lag() uint64 {
	if w.cfg.Remote == nil {
		return 0
	}
	if end, applied := w.cfg.Remote.Seen(), w.applied.Load(); end > applied {
		return end - applied
	}
	return 0
}

// Engine is the engine the writer applies to.
func (w *Writer) Engine() *recommend.Engine { return w.eng }

// restore loads the latest snapshot into a new engine, or returns an empty
// one when there is none or it cannot be used.
func (w *Writer) restore(newEngine func() *recommend.Engine) *recommend.Engine {
	f, size, seq, ok, err := w.store.LatestSnapshot()
	if err != nil {
		w.log.Warn("cannot open the model snapshot; replaying the whole log", "err", err)
		return newEngine()
	}
	if !ok {
		return newEngine()
	}
	defer f.Close()
	if seq > w.store.LastSeq() {
		w.log.Warn("the model snapshot is ahead of the log; replaying the whole log", "snapshot_seq", seq, "last_seq", w.store.LastSeq())
		return newEngine()
	}
	start := time.Now()
	eng := newEngine()
	if err := eng.ReadSnapshot(f, size); err != nil {
		w.log.Warn("cannot use the model snapshot; replaying the whole log", "err", err)
		return newEngine()
	}
	if eng.Applied() != seq {
		w.log.Warn("the model snapshot's name and content disagree; replaying the whole log", "name_seq", seq, "content_seq", eng.Applied())
		return newEngine()
	}
	w.lastSnap = seq
	w.log.Info("models restored from snapshot", "seq", seq, "bytes", size, "seconds", time.Since(start).Seconds())
	w.restoreDedup(seq)
	return eng
}

// restoreDedup loads the de-duplication window saved with the snapshot of
// seq, so that the replay need not start before the snapshot to rebuild it.
func (w *Writer) restoreDedup(seq uint64) {
	f, err := w.store.SnapshotSide(seq)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			w.log.Warn("cannot open the saved de-duplication window; rebuilding it from the log", "err", err)
		}
		return
	}
	defer f.Close()
	d, err := pipeline.DecodeDedup(f, w.dedup.Config())
	if err != nil {
		w.log.Warn("cannot use the saved de-duplication window; rebuilding it from the log", "err", err)
		return
	}
	w.dedup, w.dedupRestored = d, true
}

func (w *Writer) replay(ctx context.Context) error {
	last := w.store.LastSeq()
	applied := w.eng.Applied()
	if last == 0 {
		return nil
	}
	// Without a saved window, the dedup window needs the last DedupIDs
	// records, even those the snapshot already holds.
	from := applied + 1
	if w.dedupRestored {
		// The window came with the snapshot.
	} else if n := uint64(max(w.cfg.DedupIDs, 0)); last > n && last-n+1 < from {
		from = last - n + 1
	} else if last <= n {
		from = 1
	}
	total := last - from + 1 // records to read: progress counts every one
	start := time.Now()
	w.log.Info("rebuilding models from the log", "records_to_apply", last-applied, "records_to_read", total, "from_seq", from)
	batch := make([]event.Record, 0, 4096)
	lastReport := start
	var done uint64
	report := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.cfg.Progress != nil {
			w.cfg.Progress(done, total)
		}
		if time.Since(lastReport) > 2*time.Second {
			lastReport = time.Now()
			w.log.Info("rebuild progress", "records", done, "of", total,
				"percent", fmt.Sprintf("%.1f", 100*float64(done)/float64(total)))
		}
		return nil
	}
	if w.cfg.Progress != nil {
		w.cfg.Progress(0, total)
	}
	err := w.store.Replay(from, func(seq uint64, r event.Record) error {
		done++
		if r.Kind == event.KindEvent {
			w.dedup.Duplicate(&r.Event) // rebuilds the window; the log holds no duplicates
		}
		if seq <= applied {
			if done%4096 == 0 {
				return report()
			}
			return nil
		}
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			w.eng.Apply(batch)
			batch = batch[:0]
			return report()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: rebuild: %w", err)
	}
	w.eng.Apply(batch)
	w.eng.Compact()
	if got := w.eng.Applied(); got != last {
		return fmt.Errorf("ingest: rebuild: applied %d records, the log holds %d", got, last)
	}
	w.log.Info("models rebuilt", "records", last, "seconds", time.Since(start).Seconds())
	return nil
}

// snapshot writes a model snapshot; a failure is logged, not fatal (the log
// is the source of truth).
func (w *Writer) snapshot() {
	start := time.Now()
	seq, err := w.store.SaveSnapshot(w.eng.WriteSnapshot, w.dedup.Encode)
	if err != nil {
		w.log.Error("model snapshot failed", "err", err)
		return
	}
	w.cfg.Metrics.Snapshot(time.Since(start))
	w.lastSnap = seq
	w.log.Info("model snapshot written", "seq", seq, "seconds", time.Since(start).Seconds())
}

// Submit stores and applies recs, returning when they are durable and
// applied. Events already in the log (same event_id, or the same
// user/item/type within the dedup window) are not stored again and are
// reported in Result.Duplicate. A submission that cannot become durable
// within Config.Durable returns ErrUnavailable (never "stored" for
// something that is not).
func (w *Writer) Submit(ctx context.Context, recs []event.Record) (Result, error) {
	if w.cfg.Remote != nil {
		return w.submitRemote(ctx, recs)
	}
	if err := w.Health(); err != nil {
		w.cfg.Metrics.StorageError(cause(err))
		w.logUnavailable(err)
		return Result{}, err
	}
	req := &request{recs: recs, done: make(chan struct{})}
	timer := time.NewTimer(w.cfg.Durable)
	defer timer.Stop()
	select {
	case w.queue <- req:
	case <-w.stop:
		return Result{}, ErrClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-timer.C:
		err := fmt.Errorf("%w: the log's queue stayed full for %s%s; nothing was stored", ErrUnavailable, w.cfg.Durable, w.trouble())
		w.cfg.Metrics.StorageError("stalled")
		w.logUnavailable(err)
		return Result{}, err
	}
	// Once taken, the request is written whatever the caller does: wait for
	// it so that the answer is never "failed" for something stored — up to
	// the bound, past which the answer says the write may still land.
	select {
	case <-req.done:
		if req.err != nil {
			w.cfg.Metrics.StorageError(cause(req.err))
		}
		return req.res, req.err
	case <-timer.C:
	}
	var err error
	if req.state.CompareAndSwap(queued, abandoned) {
		err = fmt.Errorf("%w: the log took no write for %s%s; nothing was stored", ErrUnavailable, w.cfg.Durable, w.trouble())
	} else {
		err = fmt.Errorf("%w: the write did not become durable within %s%s; it was not acknowledged and may still be stored when the store recovers (a retry with the same event_id is never stored twice)", ErrUnavailable, w.cfg.Durable, w.trouble())
	}
	w.cfg.Metrics.StorageError("stalled")
	w.logUnavailable(err)
	return Result{}, err
}

// Health is nil while writes become durable in time; otherwise an
// ErrUnavailable (a store write running longer than Config.Durable) or
// ErrBroken error naming the cause. Reads are unaffected either way.
func (w *Writer) Health() error {
	if err := w.broken(); err != nil {
		return err
	}
	if since := w.stalledSince.Load(); since != 0 && w.appending.Load() > 0 {
		return fmt.Errorf("%w: the remote log has not taken a write for %s (%d in flight): its brokers are down or unreachable", ErrUnavailable, time.Since(time.Unix(0, since)).Round(time.Second)+w.cfg.Durable, w.appending.Load())
	}
	if since := w.commitSince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d > w.cfg.Durable {
			return fmt.Errorf("%w: a write to the log has not become durable for %s%s", ErrUnavailable, d.Round(time.Second), w.trouble())
		}
	}
	return nil
}

// trouble is the store's account of the cause, as a suffix.
func (w *Writer) trouble() string {
	if t := w.store.Trouble(); t != "" {
		return " (" + t + ")"
	}
	return " (the disk is slow or stalled)"
}

// logUnavailable logs a refused write at error level, once per interval.
func (w *Writer) logUnavailable(err error) {
	w.stallLog.Do(func() { w.log.Error("writes refused: the log cannot make them durable", "err", err) })
}

// cause labels err for the storage error metric.
func cause(err error) string {
	if errors.Is(err, ErrBroken) {
		return "error"
	}
	return "stalled"
}

func (w *Writer) broken() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the writer after the queued requests are written (in
// remote mode: after the follower stopped), and writes a snapshot.
func (w *Writer) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	if w.stopFollow != nil {
		w.stopFollow()
	}
	w.wg.Wait()
	if w.cfg.Remote != nil && w.broken() == nil && w.eng.Applied() > w.lastSnap {
		w.snapshot()
	}
}

func (w *Writer) run() {
	defer w.wg.Done()
	var group []*request
	var recs []event.Record
	for {
		group = group[:0]
		select {
		case r := <-w.queue:
			if r.state.CompareAndSwap(queued, taken) {
				group = append(group, r)
			}
		case <-w.stop:
			// Drain what was queued before the stop, then snapshot.
			for {
				select {
				case r := <-w.queue:
					if r.state.CompareAndSwap(queued, taken) {
						w.commit([]*request{r}, nil)
					}
				default:
					if w.broken() == nil && w.eng.Applied() > w.lastSnap {
						w.snapshot()
					}
					return
				}
			}
		}
		if len(group) == 0 {
			continue // its caller gave up waiting
		}
		n := len(group[0].recs)
	more:
		for n < w.cfg.MaxBatch {
			select {
			case r := <-w.queue:
				if r.state.CompareAndSwap(queued, taken) {
					group = append(group, r)
					n += len(r.recs)
				}
			default:
				break more
			}
		}
		recs = w.commit(group, recs[:0])
		if every := w.cfg.SnapshotEvery; every > 0 && w.eng.Applied()-w.lastSnap >= every {
			w.snapshot()
		}
	}
}

// commit writes one group and answers its requests. It returns recs for
// reuse.
func (w *Writer) commit(group []*request, recs []event.Record) []event.Record {
	if err := w.broken(); err != nil {
		for _, r := range group {
			r.err = err
			close(r.done)
		}
		return recs
	}
	for _, r := range group {
		r.res.Duplicate = make([]bool, len(r.recs))
		for i := range r.recs {
			rec := &r.recs[i]
			if rec.Kind == event.KindEvent && w.dedup.Duplicate(&rec.Event) {
				r.res.Duplicate[i] = true
				continue
			}
			recs = append(recs, *rec)
			r.res.Stored++
		}
	}
	var first uint64
	var err error
	if len(recs) > 0 {
		start := time.Now()
		w.commitSince.Store(start.UnixNano())
		first, err = w.store.Append(recs)
		w.commitSince.Store(0)
		d := time.Since(start)
		w.cfg.Metrics.Commit(len(recs), d)
		if d > w.cfg.Durable && err == nil {
			w.log.Info("writes are durable again", "stalled_for", d.Round(time.Millisecond), "records", len(recs))
		}
	}
	if err != nil {
		w.log.Error("store write failed; refusing writes until restart (everything acknowledged before is durable)", "err", err)
		w.mu.Lock()
		w.err = fmt.Errorf("%w: %v", ErrBroken, err)
		w.mu.Unlock()
		for _, r := range group {
			r.err, r.res = w.err, Result{}
			close(r.done)
		}
		return recs[:0]
	}
	start := time.Now()
	w.eng.Apply(recs)
	w.cfg.Metrics.Apply(time.Since(start))
	if w.cfg.Applied != nil {
		w.cfg.Applied(recs)
	}
	seq := first
	applied := w.eng.Applied()
	w.setApplied(applied)
	for _, r := range group {
		r.res.FirstSeq = seq
		seq += uint64(r.res.Stored)
		r.res.Last = seq - 1
		if r.res.Stored == 0 {
			r.res.Last = applied
		}
		close(r.done)
	}
	clear(recs) // drop references to the requests' strings
	return recs[:0]
}
