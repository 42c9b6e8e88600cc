package mf

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamrec/streamrec/bench"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/ann"
)

// TestANNRecallAt10: above the threshold, retrieval goes through the HNSW
// index and still finds at least 95% of the exact top 10 by dot product,
// for users' vectors against trained item factors.
func TestANNRecallAt10(t *testing.T) {
	users, items, n := 12000, 12000, 400_000
	if testing.Short() || shared.Race {
		users, items, n = 3000, 3000, 100_000
	}
	entries := bench.Interactions(users, items, n, 3)
	d := Data{Users: users, Items: items, Entries: entries, Versions: make([]uint32, users)}
	cfg := Config{ALS: als.Config{Factors: 64, Lambda: 20, Alpha: 3, Iterations: 5}, ANNThreshold: 1}
	tr, err := Train(context.Background(), d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Index == nil {
		t.Fatal("no index built above the threshold")
	}
	m := New(cfg)
	m.Install(tr, users, nil)
	exact := New(Config{ALS: cfg.ALS, ANNThreshold: -1})
	trExact := *tr
	trExact.Index = nil
	exact.Install(&trExact, users, nil)

	rng := rand.New(rand.NewPCG(5, 6))
	var sum float64
	const queries = 200
	none := func(int32) bool { return false }
	for range queries {
		x := tr.Model.UserVec(rng.IntN(users))
		got := m.Candidates(x, 10, 0, none, nil)
		want := exact.Candidates(x, 10, 0, none, nil)
		hit := 0
		for _, w := range want {
			if slices.ContainsFunc(got, func(g Scored) bool { return g.Item == w.Item }) {
				hit++
			}
		}
		sum += float64(hit) / float64(len(want))
	}
	r := sum / queries
	t.Logf("recall@10 of the index over %d trained items, %d queries: %.4f", tr.Index.Len(), queries, r)
	if r < 0.95 {
		t.Fatalf("recall@10 %.4f below 0.95", r)
	}
}

// TestCandidatesSkipAndOrder: candidates come best first, never a skipped
// item, exact and approximate alike, and the approximate path widens its
// search when most of what it finds is skipped.
func TestCandidatesSkipAndOrder(t *testing.T) {
	entries := bench.Interactions(500, 800, 20_000, 9)
	d := Data{Users: 500, Items: 800, Entries: entries, Versions: make([]uint32, 500)}
	for _, threshold := range []int{-1, 1} {
		cfg := Config{ALS: als.Config{Factors: 16, Iterations: 3}, ANNThreshold: threshold}
		tr, err := Train(context.Background(), d, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := New(cfg)
		m.Install(tr, 500, nil)
		x := tr.Model.UserVec(7)
		all := m.Candidates(x, 200, 0, func(int32) bool { return false }, nil)
		skipTop := map[int32]bool{}
		for _, c := range all[:150] {
			skipTop[c.Item] = true
		}
		got := m.Candidates(x, 20, 0, func(it int32) bool { return skipTop[it] }, nil)
		if len(got) != 20 {
			t.Fatalf("threshold %d: %d candidates after skipping the best 150", threshold, len(got))
		}
		for i, c := range got {
			if skipTop[c.Item] {
				t.Fatalf("threshold %d: skipped item %d returned", threshold, c.Item)
			}
			if i > 0 && c.Score > got[i-1].Score {
				t.Fatalf("threshold %d: not best first: %v", threshold, got)
			}
		}
	}
}

// benchModel trains on 27,000 items (the 20M benchmark's catalogue) once.
func benchModel(b *testing.B, threshold int) (*Model, *Trained) {
	entries := bench.Interactions(20000, 27000, 600_000, 4)
	d := Data{Users: 20000, Items: 27000, Entries: entries, Versions: make([]uint32, 20000)}
	cfg := Config{ALS: als.Config{Factors: 64, Lambda: 20, Alpha: 3, Iterations: 3}, ANNThreshold: threshold}
	tr, err := Train(context.Background(), d, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := New(cfg)
	m.Install(tr, 20000, nil)
	return m, tr
}

func benchCandidates(b *testing.B, threshold int) {
	m, tr := benchModel(b, threshold)
	none := func(int32) bool { return false }
	out := make([]Scored, 0, 27000)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		out = m.Candidates(tr.Model.UserVec(i%20000), 30, 0, none, out[:0])
		i++
	}
}

// BenchmarkCandidatesExact27k: the top 30 of 27,000 items by dot product,
// every item scored (64 factors).
func BenchmarkCandidatesExact27k(b *testing.B) { benchCandidates(b, -1) }

// BenchmarkCandidatesANN27k: the same through the HNSW index.
func BenchmarkCandidatesANN27k(b *testing.B) { benchCandidates(b, 1) }

// BenchmarkIndexBuild27k: building the HNSW index over 27,000 item vectors.
func BenchmarkIndexBuild27k(b *testing.B) {
	_, tr := benchModel(b, -1)
	b.ResetTimer()
	for b.Loop() {
		ann.Build(tr.Model.Items, 64, ann.Config{})
	}
}
