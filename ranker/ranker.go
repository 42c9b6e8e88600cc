// Package ranker learns, from the log, how much to trust each source for
// whom and when: a recommend.Ranker whose weights depend on the time since
// the user's latest event, fitted to what users did next, and installed only
// when it beats both the ranker serving and the configured blend on the
// newest events.
//
// A training replays the log into a fresh engine (never the serving one),
// in log order. Over the newest slice of the log (Config.Validation), before
// a sample of the events, it asks the engine what it would have answered
// that user at that moment — every source's candidates and scaled scores
// (recommend.Example) — and labels the answer with the items the user then
// touched within the horizon (their next Config.Horizon events, within
// Config.HorizonSeconds): the next click for a user in a session, the
// coming weeks for one who comes back. The older part of those examples
// fits the weights; the newest part (Config.Holdout) chooses each bucket's
// row and decides.
//
// Fitting is coordinate ascent over a grid of weights on NDCG@K, first one
// row for every request (the static blend, tuned on the same examples;
// started from the configured weights and from the best source alone, the
// better fit kept), then one row per bucket of the time since the user's latest
// event, starting from it; a bucket keeps the global row when it has too
// few examples, or when its own row does not beat the global one on the
// bucket's validating examples.
//
// Examples reconstructed by replay stand in for what was shown. Where the
// application reports impressions (POST /v1/impressions, or shown=true),
// each impression in the newest slice is an example too, over exactly the
// items shown, labelled with the shown items the user then used: shown and
// not used is a true negative, which replayed examples cannot know. They
// have a reservoir of their own (at most half of Config.MaxExamples).
package ranker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/lambdamart"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/recommend"
)

// Config tunes training.
type Config struct {
	// Validation is the newest share of the log's records the examples come
	// from (the older records only build the engine's state).
	Validation float64
	// MaxExamples bounds the examples (and so a training's memory: about
	// 30 bytes per candidate, 150-300 candidates an example).
	MaxExamples int
	// Horizon is how many of the user's events, from the one asked before,
	// count as hits; HorizonSeconds bounds them in time on the events'
	// clock.
	Horizon        int
	HorizonSeconds float64
	// K is the cut-off of the NDCG fitted.
	K int
	// NextShare weighs the two questions an example asks: the NDCG of the very
	// next event's item (what a user in a session touches next) counts
	// NextShare, the NDCG of every item within the horizon (what a user who
	// came back wants over the coming weeks) 1 - Next. Negative: 0.
	NextShare float64
	// Gaps are the buckets' bounds, in seconds since the user's latest
	// event (recommend.Ranker.Gaps).
	Gaps []float64
	// MinBucket is how many fitting examples a bucket needs for weights of
	// its own.
	MinBucket int
	// Holdout is the newest share of the examples, held out of the fit: they
	// choose between each bucket's own row and the global one, and decide
	// whether the ranker is installed.
	Holdout float64
	// Grid is the weights a source may take.
	Grid []float32
	// TrainMF trains matrix factorisation in the replayed engine once the
	// records before the examples are applied (as the server trains it),
	// so its scores are what the ranker weighs.
	TrainMF bool
	// MF, when set, is the mf configuration that training uses (nil: the
	// engine's own).
	MF *mf.Config
	// FirstRecords and EveryRecords schedule trainings by the log's
	// length: the first once it holds FirstRecords, the next each time it
	// doubles, until that is EveryRecords apart (Next).
	FirstRecords, EveryRecords uint64
	// Trees bounds the boosted trees (LambdaMART) fitted over the fused
	// features on top of the weights (negative: none, the weights alone);
	// Pool is how many of the blend's best candidates they rerank.
	Trees, Pool int
	// Forest tunes the trees' training (its Trees and K come from above).
	Forest lambdamart.Config
}

// Next is the log length at which the training after one at records
// starts.
func (c Config) Next(records uint64) uint64 {
	c = c.withDefaults()
	if records < c.FirstRecords {
		return c.FirstRecords
	}
	return records + min(records, c.EveryRecords)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Validation: 0.4, MaxExamples: 4000, Horizon: 50, HorizonSeconds: 30 * 24 * 3600, K: 10, NextShare: 0.5,
		Gaps:      []float64{30 * 60, 24 * 3600, 7 * 24 * 3600},
		MinBucket: 100, Holdout: 0.3,
		Grid:    []float32{0, 0.05, 0.1, 0.25, 0.5, 1, 2, 4},
		TrainMF: true, FirstRecords: 10_000, EveryRecords: 100_000,
		Trees: 100, Pool: 50,
		Forest: lambdamart.Config{Depth: 4, LearningRate: 0.05, MinLeaf: 200, L2: 10, Bins: 64, EarlyStop: 20},
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Validation <= 0 || c.Validation >= 1 {
		c.Validation = d.Validation
	}
	if c.MaxExamples <= 0 {
		c.MaxExamples = d.MaxExamples
	}
	if c.Horizon <= 0 {
		c.Horizon = d.Horizon
	}
	if c.HorizonSeconds <= 0 {
		c.HorizonSeconds = d.HorizonSeconds
	}
	if c.K <= 0 {
		c.K = d.K
	}
	c.NextShare = min(max(c.NextShare, 0), 1)
	if c.Gaps == nil {
		c.Gaps = d.Gaps
	}
	if c.MinBucket <= 0 {
		c.MinBucket = d.MinBucket
	}
	if c.Holdout <= 0 || c.Holdout >= 1 {
		c.Holdout = d.Holdout
	}
	if len(c.Grid) == 0 {
		c.Grid = d.Grid
	}
	if c.FirstRecords == 0 {
		c.FirstRecords = d.FirstRecords
	}
	if c.EveryRecords == 0 {
		c.EveryRecords = d.EveryRecords
	}
	if c.Trees == 0 {
		c.Trees = d.Trees
	}
	if c.Pool <= 0 {
		c.Pool = d.Pool
	}
	if c.Forest == (lambdamart.Config{}) {
		c.Forest = d.Forest
	}
	return c
}

// Labelled is an example and the items that count as hits for it.
type Labelled struct {
	recommend.Example
	Labels []int32

	user  string
	at    float64 // seconds, on the events' clock
	count int     // events of the user counted so far
	// shown marks an example of an impression: its candidates are what the
	// application showed, and only those can be hits (shown and not used
	// is a true negative).
	shown bool
}

// Result is one training's outcome.
type Result struct {
	// Ranker is the fitted ranker (nil when there was nothing to fit);
	// Accepted says whether it beat the serving ranker and the configured
	// blend, Reason why not.
	Ranker   *recommend.Ranker
	Accepted bool
	Reason   string
	// The objective (Config.NextShare of the next item's NDCG@K, the rest
	// of the horizon's) on the validating examples: of the fitted ranker,
	// the one serving (NaN without one), the configured blend and the best
	// single row (the static blend tuned on the same examples).
	Candidate, Serving, Configured, Global float64
	// Weights is the objective of the fitted weights alone, without the
	// trees (NaN when no trees were fitted); Trees the trees kept.
	Weights              float64
	Trees                int
	Examples, Validating int
	Shown                int    // examples from impressions
	Records              uint64 // log records trained on
	Took                 time.Duration
	Collecting           time.Duration // of Took: the replay and the examples (the rest fits)
}

// ErrTooFew is returned when the log holds too few examples to fit and
// validate.
var ErrTooFew = errors.New("ranker: too few examples")

// Replay calls fn with every record of the log, in order, until fn fails.
type Replay func(fn func(event.Record) error) error

// Records is the Replay of a log held in memory.
func Records(recs []event.Record) Replay {
	return func(fn func(event.Record) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// Train replays total records (all the log) into newEngine(), collects the
// examples, fits a ranker and gates it against serving (nil: none) and the
// engine's configured blend.
func Train(ctx context.Context, replay Replay, total uint64, newEngine func() *recommend.Engine, serving *recommend.Ranker, cfg Config) (Result, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	eng := newEngine()
	xs, n, err := Collect(ctx, replay, total, eng, cfg)
	if err != nil {
		return Result{}, err
	}
	collected := time.Now()
	res := Fit(ctx, xs, eng.Sources(), eng.FeatureNames(), eng.Blend(), serving, cfg)
	res.Records = n
	res.Took = time.Since(start)
	res.Collecting = collected.Sub(start)
	if res.Ranker == nil {
		return res, ErrTooFew
	}
	return res, nil
}

// Collect replays the log into eng and returns the labelled examples of
// its newest slice, oldest first, and the records replayed. Events are
// sampled evenly within each bucket of the time since the user's previous
// event (a reservoir of MaxExamples/buckets each): most events of a log
// continue a session, and the few that open one — a user coming back —
// would otherwise be too few to fit their bucket.
func Collect(ctx context.Context, replay Replay, total uint64, eng *recommend.Engine, cfg Config) ([]*Labelled, uint64, error) {
	cfg = cfg.withDefaults()
	split := uint64(float64(total) * (1 - cfg.Validation))
	buckets := &recommend.Ranker{Gaps: cfg.Gaps}
	per := max(1, cfg.MaxExamples/(len(cfg.Gaps)+1))
	res := make([][]*Labelled, len(cfg.Gaps)+1)
	met := make([]int, len(cfg.Gaps)+1)
	rng := rand.New(rand.NewPCG(uint64(total), 1))
	var (
		seen  uint64
		batch []event.Record
		open  = map[string][]*Labelled{}
		// Impressions: a reservoir of their own, half the examples at most.
		shown    []*Labelled
		shownMet int
		perShown = max(1, cfg.MaxExamples/2)
	)
	flush := func() {
		eng.Apply(batch)
		batch = batch[:0]
	}
	errStop := errors.New("stop")
	err := replay(func(r event.Record) error {
		if seen >= total {
			return errStop // records appended after the training began
		}
		if seen%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		seen++
		if seen <= split {
			batch = append(batch, r)
			if len(batch) == 512 || seen == split {
				flush()
				if seen == split && cfg.TrainMF {
					if _, err := eng.TrainMF(ctx, cfg.MF, nil); err != nil && !errors.Is(err, als.ErrNothing) && !errors.Is(err, recommend.ErrNoMF) {
						return err
					}
				}
			}
			return nil
		}
		if r.Kind == event.KindImpression {
			eng.Apply([]event.Record{r})
			im := &r.Impression
			t := seconds(im.Time)
			x := &Labelled{Example: eng.ExampleOf(im.User, im.Items, t), user: im.User, at: t, shown: true}
			if len(x.Items) < 2 {
				return nil // nothing to order
			}
			shownMet++
			if len(shown) < perShown {
				shown = append(shown, x)
			} else if k := rng.IntN(shownMet); k < perShown {
				shown[k] = x
			} else {
				return nil
			}
			open[im.User] = append(open[im.User], x)
			return nil
		}
		if r.Kind != event.KindEvent {
			eng.Apply([]event.Record{r})
			return nil
		}
		ev := &r.Event
		t := seconds(ev.Time)
		if ev.Weight > 0 {
			// The gap as of the event's time: the moment the user acts. (A
			// server measures it on its clock, the latest event applied,
			// which in a busy log is the same.)
			gap := eng.UserGap(ev.User, t)
			if math.IsNaN(gap) {
				gap = math.Inf(1)
			}
			b := buckets.Bucket(gap)
			met[b]++
			// Reservoir sampling: the n-th event of a bucket is kept with
			// probability per/n, in place of a random one kept before.
			slot := -1
			if len(res[b]) < per {
				slot = len(res[b])
				res[b] = append(res[b], nil)
			} else if k := rng.IntN(met[b]); k < per {
				slot = k
			}
			if slot >= 0 {
				x := &Labelled{Example: eng.Example(ev.User, cfg.K, t), user: ev.User, at: t}
				res[b][slot] = x
				open[ev.User] = append(open[ev.User], x)
			}
		}
		eng.Apply([]event.Record{r})
		if ev.Weight > 0 {
			label(open, ev, eng, cfg)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, seen, err
	}
	if len(batch) > 0 {
		flush()
	}
	xs := slices.Clone(shown)
	for _, r := range res {
		xs = append(xs, r...)
	}
	slices.SortStableFunc(xs, func(a, b *Labelled) int { return cmp.Compare(a.at, b.at) })
	return xs, seen, nil
}

// label adds ev's item to the open examples of its user, closing those
// past the horizon.
func label(open map[string][]*Labelled, ev *event.Event, eng *recommend.Engine, cfg Config) {
	xs := open[ev.User]
	if len(xs) == 0 {
		return
	}
	t := seconds(ev.Time)
	it, ok := eng.ItemIndex(ev.Item)
	keep := xs[:0]
	for _, x := range xs {
		if t-x.at > cfg.HorizonSeconds {
			continue
		}
		if ok && !slices.Contains(x.Labels, it) && (!x.shown || slices.Contains(x.Items, it)) {
			x.Labels = append(x.Labels, it)
		}
		x.count++
		if x.count < cfg.Horizon {
			keep = append(keep, x)
		}
	}
	if len(keep) == 0 {
		delete(open, ev.User)
		return
	}
	open[ev.User] = keep
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Fit fits a ranker to the older examples and scores it, and the
// alternatives, on the newest (Config.Holdout); sources names the
// examples' score columns, features the engine's feature vector
// (recommend.Engine.FeatureNames; nil: weights only, no trees) and blend
// the configured weights.
func Fit(ctx context.Context, xs []*Labelled, sources, features []string, blend map[string]float32, serving *recommend.Ranker, cfg Config) Result {
	cfg = cfg.withDefaults()
	xs = slices.DeleteFunc(slices.Clone(xs), func(x *Labelled) bool { return len(x.Labels) == 0 || len(x.Items) == 0 })
	res := Result{Examples: len(xs), Serving: math.NaN(), Weights: math.NaN()}
	for _, x := range xs {
		if x.shown {
			res.Shown++
		}
	}
	cut := int(float64(len(xs)) * (1 - cfg.Holdout))
	fitX, valX := xs[:cut], xs[cut:]
	res.Validating = len(valX)
	if len(fitX) < cfg.MinBucket || len(valX) == 0 {
		res.Reason = fmt.Sprintf("%d examples: too few to fit (%d) and validate", len(xs), cfg.MinBucket)
		return res
	}
	k := len(sources)
	configured := make([]float32, k)
	for i, name := range sources {
		configured[i] = blend[name]
	}
	if !anyPositive(configured) {
		configured[0] = 1
	}
	s := newScorer(k, cfg.K, cfg.NextShare)
	// Coordinate ascent finds a local optimum, so each fit starts twice:
	// from the weights it refines and from the best source alone on its
	// examples (where one source dominates — content on a sparse
	// catalogue, trending for users back after weeks — the blend's start
	// may never get there); the better fit wins.
	global := s.fit(fitX, configured, cfg.Grid)
	rows := make([][]float32, len(cfg.Gaps)+1)
	byBucket := bucketed(fitX, cfg.Gaps)
	// A bucket keeps its own row only where it beats the global one on the
	// bucket's own held-out examples. Those are also the examples the gate
	// scores on, so the choice flatters the candidate a little against
	// the configured blend (two rows to choose from per bucket); choosing
	// on a separate half instead measured worse on every data set (half
	// the examples each way: ml-latest-small leave-last 0.1066 against
	// 0.1311, taobao's ranker rejected), so the gate takes that bias.
	valBucket := bucketed(valX, cfg.Gaps)
	for b := range rows {
		rows[b] = global
		if len(byBucket[b]) < cfg.MinBucket {
			continue
		}
		if own := s.fit(byBucket[b], global, cfg.Grid); len(valBucket[b]) > 0 && s.meanW(valBucket[b], own) > s.meanW(valBucket[b], global) {
			rows[b] = own
		}
	}
	cand := &recommend.Ranker{Sources: sources, Gaps: slices.Clone(cfg.Gaps), Weights: rows}
	one := &recommend.Ranker{Sources: sources, Gaps: nil, Weights: [][]float32{global}}
	res.Candidate = s.mean(valX, cand, sources)
	res.Global = s.mean(valX, one, sources)
	res.Configured = s.mean(valX, &recommend.Ranker{Sources: sources, Weights: [][]float32{configured}}, sources)
	res.Ranker = cand
	if res.Global >= res.Candidate {
		res.Ranker, res.Candidate = one, res.Global
	}
	if len(features) > 0 && cfg.Trees > 0 {
		res.Weights = res.Candidate
		if f, n := s.fitForest(ctx, fitX, res.Ranker, sources, features, cfg); f != nil {
			if v := s.mean(valX, f, sources); v > res.Candidate {
				res.Ranker, res.Candidate, res.Trees = f, v, n
			}
		}
	}
	if err := res.Ranker.Validate(); err != nil {
		res.Ranker, res.Reason = nil, err.Error()
		return res
	}
	bar, what := res.Configured, "the configured blend"
	if serving != nil {
		res.Serving = s.mean(valX, serving, sources)
		if res.Serving >= bar {
			bar, what = res.Serving, "the serving ranker"
		}
	}
	if res.Candidate > bar {
		res.Accepted = true
		return res
	}
	res.Reason = fmt.Sprintf("objective %.4f on the %d newest examples does not beat %s (%.4f)", res.Candidate, len(valX), what, bar)
	return res
}

func anyPositive(w []float32) bool {
	for _, v := range w {
		if v > 0 {
			return true
		}
	}
	return false
}

// bucketed splits examples by their bucket of gaps.
func bucketed(xs []*Labelled, gaps []float64) [][]*Labelled {
	r := &recommend.Ranker{Gaps: gaps}
	out := make([][]*Labelled, len(gaps)+1)
	for _, x := range xs {
		b := r.Bucket(x.Gap)
		out[b] = append(out[b], x)
	}
	return out
}

// scorer computes NDCG@k of weights over examples.
type scorer struct {
	k, n  int
	next  float64 // the weight of the next event's NDCG (Config.NextShare)
	score []float32
	top   []int
	w     []float32
	// ndcgForest's scratch, and its forest laid out as the engine serves it
	idx      []int
	rows     []float32
	items    []int32
	forest   *lambdamart.Forest
	compiled *lambdamart.Compiled
}

func newScorer(sources, k int, next float64) *scorer {
	return &scorer{k: k, n: sources, next: next}
}

// mean is the mean NDCG of r over xs, whose score columns are sources
// (r's are matched by name; a source r does not name weighs 0).
func (s *scorer) mean(xs []*Labelled, r *recommend.Ranker, sources []string) float64 {
	if len(xs) == 0 {
		return 0
	}
	rows := r.WeightsFor(sources)
	var sum float64
	for _, x := range xs {
		w := rows[r.Bucket(x.Gap)]
		if r.Forest != nil {
			sum += s.ndcgForest(x, w, r)
		} else {
			sum += s.ndcg(x, w)
		}
	}
	return sum / float64(len(xs))
}

// ndcgForest is the objective of x ranked as the engine ranks under r's
// trees: the blend's best r.Pool candidates by w, each scored its blended
// score plus the forest's output on its features.
func (s *scorer) ndcgForest(x *Labelled, w []float32, r *recommend.Ranker) float64 {
	s.idx, s.rows = x.Rows(w, r.Pool, s.rows, s.idx)
	if len(s.idx) == 0 {
		return 0
	}
	F := len(s.rows) / len(s.idx)
	s.items = s.items[:0]
	s.score = slices.Grow(s.score[:0], len(s.idx))[:len(s.idx)]
	if s.forest != r.Forest {
		s.forest, s.compiled = r.Forest, r.Forest.Compile()
	}
	s.compiled.PredictRows(s.rows, F, s.score)
	for i, c := range s.idx {
		s.items = append(s.items, x.Items[c])
		s.score[i] += s.rows[(i+1)*F-1]
	}
	return s.rankOf(s.items, x.Labels, s.score, true)
}

// gains are the labels LambdaMART fits for x's pool rows idx: the
// objective is then their DCG@K, as rank computes it.
func (s *scorer) gains(x *Labelled, idx []int, dst []float32) []float32 {
	var ideal float64
	for r := range min(s.k, len(x.Labels)) {
		ideal += 1 / math.Log2(float64(r)+2)
	}
	for _, i := range idx {
		it := x.Items[i]
		var g float64
		if it == x.Labels[0] {
			g += s.next
		}
		if slices.Contains(x.Labels, it) {
			g += (1 - s.next) / ideal
		}
		dst = append(dst, float32(g))
	}
	return dst
}

// forestData is the training set of the trees over xs: each example's
// pool under base's row for it, labelled by gains, started from the
// blended score.
func (s *scorer) forestData(xs []*Labelled, base *recommend.Ranker, sources []string, features, pool int) *lambdamart.Data {
	rows := base.WeightsFor(sources)
	d := &lambdamart.Data{F: features, Group: []int{0}}
	var idx []int
	var buf []float32
	for _, x := range xs {
		idx, buf = x.Rows(rows[base.Bucket(x.Gap)], pool, buf, idx)
		if len(idx) == 0 || len(buf) != len(idx)*features {
			continue
		}
		d.X = append(d.X, buf...)
		d.Label = s.gains(x, idx, d.Label)
		for i := range idx {
			d.Init = append(d.Init, buf[(i+1)*features-1])
		}
		d.Group = append(d.Group, len(d.Label))
	}
	return d
}

// fitForest fits trees on top of base over xs, oldest first: the newest
// fifth of them stops the boosting (the trees kept are those up to the
// round that scored best there). It returns nil when no tree helps there.
func (s *scorer) fitForest(ctx context.Context, xs []*Labelled, base *recommend.Ranker, sources, features []string, cfg Config) (*recommend.Ranker, int) {
	cut := len(xs) * 4 / 5
	train := s.forestData(xs[:cut], base, sources, len(features), cfg.Pool)
	stop := s.forestData(xs[cut:], base, sources, len(features), cfg.Pool)
	if len(train.Group) < 2 || len(stop.Group) < 2 {
		return nil, 0
	}
	fc := cfg.Forest
	fc.Trees, fc.K, fc.Valid = cfg.Trees, cfg.K, stop
	f, st, err := lambdamart.Train(ctx, train, fc)
	if err != nil || st.Trees == 0 {
		return nil, 0
	}
	r := *base
	r.Forest, r.Features, r.Pool = f, slices.Clone(features), cfg.Pool
	return &r, st.Trees
}

// ascend is coordinate ascent from start over grid: each source's weight
// in turn takes the grid value that best raises the mean NDCG, until a
// round changes nothing (at most four rounds). Each trial moves one
// weight, so every candidate's score moves by one product: the scores
// under the current weights are kept, and recomputed exactly after a move
// is taken.
func (s *scorer) ascend(xs []*Labelled, start, grid []float32) []float32 {
	w := slices.Clone(start)
	cur := make([][]float32, len(xs))
	trial := make([][]float32, len(xs))
	fill := func() float64 {
		var sum float64
		for e, x := range xs {
			cur[e] = s.scores(x, w, cur[e])
			sum += s.rank(x, cur[e])
		}
		return sum / float64(len(xs))
	}
	best := fill()
	for range 4 {
		moved := false
		for j := range w {
			old := w[j]
			for _, g := range grid {
				if g == w[j] {
					continue
				}
				prev := w[j]
				w[j] = g
				if !anyPositive(w) {
					w[j] = prev
					continue
				}
				d := g - prev
				var sum float64
				for e, x := range xs {
					t := slices.Grow(trial[e][:0], len(x.Items))[:len(x.Items)]
					c := cur[e]
					for i := range t {
						t[i] = c[i] + d*x.Scores[i*s.n+j]
					}
					trial[e] = t
					sum += s.rank(x, t)
				}
				if sum/float64(len(xs)) > best+1e-9 {
					best = fill()
				} else {
					w[j] = prev
				}
			}
			moved = moved || w[j] != old
		}
		if !moved {
			break
		}
	}
	return w
}

// fit is the better of coordinate ascent from start and from the best
// source alone on xs.
func (s *scorer) fit(xs []*Labelled, start, grid []float32) []float32 {
	alone, bestAlone := []float32(nil), math.Inf(-1)
	for j := range start {
		w := make([]float32, len(start))
		w[j] = 1
		if v := s.meanW(xs, w); v > bestAlone {
			alone, bestAlone = w, v
		}
	}
	out, best := start, math.Inf(-1)
	for _, from := range [][]float32{start, alone} {
		w := s.ascend(xs, from, grid)
		if v := s.meanW(xs, w); v > best {
			out, best = w, v
		}
	}
	return out
}

func (s *scorer) meanW(xs []*Labelled, w []float32) float64 {
	var sum float64
	for _, x := range xs {
		sum += s.ndcg(x, w)
	}
	return sum / float64(len(xs))
}

// ndcg is NDCG@k of the blend by w (one weight per source column) on x.
func (s *scorer) ndcg(x *Labelled, w []float32) float64 {
	s.score = s.scores(x, w, s.score)
	return s.rank(x, s.score)
}

// scores puts each candidate's weighted sum into dst.
func (s *scorer) scores(x *Labelled, w []float32, dst []float32) []float32 {
	n := len(x.Items)
	dst = slices.Grow(dst[:0], n)[:n]
	for i := range n {
		var v float32
		for j, c := range x.Scores[i*s.n : (i+1)*s.n] {
			v += w[j] * c
		}
		dst[i] = v
	}
	return dst
}

// rank is the objective for x's candidates scored by score: as the engine
// ranks, by score, then the lower item id, over the candidates some
// weighted source brought (score above 0), NextShare of the next event's
// NDCG@k and the rest of the horizon's.
func (s *scorer) rank(x *Labelled, score []float32) float64 {
	return s.rankOf(x.Items, x.Labels, score, false)
}

// rankOf is rank of items scored by score against labels; all counts every
// candidate, whatever its score (a forest's scores may fall below 0).
func (s *scorer) rankOf(items, labels []int32, score []float32, all bool) float64 {
	better := func(a, b int) bool {
		if score[a] != score[b] {
			return score[a] > score[b]
		}
		return items[a] < items[b]
	}
	s.top = s.top[:0]
	floor := float32(math.Inf(-1)) // the k-th score once k are held: most candidates fail one comparison
	if !all {
		floor = 0
	}
	for i, v := range score {
		if !all && v <= 0 || v < floor {
			continue
		}
		// Insert into the top k, best first.
		if len(s.top) == s.k && !better(i, s.top[s.k-1]) {
			continue
		}
		if len(s.top) < s.k {
			s.top = append(s.top, i)
		}
		p := len(s.top) - 1
		for ; p > 0 && better(i, s.top[p-1]); p-- {
			s.top[p] = s.top[p-1]
		}
		s.top[p] = i
		if len(s.top) == s.k {
			floor = score[s.top[s.k-1]]
		}
	}
	var dcg, next float64
	for r, i := range s.top {
		if slices.Contains(labels, items[i]) {
			dcg += 1 / math.Log2(float64(r)+2)
		}
		if items[i] == labels[0] {
			next = 1 / math.Log2(float64(r)+2)
		}
	}
	var ideal float64
	for r := range min(s.k, len(labels)) {
		ideal += 1 / math.Log2(float64(r)+2)
	}
	return s.next*next + (1-s.next)*dcg/ideal
}
