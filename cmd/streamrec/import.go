package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"time"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/store"
)

const importUsage = `Usage: streamrec import [flags] SOURCE

Stores a data set's items and events in a data directory (the server
stopped), through the same validation and de-duplication as the API, so
"streamrec serve --data DIR" serves them at once.

An event without an event_id gets one from its place in the source
(FILE@HASH:LINE), so an interrupted import (Ctrl-C) goes on where it
stopped when run again with --append, storing no event twice.

SOURCE is %s

Flags:
`

// Test hooks: the number of records per write, and a call after each write.
var (
	importBatch      = 10_000
	importAfterWrite = func() {}
)

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cf := newConfigFlags("import", stderr, true)
	cf.fs.Usage = func() {
		fmt.Fprintf(cf.fs.Output(), importUsage, dataset.Formats)
		cf.fs.PrintDefaults()
	}
	var appendTo, quiet bool
	cf.fs.BoolVar(&appendTo, "append", false, "add to a data directory that already holds records; events it already holds (by event_id) are skipped, so this also resumes an interrupted import")
	cf.fs.BoolVar(&quiet, "quiet", false, "no progress output")
	if err := parseFlags(cf.fs, args, stdout); err != nil {
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
	// A missing or unknown source, a data directory in use or already
	// holding records: all said before the data set is read.
	if _, err := dataset.Detect(src); err != nil {
		return err
	}
	st, err := store.Open(cfg.Data)
	if err != nil {
		return fmt.Errorf("import: %w (is a server running on %s?)", err, cfg.Data)
	}
	defer st.Close()
	if n := st.LastSeq(); n > 0 && !appendTo {
		return fmt.Errorf("import: %s already holds %d records; pass --append to add to them (events with an event_id already stored are skipped)", cfg.Data, n)
	}

	// The dedup window continues from what the store already holds, and
	// every stored event_id is remembered (the window keeps only the latest
	// million), so a repeated or resumed import stores no event twice.
	dedup := pipeline.NewDedup(cfg.DedupConfig())
	seed := maphash.MakeSeed()
	var storedIDs []uint64
	if err := st.Replay(1, func(_ uint64, r event.Record) error {
		if r.Kind == event.KindEvent {
			dedup.Duplicate(&r.Event)
			if r.Event.ID != "" {
				storedIDs = append(storedIDs, maphash.String(seed, r.Event.ID))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	slices.Sort(storedIDs)
	stored := func(id string) bool {
		_, ok := slices.BinarySearch(storedIDs, maphash.String(seed, id))
		return id != "" && ok
	}

	progress := progressOut(stderr, quiet)
	d, err := loadDataset(ctx, src, progress, true)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("import interrupted while reading %s: nothing stored", src)
		}
		return err
	}
	pipe := pipeline.New(cfg.PipelineConfig(table))
	now := time.Now()
	// A source whose every event is rejected stores nothing, items included.
	if len(d.Events) > 0 {
		var firstErr error
		for i := range d.Events {
			_, err := pipe.Process(&d.Events[i], now)
			if err == nil {
				firstErr = nil
				break
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("event %d: %w", i, err)
			}
		}
		if firstErr != nil {
			return fmt.Errorf("import: all %d events of %s (%s) were rejected, nothing stored; the first: %v", len(d.Events), src, d.Format, firstErr)
		}
	}

	wbar := newBar(progress, int64(len(d.Items)+len(d.Events)), "storing", false)
	defer wbar.Stop()
	var items, events, rejected, duplicates, unchanged int
	var firstErr error
	batch := make([]event.Record, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := st.Append(batch); err != nil {
			return err
		}
		for _, r := range batch {
			if r.Kind == event.KindEvent {
				events++
			} else {
				items++
			}
		}
		wbar.Add(len(batch))
		batch = batch[:0]
		importAfterWrite()
		return nil
	}
	put := func(r event.Record) error {
		batch = append(batch, r)
		if len(batch) >= importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		return nil
	}
	interrupted := func() error {
		wbar.Stop()
		return fmt.Errorf("import interrupted: %d of %d events and %d of %d items of %s stored into %s; run the same command with --append to store the rest (what is stored is skipped)",
			events, len(d.Events), items, len(d.Items), src, cfg.Data)
	}
	for _, it := range d.Items {
		if ctx.Err() != nil {
			return interrupted()
		}
		if appendTo && sameItem(st, it) {
			unchanged++
			wbar.Add(1)
			continue
		}
		if err := put(event.Record{Kind: event.KindItemPut, Item: it}); err != nil {
			return err
		}
	}
	for i := range d.Events {
		if ctx.Err() != nil {
			return interrupted()
		}
		ev, err := pipe.Process(&d.Events[i], now)
		if err != nil {
			rejected++
			if firstErr == nil {
				firstErr = fmt.Errorf("event %d: %w", i, err)
			}
			wbar.Add(1)
			continue
		}
		if stored(ev.ID) || dedup.Duplicate(&ev) {
			duplicates++
			wbar.Add(1)
			continue
		}
		if err := put(event.Record{Kind: event.KindEvent, Event: ev}); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	wbar.Finish()
	fmt.Fprintf(stdout, "imported %s (%s) into %s: %d items, %d events stored, %d duplicates skipped, %d rejected\n",
		src, d.Format, cfg.Data, items, events, duplicates, rejected)
	if unchanged > 0 {
		fmt.Fprintf(stdout, "%d items already stored unchanged\n", unchanged)
	}
	if firstErr != nil {
		fmt.Fprintf(stdout, "first rejection: %v\n", firstErr)
	}
	return nil
}

// sameItem reports whether the store already holds it as it is.
func sameItem(st *store.Store, it event.Item) bool {
	old, err := st.Item(it.ID)
	if err != nil {
		return false
	}
	a, _ := json.Marshal(old)
	b, _ := json.Marshal(it)
	return string(a) == string(b)
}

// loadDataset reads a data set with its progress on w (the bar made once
// the size is known: the library's spinner for unknown sizes races with
// Finish); sourceIDs gives events without an id one from their place in
// the source.
func loadDataset(ctx context.Context, src string, w io.Writer, sourceIDs bool) (*dataset.Data, error) {
	var bar *bar
	d, err := dataset.LoadContext(ctx, src, dataset.Options{SourceIDs: sourceIDs, Progress: func(done, total int64) {
		if bar == nil {
			bar = newBar(w, max(total, done, 1), "reading", true)
		} else if total > bar.GetMax64() {
			bar.ChangeMax64(total)
		}
		bar.Set64(done)
	}})
	if bar != nil {
		if err != nil {
			bar.Stop()
		} else {
			bar.Finish()
		}
	}
	return d, err
}
