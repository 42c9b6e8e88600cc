package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/store"
)

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cf := newConfigFlags("import", stderr, true)
	cf.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: streamrec import [flags] SOURCE\n\nSOURCE is %s.\n\nFlags:\n", dataset.Formats)
		cf.fs.PrintDefaults()
	}
	var appendTo bool
	cf.fs.BoolVar(&appendTo, "append", false, "add to a data directory that already holds records")
	if err := cf.fs.Parse(args); err != nil {
		return err
	}
	if cf.fs.NArg() != 1 {
		cf.fs.Usage()
		return errors.New("import: give exactly one SOURCE")
	}
	cfg, err := cf.load(getenv)
	if err != nil {
		return err
	}
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	src := cf.fs.Arg(0)
	d, err := loadDataset(src, stderr)
	if err != nil {
		return err
	}
	st, err := store.Open(cfg.Data)
	if err != nil {
		return err
	}
	defer st.Close()
	if n := st.LastSeq(); n > 0 && !appendTo {
		return fmt.Errorf("import: %s already holds %d records; pass --append to add to them (events with an event_id already stored are skipped)", cfg.Data, n)
	}

	// The dedup window continues from what the store already holds, so a
	// repeated import stores no event twice.
	dedup := pipeline.NewDedup(cfg.DedupConfig())
	if err := st.Replay(1, func(_ uint64, r event.Record) error {
		if r.Kind == event.KindEvent {
			dedup.Duplicate(&r.Event)
		}
		return nil
	}); err != nil {
		return err
	}
	pipe := pipeline.New(cfg.PipelineConfig(table))
	total := len(d.Items) + len(d.Events)
	wbar := newBar(stderr, int64(total), "storing", false)
	const batchSize = 10000
	batch := make([]event.Record, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := st.Append(batch); err != nil {
			return err
		}
		_ = wbar.Add(len(batch))
		batch = batch[:0]
		return ctx.Err()
	}
	for _, it := range d.Items {
		batch = append(batch, event.Record{Kind: event.KindItemPut, Item: it})
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	now := time.Now()
	var rejected, duplicates int
	var firstErr error
	for i := range d.Events {
		ev, err := pipe.Process(&d.Events[i], now)
		if err != nil {
			rejected++
			if firstErr == nil {
				firstErr = fmt.Errorf("event %d: %w", i, err)
			}
			_ = wbar.Add(1)
			continue
		}
		if dedup.Duplicate(&ev) {
			duplicates++
			_ = wbar.Add(1)
			continue
		}
		batch = append(batch, event.Record{Kind: event.KindEvent, Event: ev})
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	_ = wbar.Finish()
	fmt.Fprintf(stdout, "imported %s (%s) into %s: %d items, %d events stored, %d duplicates skipped, %d rejected\n",
		src, d.Format, cfg.Data, len(d.Items), len(d.Events)-rejected-duplicates, duplicates, rejected)
	if firstErr != nil {
		fmt.Fprintf(stdout, "first rejection: %v\n", firstErr)
	}
	return nil
}

// newBar draws a progress bar on w (the terminal's stderr), with an ETA.
func newBar(w io.Writer, max int64, what string, bytes bool) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// loadDataset reads a data set with a progress bar on stderr (made once the
// size is known: the library's spinner for unknown sizes races with Finish).
func loadDataset(src string, stderr io.Writer) (*dataset.Data, error) {
	var bar *progressbar.ProgressBar
	d, err := dataset.Load(src, func(done, total int64) {
		if bar == nil {
			bar = newBar(stderr, max(total, done, 1), "reading", true)
		} else if total > bar.GetMax64() {
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
	})
	if bar != nil {
		_ = bar.Finish()
	}
	return d, err
}
