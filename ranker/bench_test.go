package ranker_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/ranker"
	"github.com/streamrec/streamrec/recommend"
)

// BenchmarkTrain1M is one training of the default configuration on a log
// of 1M events of ml-1m's shape (6,040 users, 3,706 items): the replay
// into an engine of its own, mf trained where the examples begin, the
// examples, the fit and the gate.
//
//	go test ./ranker -run XXX -bench Train1M -benchtime 1x
func BenchmarkTrain1M(b *testing.B) {
	tb, _ := event.Preset(event.PresetEcommerce)
	in := dataset.Synthetic(dataset.SynthConfig{Users: 6040, Items: 3706, Events: 1_000_000, Seed: 1})
	p := pipeline.New(pipeline.DefaultConfig(tb))
	recs := make([]event.Record, 0, len(in))
	for i := range in {
		ev, err := p.Process(&in[i], time.Now())
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
	}
	cfg := config.Default()
	newEngine := func() *recommend.Engine { return recommend.New(cfg.EngineConfig(tb)) }
	replay := ranker.Records(recs)
	for b.Loop() {
		res, err := ranker.Train(context.Background(), replay, uint64(len(recs)), newEngine, nil, cfg.RankerConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Examples), "examples")
		b.ReportMetric(res.Took.Seconds(), "s/training")
		b.ReportMetric(float64(res.Trees), "trees")
		b.Logf("accepted %v (%s): validation %.4f (weights alone %.4f), configured %.4f, one row %.4f; fitting %.1fs", res.Accepted, res.Reason, res.Candidate, res.Weights, res.Configured, res.Global, (res.Took - res.Collecting).Seconds())
	}
}
