package lambdamart

import (
	"context"
	"testing"
)

// BenchmarkPredict is one Predict call (one row) on 100 trees of depth 4
// over 25 features.
func BenchmarkPredict(b *testing.B) {
	const F = 25
	f := randomForest(1, 100, 4, F)
	d := synth(1, 1, 50, F, 10)
	b.ReportAllocs()
	var sink float32
	for i := 0; b.Loop(); i++ {
		sink += f.Predict(row(d, i%50))
	}
	if sink == 12345 {
		b.Log(sink)
	}
}

// BenchmarkContributions is one Contributions call on the same forest.
func BenchmarkContributions(b *testing.B) {
	const F = 25
	f := randomForest(1, 100, 4, F)
	d := synth(1, 1, 50, F, 10)
	dst := make([]float32, F)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Contributions(row(d, i%50), dst)
	}
}

// BenchmarkTrain trains 100 trees on 3,000 queries × 50 rows × 25 features
// (run with -benchtime 1x).
func BenchmarkTrain(b *testing.B) {
	d := synth(7, 3000, 50, 25, 10)
	b.ReportAllocs()
	for b.Loop() {
		f, st, err := Train(context.Background(), d, Config{Trees: 100})
		if err != nil {
			b.Fatal(err)
		}
		if len(f.Trees) != 100 {
			b.Fatalf("%d trees, want 100", len(f.Trees))
		}
		b.ReportMetric(st.TrainScore, "ndcg")
	}
}

// BenchmarkPredict50 scores a request's 50 candidates on the same forest,
// row by row (Predict), tree by tree (PredictRows) and padded (Compiled).
func BenchmarkPredict50(b *testing.B) {
	const F = 25
	f := randomForest(1, 100, 4, F)
	d := synth(1, 1, 50, F, 10)
	dst := make([]float32, 50)
	b.Run("rows", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range dst {
				dst[i] = f.Predict(row(d, i))
			}
		}
	})
	b.Run("trees", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.PredictRows(d.X, F, dst)
		}
	})
	c := f.Compile()
	b.Run("compiled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.PredictRows(d.X, F, dst)
		}
	})
}
