package recommend

import (
	"context"
	"errors"
	"io"

	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/history"
	"github.com/streamrec/streamrec/model/mf"
)

// ErrNoMF is returned for training or loading matrix factorisation on an
// engine configured without it.
var ErrNoMF = errors.New("no matrix-factorisation model is configured")

// readChunk is how many users' histories are copied per read-lock hold while
// gathering training data, so writers never wait long.
const readChunk = 4096

// MFData copies the interactions of every user into a training set, a chunk
// of users at a time under the read lock; writes go on between chunks, and
// each user's version records exactly how much of their history was copied.
func (e *Engine) MFData(ctx context.Context) (mf.Data, error) {
	var d mf.Data
	e.mu.RLock()
	users := e.users.Len()
	d.Entries = make([]als.Entry, 0, e.hist.Events())
	e.mu.RUnlock()
	d.Versions = make([]uint32, users)
	d.Starts = make([]uint32, users)
	for lo := 0; lo < users; lo += readChunk {
		if err := ctx.Err(); err != nil {
			return d, err
		}
		e.mu.RLock()
		for u := lo; u < min(lo+readChunk, users); u++ {
			h := e.hist.User(int32(u))
			for _, x := range h {
				d.Entries = append(d.Entries, als.Entry{User: int32(u), Item: x.Item, Weight: x.Weight})
			}
			start := e.hist.Start(int32(u))
			d.Versions[u] = start + uint32(len(h))
			d.Starts[u] = start
		}
		e.mu.RUnlock()
	}
	e.mu.RLock()
	d.Users, d.Items, d.Seq = users, e.items.Len(), e.applied
	e.mu.RUnlock()
	return d, nil
}

// TrainMF trains matrix factorisation on everything applied so far and
// installs it, without holding any lock while it trains; cfg nil means the
// engine's configuration. progress is told the steps done.
func (e *Engine) TrainMF(ctx context.Context, cfg *mf.Config, progress func(done, total int)) (*mf.Trained, error) {
	return e.TrainSaveMF(ctx, cfg, progress, nil)
}

// TrainSaveMF is TrainMF with save, when not nil, called with the trained
// model before it is installed (to write it to a file): a model is never
// served, and so never reported, before it is saved. An error from save
// leaves the served model as it was.
func (e *Engine) TrainSaveMF(ctx context.Context, cfg *mf.Config, progress func(done, total int), save func(*mf.Trained) error) (*mf.Trained, error) {
	if e.mf == nil {
		return nil, ErrNoMF
	}
	c := e.mf.Model().Config()
	if cfg != nil {
		c = *cfg
	}
	d, err := e.MFData(ctx)
	if err != nil {
		return nil, err
	}
	t, err := mf.Train(ctx, d, c, progress)
	if err != nil {
		return nil, err
	}
	if save != nil {
		if err := save(t); err != nil {
			return nil, err
		}
	}
	e.InstallMF(t, cfg)
	return t, nil
}

// InstallMF makes t the served model at once (under the write lock); cfg,
// when not nil, also replaces the serving configuration (fold-in steps,
// index threshold).
func (e *Engine) InstallMF(t *mf.Trained, cfg *mf.Config) {
	e.lockWrite()
	defer e.mu.Unlock()
	if e.mf == nil {
		return
	}
	if cfg != nil {
		e.mf.Replace(*cfg)
	}
	e.mf.Model().Install(t, e.users.Len(), e.userHistory)
}

// userHistory is the kept history of user and how many of their events were
// evicted before it.
func (e *Engine) userHistory(user int32) ([]history.Entry, uint32) {
	return e.hist.User(user), e.hist.Start(user)
}

// MFTrained is the installed training, nil before the first.
func (e *Engine) MFTrained() *mf.Trained {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.mf == nil {
		return nil
	}
	return e.mf.Model().Current()
}

// WriteMF saves the installed model to w under external ids; false when
// none is installed. The lock is held only to take the model and the id
// tables (the model is immutable, the tables' first entries never change),
// so writes go on while the file is written.
func (e *Engine) WriteMF(w io.Writer) (bool, error) {
	t := e.MFTrained()
	if t == nil {
		return false, nil
	}
	return true, e.WriteTrainedMF(w, t)
}

// WriteTrainedMF saves t, trained on this engine but perhaps not installed
// yet, to w under external ids, as WriteMF does.
func (e *Engine) WriteTrainedMF(w io.Writer, t *mf.Trained) error {
	e.mu.RLock()
	users, items := e.users.Names(t.Model.NumUsers()), e.items.Names(t.Model.NumItems())
	e.mu.RUnlock()
	return t.Write(w, func(u int32) string { return users[u] }, func(i int32) string { return items[i] })
}

// LoadMF reads a model saved by WriteMF (or `streamrec train`) and installs
// it; users and items the engine does not know are dropped, the others'
// vectors are refreshed by fold-in as their histories differ.
func (e *Engine) LoadMF(ctx context.Context, r io.Reader, size int64) (*mf.Trained, error) {
	if e.mf == nil {
		return nil, ErrNoMF
	}
	f, err := mf.ReadFile(r, size)
	if err != nil {
		return nil, err
	}
	e.mu.RLock()
	nu, ni := e.users.Len(), e.items.Len()
	cfg := e.mf.Model().Config()
	e.mu.RUnlock()
	// Name lookups run without the lock held for long: a dict is only
	// appended to, and ids below nu and ni never change.
	lookup := func(lookup func(string) (int32, bool)) func(string) (int32, bool) {
		return func(name string) (int32, bool) {
			e.mu.RLock()
			defer e.mu.RUnlock()
			return lookup(name)
		}
	}
	t, err := f.Trained(ctx, cfg, lookup(e.users.Lookup), lookup(e.items.Lookup), nu, ni)
	if err != nil {
		return nil, err
	}
	e.InstallMF(t, nil)
	return t, nil
}
