package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
)

// ModelFile is where the latest trained matrix factorisation is kept, under
// the data directory; `streamrec train` writes the same file.
func ModelFile(data string) string { return filepath.Join(data, "models", "mf.model") }

// trainer retrains matrix factorisation in the background on the schedule
// of the configuration: after TrainEveryEvents new log records (sooner
// while the log is young: at FirstTrainEvents, then each time it doubles),
// after TrainEvery when anything is new, or once ingestion has been quiet
// for Quiet after QuietEvents new records (a bulk load). A training reads
// the histories a chunk of users at a time, fits without any lock held,
// and swaps the model in at once; the model file is then written, so a
// restart serves it.
type trainer struct {
	n        *Node
	progress atomic.Pointer[[2]int] // steps done, total, of the running training
	running  atomic.Bool
	tried    uint64 // log records the served model was trained on (the schedule counts from it)
}

// loadModel installs the saved model, if there is one.
func (n *Node) loadModel(ctx context.Context) {
	path := ModelFile(n.cfg.Data)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		n.log.Warn("mf: cannot open the saved model; the next training replaces it", "path", path, "err", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		n.log.Warn("mf: cannot read the saved model", "path", path, "err", err)
		return
	}
	t, err := n.Engine.LoadMF(ctx, f, st.Size())
	if err != nil {
		n.log.Warn("mf: the saved model is unusable; the next training replaces it", "path", path, "err", err)
		return
	}
	n.log.Info("mf: saved model loaded", "trained_through_seq", t.Seq, "interactions", t.Events, "trained_at", t.At.Format(time.RFC3339))
}

// run checks the schedule every tick until ctx is done.
func (t *trainer) run(ctx context.Context, tick time.Duration) {
	cfg := t.n.cfg.MF
	if cfg.TrainEveryEvents == 0 && cfg.TrainEvery == 0 {
		t.n.log.Info("mf: background training is off (mf.train_every_events and mf.train_every are 0)")
		return
	}
	if cur := t.n.Engine.MFTrained(); cur != nil {
		// A model file made elsewhere may name more records than this log
		// holds: count from what is here.
		t.tried = min(cur.Seq, t.n.Engine.Applied())
	}
	s := schedule{leads: t.n.leads,
		next: func(tried uint64) uint64 {
			if cfg.TrainEveryEvents == 0 {
				return math.MaxUint64
			}
			return tried + countInterval(tried, cfg.FirstTrainEvents, cfg.TrainEveryEvents)
		},
		every: time.Duration(cfg.TrainEvery), quiet: time.Duration(cfg.Quiet), quietRecords: cfg.QuietEvents,
	}
	s.run(ctx, tick, t.n.Engine.Applied, t.tried, func(uint64) { t.train(ctx) })
}

// schedule says when a background training starts: once the log reaches
// next(the records of the last training), after every when anything is
// new, and once ingestion has been quiet for quiet after at least
// quietRecords new records (a bulk load). A training that began while
// records were still arriving (a fast bulk load can pass every count
// threshold before the first training starts) is followed, at the next
// quiet moment, by one on whatever came after it, however little: the end
// of a load is always trained on. Zero durations are off.
type schedule struct {
	next         func(tried uint64) uint64
	every        time.Duration
	quiet        time.Duration
	quietRecords uint64
	// leads, when set, says whether this replica trains now: while it does
	// not, nothing is counted as tried (a replica elected later trains at
	// once on what it missed).
	leads func() bool
	// prefix: the training reads the log's first records only, so a
	// training the count starts takes exactly the last threshold passed
	// (the same model whenever the tick came), not all applied by then.
	prefix bool
}

// run checks the schedule every tick until ctx is done, calling train with
// the records applied when one is due; tried is where the last training
// was (0: none).
func (s schedule) run(ctx context.Context, tick time.Duration, applied func() uint64, tried uint64, train func(records uint64)) {
	last := time.Now()
	seen, quietSince := applied(), time.Now()
	catchUp := false // the last training began during a load
	timer := time.NewTicker(tick)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		a := applied()
		if a != seen {
			seen, quietSince = a, time.Now()
		}
		if s.leads != nil && !s.leads() {
			continue
		}
		byCount := a >= s.next(tried)
		byTime := s.every > 0 && a > tried && time.Since(last) >= s.every
		quiet := s.quiet > 0 && time.Since(quietSince) >= s.quiet
		byQuiet := quiet && a > tried && (catchUp || a >= tried+s.quietRecords)
		if byCount || byTime || byQuiet {
			catchUp = s.quiet > 0 && !quiet
			records := a
			if s.prefix && !byTime && !byQuiet {
				records = lastThreshold(s.next, tried, a)
			}
			tried = records
			train(records)
			last = time.Now()
		}
	}
}

// lastThreshold is the last count threshold at or below a, following next
// from tried.
func lastThreshold(next func(uint64) uint64, tried, a uint64) uint64 {
	at := next(tried)
	for {
		n := next(at)
		if n <= at || n > a {
			return at
		}
		at = n
	}
}

// countInterval is how many new records start the next training after one
// at tried records: while the log is young, each time it doubles (from
// first records), until that reaches every.
func countInterval(tried, first, every uint64) uint64 {
	if first == 0 {
		return every
	}
	return min(every, max(first, tried))
}

// train runs one training, logging and measuring it.
func (t *trainer) train(ctx context.Context) {
	n := t.n
	if !n.leads() {
		return // in a cluster, the elected replica trains; this one loads its models
	}
	n.trainMu.Lock()
	defer n.trainMu.Unlock()
	t.running.Store(true)
	defer t.running.Store(false)
	start := time.Now()
	n.log.Info("mf: training started", "records", n.Engine.Applied())
	lastLog := start
	loggedLast := false
	// The model is written to its file before it is installed: once
	// /healthz or the metrics report it, a crash cannot lose it.
	tr, err := n.Engine.TrainSaveMF(ctx, nil, func(done, total int) {
		t.progress.Store(&[2]int{done, total})
		if done == total && loggedLast {
			return // the last step is reported once
		}
		if time.Since(lastLog) >= 5*time.Second || done == total {
			lastLog, loggedLast = time.Now(), done == total
			el := time.Since(start)
			eta := time.Duration(float64(el) / float64(done) * float64(total-done))
			n.log.Info("mf: training", "step", done, "of", total, "elapsed", el.Round(time.Millisecond), "eta", eta.Round(time.Second))
		}
	}, n.saveModel)
	switch {
	case errors.Is(err, als.ErrNothing):
		n.log.Info("mf: nothing to train on yet")
		return
	case ctx.Err() != nil:
		// Training stops within one chunk of rows of a shutdown: nothing is
		// waited for, and the model file on disk stays the last whole one.
		n.log.Info("mf: training stopped by shutdown; the saved model stays as it was", "after", time.Since(start).Round(time.Millisecond))
		return
	}
	n.Metrics.Training(time.Since(start), err)
	if err != nil {
		n.log.Error("mf: training failed; the served model stays as it was", "err", err)
		return
	}
	n.Hub.All() // every list may change with the new model
	n.publish(ModelFile(n.cfg.Data))
	n.log.Info("mf: model saved and installed", "trained_through_seq", tr.Seq, "interactions", tr.Events,
		"users", tr.Model.NumUsers(), "items", tr.Model.NumItems(), "took", tr.Took.Round(time.Millisecond), "ann", tr.Index != nil)
}

// saveModel writes a trained model to its file: a temporary file, synced,
// then renamed over the old one, so a crash leaves one whole file.
func (n *Node) saveModel(t *mf.Trained) error {
	path := ModelFile(n.cfg.Data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mf: save: %w", err)
	}
	if err := WriteModelFile(path, func(f *os.File) error { return n.Engine.WriteTrainedMF(f, t) }); err != nil {
		return fmt.Errorf("mf: save: %w", err)
	}
	return nil
}

// WriteModelFile writes path atomically with write, making its directory
// when needed.
func WriteModelFile(path string, write func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// modelAge is the seconds since the served model finished training (0 when
// there is none).
func modelAge(t *mf.Trained) float64 {
	if t == nil {
		return 0
	}
	return time.Since(t.At).Seconds()
}
