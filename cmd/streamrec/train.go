package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/eval"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/node"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/store"
)

const trainUsage = `Usage: streamrec train [flags] [SOURCE]

Trains matrix factorisation (implicit ALS) and writes the model file that
"streamrec serve" loads at start (by default DATA/models/mf.model; stop
the server first, or point --out elsewhere).

Without SOURCE it trains on the log in --data; with SOURCE (%s)
it trains on that data set. --synthetic N instead trains on N generated
interactions and writes nothing: a training benchmark.

Flags:
`

func trainCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cf := newConfigFlags("train", stderr, true)
	cf.fs.Usage = func() {
		fmt.Fprintf(cf.fs.Output(), trainUsage, "a data set directory or file, as for import")
		cf.fs.PrintDefaults()
	}
	var out string
	var factors, iterations, workers, synthetic, users, items int
	var lambda, alpha float64
	cf.fs.StringVar(&out, "out", "", "model file to write (default DATA/models/mf.model)")
	cf.fs.IntVar(&factors, "factors", 0, "factors (default: the configuration's)")
	cf.fs.IntVar(&iterations, "iterations", 0, "ALS iterations (default: the configuration's)")
	cf.fs.Float64Var(&lambda, "lambda", 0, "regularisation (default: the configuration's)")
	cf.fs.Float64Var(&alpha, "alpha", 0, "confidence weight (default: the configuration's)")
	cf.fs.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "cores to train on")
	cf.fs.IntVar(&synthetic, "synthetic", 0, "train on this many generated interactions instead (benchmark; writes no model)")
	cf.fs.IntVar(&users, "users", 140_000, "--synthetic: users")
	cf.fs.IntVar(&items, "items", 27_000, "--synthetic: items")
	var shape string
	cf.fs.StringVar(&shape, "shape", "zipf", "--synthetic: zipf (popular items and heavy users, as real data) or uniform (every pair distinct, the hardest case)")
	var quiet bool
	cf.fs.BoolVar(&quiet, "quiet", false, "no progress output")
	if err := parseFlags(cf.fs, args, stdout); err != nil {
		return err
	}
	progress := progressOut(stderr, quiet)
	if cf.fs.NArg() > 1 || (synthetic > 0 && cf.fs.NArg() > 0) {
		cf.fs.Usage()
		return errors.New("train: give at most one SOURCE, and none with --synthetic")
	}
	if factors < 0 || iterations < 0 || lambda < 0 || alpha < 0 || workers < 0 || synthetic < 0 {
		return errors.New("train: --factors, --iterations, --lambda, --alpha, --workers and --synthetic must not be negative")
	}
	cfg, err := cf.load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	mc := cfg.MFConfig()
	for _, o := range []struct {
		set bool
		do  func()
	}{
		{factors > 0, func() { mc.ALS.Factors = factors }},
		{iterations > 0, func() { mc.ALS.Iterations = iterations }},
		{lambda > 0, func() { mc.ALS.Lambda = float32(lambda) }},
		{alpha > 0, func() { mc.ALS.Alpha = float32(alpha) }},
		{workers > 0, func() { mc.ALS.Workers = workers }},
	} {
		if o.set {
			o.do()
		}
	}
	if synthetic > 0 {
		return trainSynthetic(ctx, synthetic, users, items, shape, mc, stdout, progress)
	}
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	eng := recommend.New(cfg.EngineConfig(table))
	if cf.fs.NArg() == 1 {
		if err := applyDataset(ctx, cf.fs.Arg(0), eng, cfg.PipelineConfig(table), cfg.DedupConfig(), progress); err != nil {
			return err
		}
	} else {
		if eng, err = rebuildFromStore(ctx, cfg.Data, func() *recommend.Engine { return recommend.New(cfg.EngineConfig(table)) }, cfg.DedupConfig(), cfg.Dedup.IDs, progress); err != nil {
			return err
		}
	}
	if out == "" {
		out = node.ModelFile(cfg.Data)
	}
	st := eng.Stats()
	fmt.Fprintf(progress, "training on %d users, %d items, %d interactions: %d factors, %d iterations, %d cores\n",
		st.Users, st.Items, st.Events, mc.ALS.Factors, mc.ALS.Iterations, mc.ALS.Workers)
	t, err := trainWithBar(ctx, progress, func(progress func(done, total int)) (*mf.Trained, error) {
		return eng.TrainMF(ctx, &mc, progress)
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := node.WriteModelFile(out, func(f *os.File) error { _, err := eng.WriteMF(f); return err }); err != nil {
		return fmt.Errorf("train: writing %s: %w", out, err)
	}
	info, _ := os.Stat(out)
	fmt.Fprintf(stdout, "trained in %s (%d interactions through record %d); wrote %s (%d bytes)\n",
		t.Took.Round(time.Millisecond), t.Events, t.Seq, out, info.Size())
	return nil
}

// trainWithBar runs train with its progress on w.
func trainWithBar(ctx context.Context, w io.Writer, train func(progress func(done, total int)) (*mf.Trained, error)) (*mf.Trained, error) {
	bar := newBar(w, 1, "training", false)
	t, err := train(func(done, total int) {
		if bar.GetMax() != total {
			bar.ChangeMax(total)
		}
		bar.Set(done)
	})
	if err != nil {
		bar.Stop()
		return nil, fmt.Errorf("train: %w", err)
	}
	bar.Finish()
	return t, ctx.Err()
}

// applyDataset reads a data set through the pipeline into eng.
func applyDataset(ctx context.Context, src string, eng *recommend.Engine, pc pipeline.Config, dc pipeline.DedupConfig, progress io.Writer) error {
	d, err := loadDataset(ctx, src, progress, false)
	if err != nil {
		return err
	}
	recs, _, err := eval.Records(d.Items, d.Events, pipeline.New(pc), pipeline.NewDedup(dc))
	if err != nil {
		return err
	}
	eng.Apply(recs)
	return nil
}

// rebuildFromStore restores the engine from the data directory's snapshot
// and log, with its progress on w; the store must not be open elsewhere.
func rebuildFromStore(ctx context.Context, data string, newEngine func() *recommend.Engine, dc pipeline.DedupConfig, ids int, w io.Writer) (*recommend.Engine, error) {
	if _, err := os.Stat(data); err != nil {
		return nil, fmt.Errorf("train: no data directory %s (import or serve first, or give a SOURCE)", data)
	}
	st, err := store.Open(data)
	if err != nil {
		return nil, fmt.Errorf("train: %w (is a server running on it?)", err)
	}
	defer st.Close()
	bar := newBar(w, int64(max(st.LastSeq(), 1)), "reading the log", false)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wr, err := ingest.New(ctx, st, newEngine, pipeline.NewDedup(dc), log, ingest.Config{DedupIDs: ids,
		Progress: func(done, _ uint64) { bar.Set64(int64(done)) }})
	if err != nil {
		bar.Stop()
		return nil, err
	}
	bar.Finish()
	eng := wr.Engine()
	wr.Close()
	return eng, nil
}

// trainSynthetic is the training benchmark: generated interactions, time
// and peak memory.
func trainSynthetic(ctx context.Context, n, users, items int, shape string, mc mf.Config, stdout, progress io.Writer) error {
	if users < 2 || items < 2 {
		return errors.New("train: --users and --items must be at least 2")
	}
	start := time.Now()
	var entries []als.Entry
	switch shape {
	case "zipf":
		entries = bench.Interactions(users, items, n, 1)
	case "uniform":
		entries = bench.UniformInteractions(users, items, n, 1)
	default:
		return fmt.Errorf("train: unknown --shape %q (zipf, uniform)", shape)
	}
	distinct := bench.DistinctPairs(entries)
	gen := time.Since(start)
	fmt.Fprintf(progress, "generated %d interactions, %d distinct pairs (%d users, %d items, %s) in %s; training %d factors, %d iterations on %d cores\n",
		n, distinct, users, items, shape, gen.Round(time.Millisecond), mc.ALS.Factors, mc.ALS.Iterations, mc.ALS.Workers)
	mc.ANNThreshold = -1
	t, err := trainWithBar(ctx, progress, func(progress func(done, total int)) (*mf.Trained, error) {
		return mf.Train(ctx, mf.Data{Users: users, Items: items, Entries: entries}, mc, progress)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "interactions %d (%s, %d distinct pairs)  users %d  items %d  factors %d  iterations %d  cores %d\ntraining %.1f s  peak memory (VmHWM) %s\n",
		n, shape, distinct, users, items, mc.ALS.Factors, mc.ALS.Iterations, mc.ALS.Workers, t.Took.Seconds(), peakRSS())
	return nil
}

// peakRSS reads the process's peak resident memory from /proc (Linux).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return fmt.Sprintf("%.2f GiB", kb/(1<<20))
			}
		}
	}
	return "unknown"
}
