package trending

import (
	"math/rand/v2"
	"testing"
)

// benchEvents: a Zipf-skewed stream over 100k items, one second apart.
func benchEvents(n int, neg float64) ([]int32, []float32) {
	rng := rand.New(rand.NewPCG(7, 8))
	z := rand.NewZipf(rng, 1.1, 2, 100_000-1)
	items := make([]int32, n)
	ws := make([]float32, n)
	for i := range items {
		items[i] = int32(z.Uint64())
		ws[i] = 1
		if rng.Float64() < neg {
			ws[i] = -1
		}
	}
	return items, ws
}

// BenchmarkApplyPositive: the common path, positive weights only.
func BenchmarkApplyPositive(b *testing.B) {
	items, ws := benchEvents(1<<20, 0)
	m := New(Config{HalfLifeSeconds: 7 * 24 * 3600, TopSize: 500})
	for i := range items {
		m.Apply(items[i], ws[i], float64(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i & (len(items) - 1)
		m.Apply(items[k], ws[k], float64(len(items)+i))
	}
}

// BenchmarkApplyRetention: 10% negative weights, and every event is removed
// again 100k events later (a retention window).
func BenchmarkApplyRetention(b *testing.B) {
	items, ws := benchEvents(1<<20, 0.1)
	const window = 100_000
	m := New(Config{HalfLifeSeconds: 7 * 24 * 3600, TopSize: 500})
	for i := range items[:window] {
		m.Apply(items[i], ws[i], float64(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := (window + i) & (len(items) - 1)
		o := i & (len(items) - 1)
		m.Apply(items[k], ws[k], float64(window+i))
		m.Remove(items[o], ws[o], float64(i))
	}
}
