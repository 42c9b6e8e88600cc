package sequential

import (
	"strconv"
	"sync"
	"testing"

	"github.com/streamrec/streamrec/dataset"
)

var synth struct {
	once sync.Once
	xs   recorder
}

// synthInteractions are the Interactions of the engine's
// BenchmarkPipelineAndApply stream (dataset.Synthetic: 6,040 users, 3,706
// items, 1M events a second apart, e-commerce weights: view 1, click 2, cart
// 6, purchase 10), built beforehand the way the engine builds them.
func synthInteractions() recorder {
	synth.once.Do(func() {
		in := dataset.Synthetic(dataset.SynthConfig{Users: 6040, Items: 3706, Events: 1_000_000, Seed: 1})
		weight := map[string]float32{"view": 1, "click": 2, "cart": 6, "purchase": 10}
		users, items := map[string]int32{}, map[string]int32{}
		id := func(m map[string]int32, k string) int32 {
			v, ok := m[k]
			if !ok {
				v = int32(len(m))
				m[k] = v
			}
			return v
		}
		d := newDriver(&synth.xs)
		t0 := in[0].Timestamp.Time
		for i := range in {
			e := &in[i]
			w, ok := weight[e.Type]
			if !ok {
				panic("unknown type " + e.Type + " at " + strconv.Itoa(i))
			}
			d.applyW(id(users, e.UserID), id(items, e.ItemID), e.Timestamp.Time.Sub(t0).Seconds()+1e9, w)
		}
	})
	return synth.xs
}

// BenchmarkApplySynthetic is the cost of one event of the engine's
// ingest benchmark stream, replayed over and over into fresh models.
func BenchmarkApplySynthetic(b *testing.B) {
	xs := synthInteractions()
	b.ReportAllocs()
	b.ResetTimer()
	var m *Model
	for i := 0; i < b.N; i++ {
		k := i % len(xs)
		if k == 0 {
			b.StopTimer()
			m = New(DefaultConfig())
			b.StartTimer()
		}
		m.Apply(&xs[k])
	}
}
