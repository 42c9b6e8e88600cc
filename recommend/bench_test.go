package recommend_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/lambdamart"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
)

func synthRecords(b *testing.B, events int) ([]event.Input, *pipeline.Pipeline, *event.Table) {
	tb, _ := event.Preset(event.PresetEcommerce)
	in := dataset.Synthetic(dataset.SynthConfig{Users: 6040, Items: 3706, Events: events, Seed: 1})
	return in, pipeline.New(pipeline.DefaultConfig(tb)), tb
}

// BenchmarkPipelineAndApply measures the in-process ingest path without the
// disk, arranged as in the server: the pipeline (validate, clean, fill,
// weight) runs on the request side, here one producer goroutine, while the
// single writer de-duplicates and applies batches of 500 to every model.
// "default" is the served configuration (retention: 1,000 events a user);
// "keep-all" keeps every event, as the figures before retention; "three"
// runs only item_knn, trending and mf, keeping every event (the engine
// before the session and content sources), for the ratio.
func BenchmarkPipelineAndApply(b *testing.B) {
	const n, batchSize = 1_000_000, 500
	inputs, p, tb := synthRecords(b, n)
	for _, v := range []struct {
		name    string
		keepAll bool
		only    []string
	}{
		{"default", false, nil},
		{"keep-all", true, nil},
		{"three", true, []string{"item_knn", "trending", "mf"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			now := time.Now()
			var total int
			for b.Loop() {
				b.StopTimer()
				c := config.Default()
				if v.keepAll {
					c.Retention.MaxEventsPerUser = 0
				}
				ec := c.EngineConfig(tb)
				if v.only != nil {
					ec.Models = slices.DeleteFunc(ec.Models, func(m model.Model) bool { return !slices.Contains(v.only, m.Name()) })
				}
				e := recommend.New(ec)
				d := pipeline.NewDedup(pipeline.DefaultDedupConfig())
				batches := make(chan []event.Record, 8)
				b.StartTimer()
				go func() {
					defer close(batches)
					for i := 0; i < len(inputs); i += batchSize {
						batch := make([]event.Record, 0, batchSize)
						for k := i; k < min(i+batchSize, len(inputs)); k++ {
							ev, err := p.Process(&inputs[k], now)
							if err != nil {
								panic(err)
							}
							batch = append(batch, event.Record{Kind: event.KindEvent, Event: ev})
						}
						batches <- batch
					}
				}()
				for batch := range batches {
					kept := batch[:0]
					for i := range batch {
						if !d.Duplicate(&batch[i].Event) {
							kept = append(kept, batch[i])
						}
					}
					e.Apply(kept)
				}
				total += n
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMemoryPerEvent applies 1M events of ml-1m shape (synthetic:
// 6,040 users, 3,706 items) to the default models, every event kept, and
// reports the bytes each model holds per event.
func BenchmarkMemoryPerEvent(b *testing.B) {
	const n = 1_000_000
	inputs, p, tb := synthRecords(b, n)
	now := time.Now()
	recs := make([]event.Record, 0, n)
	for i := range inputs {
		ev, _ := p.Process(&inputs[i], now)
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
	}
	inputs = nil
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e := newKeepAll(tb)
		e.Apply(recs)
		live := e.Memory()
		e.Compact() // what a rebuild at start leaves
		runtime.GC()
		runtime.ReadMemStats(&after)
		m := e.Memory()
		b.ReportMetric(float64(live.History)/n, "history-live-B/event")
		b.ReportMetric(float64(m.History)/n, "history-B/event")
		for _, name := range slices.Sorted(maps.Keys(m.Models)) {
			b.ReportMetric(float64(m.Models[name])/n, name+"-B/event")
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/event")
		runtime.KeepAlive(e)
	}
}

func loadMLLatest(b *testing.B) (*recommend.Engine, []string) {
	return loadMLLatestInto(b, newDefault)
}

// loadMLLatestInto is loadMLLatest into the engine newEngine makes.
func loadMLLatestInto(b *testing.B, newEngine func(*event.Table) *recommend.Engine) (*recommend.Engine, []string) {
	d, err := dataset.Load(shared.Dataset(b, "ml-latest-small"), nil)
	if err != nil {
		b.Fatal(err)
	}
	tb, _ := event.Preset(event.PresetEcommerce)
	p := pipeline.New(pipeline.DefaultConfig(tb))
	e := newEngine(tb)
	var recs []event.Record
	for _, it := range d.Items {
		recs = append(recs, event.Record{Kind: event.KindItemPut, Item: it})
	}
	users := map[string]bool{}
	var order []string
	for i := range d.Events {
		ev, err := p.Process(&d.Events[i], time.Now())
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, event.Record{Kind: event.KindEvent, Event: ev})
		if !users[ev.User] {
			users[ev.User] = true
			order = append(order, ev.User)
		}
	}
	e.Apply(recs)
	return e, order
}

// BenchmarkRecommend is one recommendation request in process, with
// ml-latest-small loaded, cycling through its users (warm neighbour lists).
func BenchmarkRecommend(b *testing.B) {
	e, users := loadMLLatest(b)
	benchWarm(b, e, users)
}

// BenchmarkRecommendCached is BenchmarkRecommend with the default answer
// cache: nothing is written, so after the first round every request is
// served from it.
func BenchmarkRecommendCached(b *testing.B) {
	e, users := loadMLLatestInto(b, func(tb *event.Table) *recommend.Engine {
		c := config.Default()
		return recommend.New(c.EngineConfig(tb))
	})
	benchWarm(b, e, users)
	if h, m := e.AnswerStats(); h == 0 || m > uint64(len(users)) {
		b.Fatalf("answer cache: %d hits, %d misses for %d users", h, m, len(users))
	}
}

// benchWarm asks once for every user (warming neighbour lists, mf vectors
// and candidate lists), then measures requests cycling through them.
func benchWarm(b *testing.B, e *recommend.Engine, users []string) {
	for _, u := range users {
		e.Recommend(recommend.Request{User: u, N: 10})
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		e.Recommend(recommend.Request{User: users[i%len(users)], N: 10})
		i++
	}
}

// BenchmarkRecommendWithRanker is BenchmarkRecommend with a ranker
// installed (four buckets by the time since the user's latest event): the
// ranker's part of a request is one lookup.
func BenchmarkRecommendWithRanker(b *testing.B) {
	e, users := loadMLLatest(b)
	names := e.Sources()
	rows := make([][]float32, 4)
	for k := range rows {
		rows[k] = make([]float32, len(names))
		for j := range names {
			rows[k][j] = float32(1 + (j+k)%3)
		}
	}
	if err := e.SetRanker(&recommend.Ranker{Sources: names, Gaps: []float64{1800, 86400, 7 * 86400}, Weights: rows}); err != nil {
		b.Fatal(err)
	}
	benchWarm(b, e, users)
}

// synthForest is a forest of the shape the ranker trains at most (trees
// of depth 4, complete) over the engine's features, with random splits: a
// forest's cost depends on its shape alone.
func synthForest(e *recommend.Engine, trees int) *recommend.Ranker {
	names := e.FeatureNames()
	rng := rand.New(rand.NewPCG(1, 2))
	f := &lambdamart.Forest{F: len(names)}
	for range trees {
		nodes := make([]lambdamart.Node, 31)
		for i := range nodes {
			if i < 15 {
				nodes[i] = lambdamart.Node{Feature: int32(rng.IntN(len(names))), Threshold: rng.Float32(), Left: int32(2*i + 1), Right: int32(2*i + 2)}
			} else {
				nodes[i] = lambdamart.Node{Feature: -1, Value: rng.Float32() - 0.5}
			}
		}
		f.Trees = append(f.Trees, lambdamart.Tree{Nodes: nodes})
	}
	w := make([]float32, len(e.Sources()))
	for i := range w {
		w[i] = 1
	}
	return &recommend.Ranker{Sources: e.Sources(), Weights: [][]float32{w}, Forest: f, Features: names, Pool: 50}
}

// BenchmarkRecommendWithForest is BenchmarkRecommend with a ranker whose
// 100 trees rerank the blend's best 50 candidates: the features of each
// and the forest's walk.
func BenchmarkRecommendWithForest(b *testing.B) {
	e, users := loadMLLatest(b)
	if err := e.SetRanker(synthForest(e, 100)); err != nil {
		b.Fatal(err)
	}
	benchWarm(b, e, users)
}

// BenchmarkRank200WithForest ranks a list of 200 items for one user under
// a ranker of 100 trees: every listed item gets its features and the
// forest's score.
func BenchmarkRank200WithForest(b *testing.B) {
	e, users := loadMLLatest(b)
	if err := e.SetRanker(synthForest(e, 100)); err != nil {
		b.Fatal(err)
	}
	benchRank(b, e, users, 200)
}

// BenchmarkRecommendAfterWrite alternates one event and one request for the
// same user: the neighbour lists the event touched are recomputed on read.
func BenchmarkRecommendAfterWrite(b *testing.B) {
	e, users := loadMLLatest(b)
	benchAfterWrite(b, e, users)
}

// benchAfterWrite alternates one event and one request for the same user.
func benchAfterWrite(b *testing.B, e *recommend.Engine, users []string) {
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		u := users[i%len(users)]
		e.Apply([]event.Record{{Kind: event.KindEvent, Event: event.Event{User: u, Item: fmt.Sprint(1 + i%3000), Type: event.Rating, Weight: 1, Time: time.Unix(1600000000+int64(i), 0)}}})
		e.Recommend(recommend.Request{User: u, N: 10})
		i++
	}
}

// loadMLLatestMF is loadMLLatest with mf trained (defaults: 64 factors;
// 9,742 items, so retrieval goes through the HNSW index).
func loadMLLatestMF(b *testing.B) (*recommend.Engine, []string) {
	e, users := loadMLLatest(b)
	if _, err := e.TrainMF(context.Background(), nil, nil); err != nil {
		b.Fatal(err)
	}
	return e, users
}

// BenchmarkRecommendWithMF is Recommend with a trained mf model in the
// blend, user vectors current and each user's candidates cached.
func BenchmarkRecommendWithMF(b *testing.B) {
	e, users := loadMLLatestMF(b)
	benchWarm(b, e, users)
}

// BenchmarkRecommendWithMFAfterWrite alternates one event and one request
// for the same user with mf trained: each request folds the user in again.
func BenchmarkRecommendWithMFAfterWrite(b *testing.B) {
	e, users := loadMLLatestMF(b)
	benchAfterWrite(b, e, users)
}

// newDefault is an engine with the server's default models and blend,
// its answer cache off: the benchmarks measure answers computed (see
// BenchmarkRecommendCached).
func newDefault(tb *event.Table) *recommend.Engine {
	c := config.Default()
	c.AnswerCache = 0
	return recommend.New(c.EngineConfig(tb))
}

// newKeepAll is newDefault with every event kept (no retention).
func newKeepAll(tb *event.Table) *recommend.Engine {
	c := config.Default()
	c.AnswerCache = 0
	c.Retention.MaxEventsPerUser = 0
	return recommend.New(c.EngineConfig(tb))
}

// BenchmarkRank100 ranks a list of 100 items (a feed) for one user, with
// ml-latest-small loaded.
func BenchmarkRank100(b *testing.B) {
	e, users := loadMLLatest(b)
	benchRank(b, e, users, 100)
}

// benchRank ranks a list of n items, cycling through the users.
func benchRank(b *testing.B, e *recommend.Engine, users []string, n int) {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(1 + i*37)
	}
	for _, u := range users {
		e.Rank(recommend.RankRequest{User: u, Items: items})
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		e.Rank(recommend.RankRequest{User: users[i%len(users)], Items: items})
		i++
	}
}

// BenchmarkRecommendEachSource is one request answered by each source
// alone, so the table shows where a blended request's time goes.
func BenchmarkRecommendEachSource(b *testing.B) {
	e, users := loadMLLatest(b)
	for _, src := range e.Sources() {
		b.Run(src, func(b *testing.B) {
			for _, u := range users {
				e.Recommend(recommend.Request{User: u, N: 10, Source: src})
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				e.Recommend(recommend.Request{User: users[i%len(users)], N: 10, Source: src})
				i++
			}
		})
	}
}
