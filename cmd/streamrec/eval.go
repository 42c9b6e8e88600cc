package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/streamrec/streamrec/eval"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
)

const evalUsage = `Usage: streamrec eval --data SOURCE [flags]

Scores every model (trending, item_knn, mf and their blend, the server's
answer) offline on a data set, through the engine the server runs, under
one protocol: chrono (train on the first 80%% of events by time, score each
test user's new items), leave-last (each user's last interaction held out)
or prequential (replay in time order, scoring each event before applying
it). Prints a table of metrics at each K; --json and --plot write them too.
docs/EVALUATION.md records the figures and the commands behind them.

SOURCE is anything streamrec import reads (streamrec import --help lists the formats).

Flags:
`

func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cf := newConfigFlags("eval", stderr, false)
	cf.fs.Usage = func() {
		fmt.Fprint(cf.fs.Output(), evalUsage)
		cf.fs.PrintDefaults()
	}
	var data, protocol, models, ks, jsonOut, plotOut, plotMetric string
	cf.fs.StringVar(&data, "data", "", "data set to evaluate on (anything streamrec import reads)")
	cf.fs.StringVar(&protocol, "protocol", eval.Chrono, "chrono, leave-last or prequential")
	cf.fs.StringVar(&models, "models", "", "models to score, comma-separated: any source of the configuration, or blend (default: every source and the blend)")
	cf.fs.StringVar(&ks, "k", "5,10,20", "cut-offs, comma-separated")
	cf.fs.StringVar(&jsonOut, "json", "", "write the numbers as JSON to this file")
	cf.fs.StringVar(&plotOut, "plot", "", "draw --plot-metric against K for every model into this .svg file")
	cf.fs.StringVar(&plotMetric, "plot-metric", "ndcg", "metric to plot: precision, recall, ndcg, map, hit_rate, mrr, coverage, novelty")
	var factors, iterations, retrain int
	var lambda, alpha float64
	cf.fs.IntVar(&factors, "factors", 0, "mf: factors (default: the configuration's)")
	cf.fs.IntVar(&iterations, "iterations", 0, "mf: ALS iterations (default: the configuration's)")
	cf.fs.Float64Var(&lambda, "lambda", 0, "mf: regularisation (default: the configuration's)")
	cf.fs.Float64Var(&alpha, "alpha", 0, "mf: confidence weight (default: the configuration's)")
	cf.fs.IntVar(&retrain, "retrain-every", 10_000, "prequential: events between two trainings of mf (each event is folded in between)")
	var validation float64
	var grid bool
	cf.fs.Float64Var(&validation, "validation", 0, "chrono: score on this last share of the training events instead of the test events (for tuning)")
	cf.fs.BoolVar(&grid, "grid", false, "tune mf (and, under chrono, the blend weights) on a validation split of the training events (never the test events), then score the best setting")
	var quiet, noRanker bool
	cf.fs.BoolVar(&quiet, "quiet", false, "no progress output")
	cf.fs.BoolVar(&noRanker, "no-ranker", false, "score the blend by the configured weights alone: no ranker trained on the training part (the server trains one unless ranker.enabled is false)")
	if err := parseFlags(cf.fs, args, stdout); err != nil {
		return err
	}
	if data == "" || cf.fs.NArg() > 0 {
		cf.fs.Usage()
		return errors.New("eval: give --data DIR and no other argument")
	}
	if plotOut != "" && strings.ToLower(filepath.Ext(plotOut)) != ".svg" {
		return fmt.Errorf("eval: --plot writes SVG; name the file .svg, not %q", filepath.Ext(plotOut))
	}
	cfg, err := cf.load(getenv)
	if err != nil {
		return err
	}
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	mc := cfg.MFConfig()
	if factors > 0 {
		mc.ALS.Factors = factors
	}
	if iterations > 0 {
		mc.ALS.Iterations = iterations
	}
	if lambda > 0 {
		mc.ALS.Lambda = float32(lambda)
	}
	if alpha > 0 {
		mc.ALS.Alpha = float32(alpha)
	}
	ec := eval.Config{Protocol: protocol, MF: &mc, Validation: validation, RetrainEvery: retrain}
	if cfg.Ranker.Enabled && !noRanker {
		rc := cfg.RankerConfig()
		ec.Ranker = &rc
	}
	if models != "" {
		for _, m := range strings.Split(models, ",") {
			ec.Models = append(ec.Models, strings.TrimSpace(m))
		}
	}
	for _, k := range strings.Split(ks, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(k))
		if err != nil {
			return fmt.Errorf("eval: --k: %q is not a number", k)
		}
		ec.Ks = append(ec.Ks, v)
	}
	// Every flag is checked before the data set is read.
	var known []string
	for _, m := range cfg.Models() {
		if _, ok := m.(model.Source); ok {
			known = append(known, m.Name())
		}
	}
	if err := ec.Validate(append(known, eval.ModelBlend)); err != nil {
		return err
	}
	if plotOut != "" {
		if err := eval.WriteSVG(io.Discard, eval.Report{}, plotMetric); err != nil {
			return fmt.Errorf("%w (precision, recall, ndcg, map, hit_rate, mrr, coverage, novelty)", err)
		}
	}
	progress := progressOut(stderr, quiet)
	d, err := loadDataset(ctx, data, progress, false)
	if err != nil {
		return err
	}
	recs, _, err := eval.Records(d.Items, d.Events, pipeline.New(cfg.PipelineConfig(table)), pipeline.NewDedup(cfg.DedupConfig()))
	if err != nil {
		return err
	}
	newEngine := func() *recommend.Engine {
		return recommend.New(cfg.EngineConfig(table))
	}
	if grid {
		if validation == 0 {
			validation = 0.2
		}
		k := ec.Ks[min(1, len(ec.Ks)-1)]
		rows, best, err := eval.GridMF(recs, table, newEngine, mc, eval.DefaultGrid, validation, k)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, eval.GridTable(rows, best, k))
		fmt.Fprintf(stdout, "best: --factors %d --lambda %g --alpha %g\n\n", best.ALS.Factors, best.ALS.Lambda, best.ALS.Alpha)
		ec.MF, ec.Validation = &best, 0
		if !slices.Contains(ec.Models, eval.ModelMF) {
			ec.Models = append(ec.Models, eval.ModelMF)
		}
		if protocol == eval.Chrono {
			brows, bw, err := eval.GridBlend(recs, table, newEngine, &best, eval.DefaultBlendGrid, validation, k)
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, eval.BlendTable(brows, bw, k))
			fmt.Fprintf(stdout, "best blend: item_knn %g, mf %g, trending %g\n\n", bw[eval.ModelItemKNN], bw[eval.ModelMF], bw[eval.ModelTrending])
			ec.Blend = bw
		}
	}
	sbar := newBar(progress, 1, "scoring "+protocol, false)
	ec.Progress = func(done, total int) {
		if sbar.GetMax() != total {
			sbar.ChangeMax(total)
		}
		sbar.Set(done)
	}
	rep, err := eval.Run(recs, table, newEngine, ec)
	if err != nil {
		sbar.Stop()
		return err
	}
	sbar.Finish()
	fmt.Fprint(stdout, rep.Table())
	if r := rep.Ranker; r != nil {
		verdict := "installed"
		if !r.Accepted {
			verdict = "not installed: " + r.Reason
		}
		what := "on the training part"
		if r.Trainings > 0 {
			what = fmt.Sprintf("%d times as the replay went on, the last", r.Trainings)
		}
		trees := "no trees"
		if r.Weights != nil {
			trees = fmt.Sprintf("weights alone %.4f, %d trees", *r.Weights, r.Trees)
		}
		fmt.Fprintf(stdout, "\nranker trained %s (%d examples, %.1fs, %.1fs of it fitting): validation objective %.4f (%s), configured blend %.4f; %s\n", what, r.Examples, r.Seconds, r.FitSeconds, r.Candidate, trees, r.Configured, verdict)
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("eval: --json: %w", err)
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	if plotOut != "" {
		f, err := os.Create(plotOut)
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		err = eval.WriteSVG(f, rep, plotMetric)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
