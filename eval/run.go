package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/ranker"
	"github.com/streamrec/streamrec/recommend"
)

// Protocol names.
const (
	Chrono      = "chrono"
	LeaveLast   = "leave-last"
	Prequential = "prequential"
)

// Model names: a model is a source of the engine, by its name, scored
// alone, or the blend the server answers with. The names of the usual
// sources are here for the callers' convenience; any source the engine has
// can be scored.
const (
	ModelTrending = "trending"
	ModelItemKNN  = "item_knn"
	ModelMF       = "mf"
	ModelBlend    = "blend"
)

// Config configures a run.
type Config struct {
	Protocol      string
	Models        []string
	Ks            []int
	TrainFraction float64 // chrono: share of events (by time) that train
	HoldOut       int     // leave-last: interactions held out per user
	WarmUp        float64 // prequential: share of events applied before scoring
	// MF, when set, replaces the engine's matrix-factorisation settings.
	MF *mf.Config
	// Blend, when set, replaces the weights of the sources it names.
	Blend map[string]float32
	// RetrainEvery is, in prequential, how many events pass between two
	// trainings of mf (as the server's schedule would); between them every
	// event is folded in. Default 10,000.
	RetrainEvery int
	// Validation, when set, carves the last share of the training events
	// (by time) out as the test: the real test events are never touched.
	Validation float64
	// Blends, when set (prequential only), scores each of these blends
	// instead of Models, each in one pass (result i is named "blend i"):
	// for tuning the weights.
	Blends []map[string]float32
	// Until, when in (WarmUp, 1), stops the prequential replay at this
	// share of the events: the events after it are never looked at (for
	// tuning on the first part of a data set).
	Until float64
	// Ranker, when set, trains a ranker (package ranker) on the training
	// part exactly as the server trains one on its log, and installs it
	// when it passes its gate: the blend is then what the server would
	// answer after training on its own.
	Ranker   *ranker.Config
	Progress func(done, total int)
}

// ModelResult is one model's metrics at each K.
type ModelResult struct {
	Model   string    `json:"model"`
	Scored  int       `json:"scored"` // users (chrono, leave-last) or events (prequential)
	Metrics []Metrics `json:"metrics"`
	// NewItems scores only what no one had used before (cold start): in
	// chrono and leave-last, for the NewScored test users who have some,
	// the items first seen in the test period; in prequential, the
	// NewScored events that are the first on their item.
	NewScored int       `json:"new_items_scored,omitempty"`
	NewItems  []Metrics `json:"new_items,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Protocol string        `json:"protocol"`
	Users    int           `json:"users"`
	Items    int           `json:"items"`
	Events   int           `json:"events"`
	Seconds  float64       `json:"seconds"`
	Results  []ModelResult `json:"results"`
	// Ranker is the outcome of the ranker's training (Config.Ranker).
	Ranker *RankerOutcome `json:"ranker,omitempty"`
}

// RankerOutcome is what a ranker training did.
type RankerOutcome struct {
	Accepted   bool    `json:"accepted"`
	Reason     string  `json:"reason,omitempty"`
	Candidate  float64 `json:"validation_ndcg"`
	Configured float64 `json:"configured_ndcg"`
	Global     float64 `json:"global_ndcg"`
	// Weights is the fitted weights' objective without the trees (nil: no
	// trees were fitted), Trees the trees kept (0: the weights alone won).
	Weights    *float64 `json:"weights_ndcg,omitempty"`
	Trees      int      `json:"trees"`
	Examples   int      `json:"examples"`
	Seconds    float64  `json:"seconds"`
	FitSeconds float64  `json:"fit_seconds"` // of Seconds: fitting (the rest replays the log and gathers the examples)
	// Trainings is how many ran (prequential: on the schedule the server
	// keeps, each on the events replayed so far; the figures are the
	// last one's).
	Trainings int               `json:"trainings,omitempty"`
	Ranker    *recommend.Ranker `json:"weights,omitempty"`
}

// source is the engine's source name for model ("" for the blend).
func source(model string) string {
	if model == ModelBlend {
		return ""
	}
	return model
}

// Models lists what can be scored on an engine: each of its sources, then
// the blend.
func Models(eng *recommend.Engine) []string { return append(eng.Sources(), ModelBlend) }

// Validate reports an unknown protocol or model (of those known), or a K
// that is not positive, as Run would, without data: the eval command checks
// its flags before it loads a data set.
func (c Config) Validate(known []string) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.checkModels(known)
}

func (c *Config) checkModels(known []string) error {
	if len(c.Models) == 0 {
		c.Models = known
	}
	for _, m := range c.Models {
		if !slices.Contains(known, m) {
			return fmt.Errorf("eval: unknown model %q (%s)", m, strings.Join(known, ", "))
		}
	}
	return nil
}

func (c *Config) check() error {
	switch c.Protocol {
	case Chrono, LeaveLast, Prequential:
	default:
		return fmt.Errorf("eval: unknown protocol %q (chrono, leave-last, prequential)", c.Protocol)
	}
	if len(c.Ks) == 0 {
		c.Ks = Ks
	}
	for _, k := range c.Ks {
		if k <= 0 {
			return fmt.Errorf("eval: K must be positive, got %d", k)
		}
	}
	if c.TrainFraction <= 0 || c.TrainFraction >= 1 {
		c.TrainFraction = 0.8
	}
	if c.HoldOut <= 0 {
		c.HoldOut = 1
	}
	if c.WarmUp <= 0 || c.WarmUp >= 1 {
		c.WarmUp = 0.2
	}
	if c.RetrainEvery <= 0 {
		c.RetrainEvery = 10_000
	}
	return nil
}

// Run evaluates the models on recs (catalogue records first, then events in
// time order, as Records returns them) with a fresh engine from newEngine.
func Run(recs []event.Record, table *event.Table, newEngine func() *recommend.Engine, cfg Config) (Report, error) {
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	eng := newEngine()
	if err := cfg.checkModels(Models(eng)); err != nil {
		return Report{}, err
	}
	var events []event.Record
	var catalogue []event.Record
	users, items := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		if r.Kind == event.KindEvent && r.Event.Item != "" && r.Event.Weight > 0 {
			events = append(events, r)
			users[r.Event.User], items[r.Event.Item] = true, true
		} else if r.Kind != event.KindEvent {
			catalogue = append(catalogue, r)
		}
	}
	switch {
	case len(events) == 0:
		return Report{}, errors.New("eval: the data holds no interactions")
	case len(users) < 2:
		return Report{}, fmt.Errorf("eval: the data holds %d user; at least 2 are needed", len(users))
	case maxK(cfg.Ks) >= len(items):
		return Report{}, fmt.Errorf("eval: K = %d is not below the %d items of the catalogue", maxK(cfg.Ks), len(items))
	}
	start := time.Now()
	rep := Report{Protocol: cfg.Protocol, Users: len(users), Items: len(items), Events: len(events)}
	var err error
	if cfg.Blend != nil {
		eng.SetBlend(cfg.Blend)
	}
	switch cfg.Protocol {
	case Prequential:
		rep.Results, rep.Ranker, err = runPrequential(catalogue, events, table, newEngine, eng, cfg)
	default:
		rep.Results, rep.Ranker, err = runHoldout(catalogue, events, table, newEngine, eng, cfg)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// runHoldout trains on a split and scores each test user's held-out items.
func runHoldout(catalogue, events []event.Record, table *event.Table, newEngine func() *recommend.Engine, eng *recommend.Engine, cfg Config) ([]ModelResult, *RankerOutcome, error) {
	train, test := split(events, cfg)
	var outcome *RankerOutcome
	if cfg.Ranker != nil {
		var err error
		if outcome, err = trainRanker(append(slices.Clip(catalogue), train...), newEngine, eng, *cfg.Ranker, cfg.MF); err != nil {
			return nil, nil, err
		}
	}
	eng.Apply(catalogue)
	eng.Apply(train)
	trained := map[[2]string]bool{}
	popularity := map[string]int{}
	trainItems, trainUsers := map[string]bool{}, map[string]bool{}
	for _, r := range train {
		k := [2]string{r.Event.User, r.Event.Item}
		if !trained[k] {
			trained[k] = true
			popularity[r.Event.Item]++
		}
		trainItems[r.Event.Item], trainUsers[r.Event.User] = true, true
	}
	relevant := map[string]map[string]bool{}
	fresh := map[string]map[string]bool{} // per user: the relevant items training never saw
	var order []string
	askAt := map[string]float64{} // leave-last: each user is asked at their first held-out event
	for _, r := range test {
		u := r.Event.User
		if _, ok := askAt[u]; !ok && cfg.Protocol == LeaveLast {
			askAt[u] = float64(r.Event.Time.UnixNano()) / 1e9
		}
		if !trainUsers[u] || trained[[2]string{u, r.Event.Item}] {
			continue
		}
		if relevant[u] == nil {
			relevant[u] = map[string]bool{}
			order = append(order, u)
		}
		relevant[u][r.Event.Item] = true
		if !trainItems[r.Event.Item] {
			if fresh[u] == nil {
				fresh[u] = map[string]bool{}
			}
			fresh[u][r.Event.Item] = true
		}
	}
	if len(order) == 0 {
		return nil, nil, errors.New("eval: no test user has both training history and new items to find")
	}
	if err := trainMF(eng, cfg); err != nil {
		return nil, nil, err
	}
	results := make([]ModelResult, len(cfg.Models))
	for mi, model := range cfg.Models {
		accs := make([]*accumulator, len(cfg.Ks))
		newAccs := make([]*accumulator, len(cfg.Ks))
		for i, k := range cfg.Ks {
			accs[i] = newAccumulator(k, len(trainItems), func() int { return len(trainUsers) }, popularity)
			newAccs[i] = newAccumulator(k, len(trainItems), func() int { return len(trainUsers) }, popularity)
		}
		for n, u := range order {
			list := names(eng.Recommend(recommend.Request{User: u, N: maxK(cfg.Ks), Source: source(model), At: askAt[u]}))
			for _, a := range accs {
				a.add(list, relevant[u])
			}
			if fresh[u] != nil {
				for _, a := range newAccs {
					a.add(list, fresh[u])
				}
			}
			if cfg.Progress != nil && n%100 == 0 {
				cfg.Progress(mi*len(order)+n, len(cfg.Models)*len(order))
			}
		}
		results[mi] = ModelResult{Model: model, Scored: len(order), Metrics: collect(accs)}
		if len(fresh) > 0 {
			results[mi].NewScored, results[mi].NewItems = len(fresh), collect(newAccs)
		}
	}
	return results, outcome, nil
}

// split divides the events for chrono or leave-last. With Validation set
// (chrono), both parts come from the training period: the test events are
// never looked at.
func split(events []event.Record, cfg Config) (train, test []event.Record) {
	if cfg.Protocol == Chrono {
		cut := int(float64(len(events)) * cfg.TrainFraction)
		train, test = events[:cut], events[cut:]
		if cfg.Validation > 0 {
			vcut := int(float64(cut) * (1 - cfg.Validation))
			train, test = events[:vcut], events[vcut:cut]
		}
	} else {
		// The last HoldOut interactions of each user are held out.
		count := map[string]int{}
		for _, r := range events {
			count[r.Event.User]++
		}
		seen := map[string]int{}
		for _, r := range events {
			u := r.Event.User
			seen[u]++
			if count[u]-seen[u] < cfg.HoldOut {
				test = append(test, r)
			} else {
				train = append(train, r)
			}
		}
	}
	return train, test
}

// runPrequential replays every event in time order; before each event after
// the warm-up, each model's top-K for that user is scored against the
// event's item (repeat consumptions are not scored), then the event is
// applied.
func runPrequential(catalogue, events []event.Record, table *event.Table, newEngine func() *recommend.Engine, eng *recommend.Engine, cfg Config) ([]ModelResult, *RankerOutcome, error) {
	warm := int(float64(len(events)) * cfg.WarmUp)
	eng.Apply(catalogue)
	eng.Apply(events[:warm])
	consumed := map[[2]string]bool{}
	popularity := map[string]int{}
	users := map[string]bool{}
	note := func(r *event.Record) {
		k := [2]string{r.Event.User, r.Event.Item}
		if !consumed[k] {
			popularity[r.Event.Item]++
		}
		consumed[k] = true
		users[r.Event.User] = true
	}
	for i := range events[:warm] {
		note(&events[i])
	}
	if err := trainMF(eng, cfg); err != nil {
		return nil, nil, err
	}
	allItems := map[string]bool{}
	for _, r := range events {
		allItems[r.Event.Item] = true
	}
	labels := cfg.Models
	if cfg.Blends != nil {
		labels = nil
		for i := range cfg.Blends {
			labels = append(labels, fmt.Sprintf("blend %d", i))
		}
	}
	end := len(events)
	if cfg.Until > cfg.WarmUp && cfg.Until < 1 {
		end = int(float64(len(events)) * cfg.Until)
	}
	accs := make([][]*accumulator, len(labels))
	newAccs := make([][]*accumulator, len(labels)) // events on an item no event touched before
	for mi := range labels {
		for _, k := range cfg.Ks {
			accs[mi] = append(accs[mi], newAccumulator(k, len(allItems), func() int { return len(users) }, popularity))
			newAccs[mi] = append(newAccs[mi], newAccumulator(k, len(allItems), func() int { return len(users) }, popularity))
		}
	}
	touched := map[string]bool{}
	for _, r := range events[:warm] {
		touched[r.Event.Item] = true
	}
	newScored := 0
	sources := make([]string, len(cfg.Models))
	for mi, model := range cfg.Models {
		sources[mi] = source(model)
	}
	scored := 0
	var nextRanker uint64 = math.MaxUint64
	var outcome *RankerOutcome
	trainings := 0
	if cfg.Ranker != nil {
		nextRanker = cfg.Ranker.Next(0)
		if n := uint64(len(catalogue) + warm); n >= nextRanker {
			var err error
			if outcome, err = trainRanker(append(slices.Clip(catalogue), events[:warm]...), newEngine, eng, *cfg.Ranker, cfg.MF); err != nil {
				return nil, nil, err
			}
			nextRanker = cfg.Ranker.Next(n)
			trainings++
		}
	}
	for i := warm; i < end; i++ {
		r := &events[i]
		if !consumed[[2]string{r.Event.User, r.Event.Item}] {
			scored++
			rel := map[string]bool{r.Event.Item: true}
			var lists [][]recommend.Scored
			if cfg.Blends != nil {
				lists = eng.RecommendBlends(r.Event.User, maxK(cfg.Ks), cfg.Blends)
			} else {
				lists = eng.RecommendEach(r.Event.User, maxK(cfg.Ks), sources)
			}
			first := !touched[r.Event.Item]
			if first {
				newScored++
			}
			for mi, list := range lists {
				for _, a := range accs[mi] {
					a.add(names(list), rel)
				}
				if first {
					for _, a := range newAccs[mi] {
						a.add(names(list), rel)
					}
				}
			}
		}
		touched[r.Event.Item] = true
		note(r)
		eng.Apply(events[i : i+1])
		if (i+1-warm)%cfg.RetrainEvery == 0 {
			if err := trainMF(eng, cfg); err != nil {
				return nil, nil, err
			}
		}
		if cfg.Ranker != nil && uint64(len(catalogue)+i+1) >= nextRanker {
			log := append(slices.Clip(catalogue), events[:i+1]...)
			var err error
			if outcome, err = trainRanker(log, newEngine, eng, *cfg.Ranker, cfg.MF); err != nil {
				return nil, nil, err
			}
			nextRanker = cfg.Ranker.Next(uint64(len(log)))
			trainings++
		}
		if cfg.Progress != nil && i%1000 == 0 {
			cfg.Progress(i-warm, end-warm)
		}
	}
	results := make([]ModelResult, len(labels))
	for mi, model := range labels {
		results[mi] = ModelResult{Model: model, Scored: scored, Metrics: collect(accs[mi])}
		if newScored > 0 {
			results[mi].NewScored, results[mi].NewItems = newScored, collect(newAccs[mi])
		}
	}
	if outcome != nil {
		outcome.Trainings = trainings
	}
	return results, outcome, nil
}

// trainRanker trains a ranker on recs as the server would on its log and
// installs it in eng when it passes its gate.
func trainRanker(recs []event.Record, newEngine func() *recommend.Engine, eng *recommend.Engine, cfg ranker.Config, mfCfg *mf.Config) (*RankerOutcome, error) {
	// The replayed engine is the one evaluated, but fresh: the same blend
	// (eval's Blend or --grid may have set it) and mf settings.
	blend := eng.Blend()
	fresh := func() *recommend.Engine {
		e := newEngine()
		e.SetBlend(blend)
		return e
	}
	if mfCfg != nil {
		cfg.MF = mfCfg
	}
	res, err := ranker.Train(context.Background(), ranker.Records(recs), uint64(len(recs)), fresh, eng.Ranker(), cfg)
	out := &RankerOutcome{Accepted: res.Accepted, Reason: res.Reason, Candidate: res.Candidate, Configured: res.Configured,
		Global: res.Global, Trees: res.Trees, Examples: res.Examples, Seconds: res.Took.Seconds(), FitSeconds: (res.Took - res.Collecting).Seconds(), Ranker: res.Ranker}
	if !math.IsNaN(res.Weights) {
		out.Weights = &res.Weights
	}
	if errors.Is(err, ranker.ErrTooFew) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if res.Accepted {
		if err := eng.SetRanker(res.Ranker); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// trainMF trains the engine's mf on what it has applied, when a model to
// score needs it.
func trainMF(eng *recommend.Engine, cfg Config) error {
	if !slices.Contains(cfg.Models, ModelMF) && !slices.Contains(cfg.Models, ModelBlend) && cfg.Blends == nil {
		return nil
	}
	_, err := eng.TrainMF(context.Background(), cfg.MF, nil)
	if errors.Is(err, als.ErrNothing) {
		return nil // nothing to learn from yet: mf recommends nothing
	}
	return err
}

func names(s []recommend.Scored) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Item
	}
	return out
}

func collect(accs []*accumulator) []Metrics {
	out := make([]Metrics, len(accs))
	for i, a := range accs {
		out[i] = a.metrics()
	}
	return out
}
