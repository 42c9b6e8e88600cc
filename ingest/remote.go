package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/store"
)

// startFollowing starts the follower of the remote log where the local
// copy ends, and waits until it has applied what the remote log held at
// the start (the catch-up a restarted or new replica does before it
// serves), reporting progress.
func (w *Writer) startFollowing(ctx context.Context) error {
	w.dups = make([]atomic.Uint64, dupRing)
	end, err := w.cfg.Remote.End(ctx)
	if err != nil {
		return fmt.Errorf("ingest: the remote log: %w", err)
	}
	local := w.store.LastSeq()
	if local > end {
		return fmt.Errorf("ingest: the local copy of the log holds %d records, the remote log %d: this data directory belongs to another log", local, end)
	}
	held, err := w.cfg.Remote.Start(ctx)
	if err != nil {
		return fmt.Errorf("ingest: the remote log: %w", err)
	}
	switch {
	case held > local+1:
		return fmt.Errorf("ingest: the remote log starts at sequence %d and the local copy ends at %d: the records between are gone (retention); start this replica with an empty data directory (with kafka.models_dir it starts from the newest shared checkpoint)", held, local)
	case local > 0 && held == local+1:
		// The record that would show both are one log is gone by
		// retention: the next ones follow on from the copy's end.
		w.log.Warn("the remote log no longer holds the local copy's last record: the copy is not checked against it", "seq", local)
	case local > 0:
		if err := w.sameLog(ctx, local); err != nil {
			return err
		}
	}
	fctx, cancel := context.WithCancel(context.Background())
	w.stopFollow = cancel
	w.wg.Add(1)
	go w.follow(fctx)
	if end > local {
		w.log.Info("catching up with the remote log", "from_seq", local+1, "to_seq", end)
	}
	start := time.Now()
	for w.applied.Load() < end {
		if err := w.broken(); err != nil {
			return err
		}
		if w.cfg.Progress != nil {
			w.cfg.Progress(w.applied.Load()-local, end-local)
		}
		// A short wait: its timeout is the next progress report.
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_ = w.WaitApplied(wctx, end)
		wcancel()
		if ctx.Err() != nil {
			cancel()
			w.wg.Wait()
			return ctx.Err()
		}
	}
	if end > local {
		d := time.Since(start)
		w.log.Info("caught up with the remote log", "records", end-local, "seconds", d.Seconds(),
			"records_per_second", float64(end-local)/max(d.Seconds(), 1e-9))
	}
	return nil
}

// sameLog checks that the local copy's record seq is the remote log's
// (a topic deleted and made again, or another cluster's, would otherwise
// be followed from the middle: a silent divergence).
func (w *Writer) sameLog(ctx context.Context, seq uint64) error {
	var mine event.Record
	stop := errors.New("stop")
	if err := w.store.Replay(seq, func(_ uint64, r event.Record) error { mine = r; return stop }); err != nil && !errors.Is(err, stop) {
		return fmt.Errorf("ingest: the local copy's record %d: %w", seq, err)
	}
	theirs, err := w.cfg.Remote.RecordAt(ctx, seq)
	if err != nil {
		return fmt.Errorf("ingest: the remote log's record %d: %w", seq, err)
	}
	if mine.Kind == event.KindSkip && theirs.Kind == event.KindEvent {
		return nil // a duplicate this replica skipped
	}
	a, errA := store.EncodeRecord(nil, &mine)
	b, errB := store.EncodeRecord(nil, &theirs)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		return fmt.Errorf("ingest: the local copy's record %d differs from the remote log's: this data directory follows another log (was the topic made again?); start this replica with an empty data directory", seq)
	}
	return nil
}

// follow applies the remote log from where the local copy ends, until ctx
// ends or the store fails.
func (w *Writer) follow(ctx context.Context) {
	defer w.wg.Done()
	err := w.cfg.Remote.Tail(ctx, w.store.LastSeq()+1, func(first uint64, recs []event.Record) error {
		if want := w.store.LastSeq() + 1; first != want {
			return fmt.Errorf("the remote log gave sequence %d, the local copy needs %d", first, want)
		}
		for i := range recs {
			if recs[i].Kind == event.KindEvent && w.dedup.Duplicate(&recs[i].Event) {
				seq := first + uint64(i)
				w.dups[seq%dupRing].Store(seq)
				recs[i] = event.Record{Kind: event.KindSkip}
			}
		}
		// The local copy is written while the models apply the same
		// records (both only read them): the records are durable in the
		// remote log already, and a crash before the copy has them reads
		// them from there again. Nothing is reported applied (tokens,
		// pushes, snapshots) before both are done.
		stored := make(chan error, 1)
		go func() {
			start := time.Now()
			w.commitSince.Store(start.UnixNano())
			got, err := w.store.Append(recs)
			w.commitSince.Store(0)
			w.cfg.Metrics.Commit(len(recs), time.Since(start))
			if err == nil && got != first {
				err = fmt.Errorf("the local copy stored sequence %d as %d", first, got)
			}
			stored <- err
		}()
		start := time.Now()
		w.eng.Apply(recs)
		w.cfg.Metrics.Apply(time.Since(start))
		if err := <-stored; err != nil {
			return err
		}
		if w.cfg.Applied != nil {
			w.cfg.Applied(recs)
		}
		w.setApplied(w.eng.Applied())
		if every := w.cfg.SnapshotEvery; every > 0 && w.eng.Applied()-w.lastSnap >= every {
			w.snapshot()
		}
		return nil
	})
	if err == nil || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return
	}
	w.log.Error("following the remote log failed; refusing writes until restart (everything acknowledged before is in the remote log)", "err", err)
	w.mu.Lock()
	w.err = fmt.Errorf("%w: following the remote log: %v", ErrBroken, err)
	w.mu.Unlock()
}

// submitRemote appends recs to the remote log and waits until this replica
// has applied them, within Config.Durable.
func (w *Writer) submitRemote(ctx context.Context, recs []event.Record) (Result, error) {
	if err := w.Health(); err != nil { // broken, or the remote log stalled: refused at once
		w.cfg.Metrics.StorageError(cause(err))
		w.logUnavailable(err)
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Durable)
	defer cancel()
	// An idempotent producer never gives up on a record it has sent, and
	// cancelling does not stop it: the append runs apart, and the request
	// stops waiting for it at the bound (the append may still land; a
	// retry with the same event_id is never applied twice).
	type appended struct {
		seqs []uint64
		err  error
	}
	done := make(chan appended, 1)
	w.appending.Add(1)
	go func() {
		defer w.appending.Add(-1)
		started := time.Now()
		seqs, err := w.cfg.Remote.Append(context.Background(), recs)
		if d := time.Since(started); d > w.cfg.Durable {
			w.log.Info("a write the remote log held past timeouts.durable was taken", "after", d.Round(time.Millisecond), "err", err)
		}
		done <- appended{seqs, err}
	}()
	var seqs []uint64
	var err error
	select {
	case a := <-done:
		seqs, err = a.seqs, a.err
	case <-ctx.Done():
		w.stalledSince.CompareAndSwap(0, time.Now().UnixNano())
		err = ctx.Err()
	}
	if err == nil {
		w.stalledSince.Store(0)
	}
	if err != nil {
		w.cfg.Metrics.StorageError("stalled")
		err = fmt.Errorf("%w: the remote log did not take the records within %s (%v); they may or may not be stored (a retry with the same event_id is never applied twice)", ErrUnavailable, w.cfg.Durable, err)
		w.logUnavailable(err)
		return Result{}, err
	}
	var last uint64
	for _, s := range seqs {
		last = max(last, s)
	}
	if err := w.WaitApplied(ctx, last); err != nil {
		if berr := w.broken(); berr != nil {
			return Result{}, berr
		}
		return Result{}, fmt.Errorf("%w: the records are in the remote log (up to sequence %d) but this replica had applied only %d within %s; they will be applied, a retry with the same event_id is never applied twice", ErrUnavailable, last, w.applied.Load(), w.cfg.Durable)
	}
	res := Result{Duplicate: make([]bool, len(recs)), Last: last}
	if len(seqs) > 0 {
		res.FirstSeq = seqs[0]
	}
	for i, s := range seqs {
		if w.dups[s%dupRing].Load() == s {
			res.Duplicate[i] = true
		} else {
			res.Stored++
		}
	}
	return res, nil
}
