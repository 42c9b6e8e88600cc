package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/ranker"
	"github.com/streamrec/streamrec/recommend"
)

// RankerFile is where the serving ranker is kept, under the data directory.
func RankerFile(data string) string { return filepath.Join(data, "models", "ranker.json") }

// savedRanker is the ranker file: the weights and how they were chosen.
type savedRanker struct {
	Ranker     *recommend.Ranker `json:"ranker"`
	TrainedAt  time.Time         `json:"trained_at"`
	Records    uint64            `json:"records"`
	Validation float64           `json:"validation_ndcg"`
	Configured float64           `json:"configured_ndcg"`
	Examples   int               `json:"examples"`
}

// rankTrainer learns the ranker in the background (package ranker): once
// the log holds ranker.first_train_records, then each time it doubles until
// trainings are ranker.train_every_records apart, after
// ranker.train_every when the log has grown, and as soon as ingestion has
// been quiet for ranker.quiet after a bulk load. A training replays the log
// into an engine of its own — serving and ingestion go on — and the new
// ranker is saved, then installed, only when it beats the serving one and
// the configured blend on the newest examples; otherwise the log says why.
type rankTrainer struct {
	n         *Node
	newEngine func() *recommend.Engine
	cfg       ranker.Config

	tried uint64 // records of the saved ranker's training (the schedule counts from it)

	mu         sync.Mutex // guards the figures below, read by the metrics
	trainedAt  time.Time
	records    uint64  // log records the serving ranker was trained on
	serving    float64 // validation NDCG of the serving ranker when it was chosen (NaN: none)
	candidate  float64 // of the last ranker trained
	candRecs   uint64  // log records the last ranker trained (installed or not) was trained on
	took       time.Duration
	trainings  atomic.Uint64
	rejections atomic.Uint64
}

// loadRanker installs the saved ranker, if there is one and it fits the
// configured sources.
func (n *Node) loadRanker() (*savedRanker, bool) {
	path := RankerFile(n.cfg.Data)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	var s savedRanker
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err == nil {
		err = n.Engine.SetRanker(s.Ranker)
	}
	if err != nil {
		n.log.Warn("ranker: the saved ranker is unusable; the configured blend serves until the next training", "path", path, "err", err)
		return nil, false
	}
	n.log.Info("ranker: saved ranker loaded", "records", s.Records, "trained_at", s.TrainedAt.Format(time.RFC3339), "validation_ndcg", s.Validation)
	return &s, true
}

// saveRanker writes the ranker file (a temporary file, synced, renamed).
func (n *Node) saveRanker(s *savedRanker) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteModelFile(RankerFile(n.cfg.Data), func(f *os.File) error {
		_, err := f.Write(b)
		return err
	})
}

func newRankTrainer(n *Node, newEngine func() *recommend.Engine) *rankTrainer {
	t := &rankTrainer{n: n, newEngine: newEngine, cfg: n.cfg.RankerConfig(), serving: math.NaN(), candidate: math.NaN()}
	if s, ok := n.loadRanker(); ok {
		t.trainedAt, t.serving, t.tried, t.records = s.TrainedAt, s.Validation, min(s.Records, n.Engine.Applied()), s.Records
	}
	return t
}

// metrics registers the ranker's gauges and counters.
func (t *rankTrainer) metrics() {
	m := t.n.Metrics
	m.GaugeLabelled("streamrec_ranker_validation_ndcg", "The fitted objective (ranker.next_share of the next item's NDCG@10, the rest of the horizon's) on the newest examples, of the serving ranker when it was chosen and of the last one trained.", "ranker", func() map[string]float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		out := map[string]float64{}
		if !math.IsNaN(t.serving) {
			out["serving"] = t.serving
		}
		if !math.IsNaN(t.candidate) {
			out["candidate"] = t.candidate
		}
		return out
	})
	m.Gauge("streamrec_ranker_age_seconds", "Seconds since the serving ranker was trained (0: none, the configured blend serves).", func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.trainedAt.IsZero() {
			return 0
		}
		return time.Since(t.trainedAt).Seconds()
	})
	m.Gauge("streamrec_ranker_trained_records", "Log records the serving ranker was trained on (0: none).", func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(t.records)
	})
	m.Gauge("streamrec_ranker_candidate_records", "Log records the last ranker trained, installed or not, was trained on (0: none).", func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(t.candRecs)
	})
	m.Gauge("streamrec_ranker_training_seconds", "How long the last ranker training took.", func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.took.Seconds()
	})
	m.Gauge("streamrec_ranker_trees", "Boosted trees in the serving ranker (0: its weights alone, or no ranker).", func() float64 {
		if r := t.n.Engine.Ranker(); r != nil && r.Forest != nil {
			return float64(len(r.Forest.Trees))
		}
		return 0
	})
	m.Counter("streamrec_ranker_trainings_total", "Ranker trainings finished since start.", func() float64 { return float64(t.trainings.Load()) })
	m.Counter("streamrec_ranker_rejections_total", "Rankers trained but not installed: they did not beat the serving ranker and the configured blend.", func() float64 { return float64(t.rejections.Load()) })
}

// run checks the schedule every tick until ctx is done.
func (t *rankTrainer) run(ctx context.Context, tick time.Duration) {
	c := t.n.cfg.Ranker
	s := schedule{leads: t.n.leads, next: t.cfg.Next, every: time.Duration(c.TrainEvery), quiet: time.Duration(c.Quiet), quietRecords: c.QuietRecords, prefix: true}
	s.run(ctx, tick, t.n.Engine.Applied, t.tried, func(records uint64) { t.train(ctx, records) })
}

// train runs one training over the first records of the log.
func (t *rankTrainer) train(ctx context.Context, records uint64) {
	n := t.n
	if !n.leads() {
		return // in a cluster, the elected replica trains
	}
	n.trainMu.Lock()
	defer n.trainMu.Unlock()
	n.log.Info("ranker: training started", "records", records)
	replay := func(fn func(event.Record) error) error {
		return n.Store.Replay(0, func(_ uint64, r event.Record) error { return fn(r) })
	}
	res, err := ranker.Train(ctx, replay, records, t.newEngine, n.Engine.Ranker(), t.cfg)
	switch {
	case ctx.Err() != nil:
		n.log.Info("ranker: training stopped by shutdown; the serving ranker stays")
		return
	case errors.Is(err, ranker.ErrTooFew):
		n.log.Info("ranker: too few examples yet; the serving ranker stays", "reason", res.Reason)
		return
	case err != nil:
		n.log.Error("ranker: training failed; the serving ranker stays", "err", err)
		return
	}
	// The counter moves once the outcome is final: a scrape that sees the
	// training counted sees its ranker serving, rejected, or (logged) not
	// saved.
	defer t.trainings.Add(1)
	t.mu.Lock()
	t.candidate, t.took, t.candRecs = res.Candidate, res.Took, res.Records
	t.mu.Unlock()
	if !res.Accepted {
		t.rejections.Add(1)
		n.log.Info("ranker: trained but not installed", "reason", res.Reason, "examples", res.Examples, "from_impressions", res.Shown, "took", res.Took.Round(time.Millisecond))
		return
	}
	if err := res.Ranker.Validate(); err != nil {
		n.log.Error("ranker: the trained ranker is unusable; the serving one stays", "err", err)
		return
	}
	s := &savedRanker{Ranker: res.Ranker, TrainedAt: time.Now().UTC(), Records: res.Records, Validation: res.Candidate, Configured: res.Configured, Examples: res.Examples}
	if err := n.saveRanker(s); err != nil {
		n.log.Error("ranker: cannot save the ranker; the serving one stays", "err", err)
		return
	}
	if err := n.Engine.SetRanker(res.Ranker); err != nil {
		n.log.Error("ranker: cannot install the ranker", "err", err)
		return
	}
	n.Hub.All()
	n.publish(RankerFile(n.cfg.Data))
	t.mu.Lock()
	t.trainedAt, t.serving, t.records = s.TrainedAt, res.Candidate, s.Records
	t.mu.Unlock()
	n.log.Info("ranker: installed", "validation_ndcg", fmt.Sprintf("%.4f", res.Candidate), "configured_ndcg", fmt.Sprintf("%.4f", res.Configured),
		"serving_ndcg", fmt.Sprintf("%.4f", res.Serving), "weights_alone_ndcg", fmt.Sprintf("%.4f", res.Weights), "trees", res.Trees, "examples", res.Examples, "from_impressions", res.Shown, "records", res.Records, "took", res.Took.Round(time.Millisecond))
}
