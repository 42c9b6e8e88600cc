package eval

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestMetricsByHand checks every metric against values worked out by hand.
func TestMetricsByHand(t *testing.T) {
	rel := map[string]bool{"a": true, "c": true, "x": true}
	// Ranked list, K=4: hits at ranks 1 and 3.
	acc := newAccumulator(4, 10, func() int { return 8 }, map[string]int{"a": 8, "b": 4, "c": 2, "d": 1})
	acc.add([]string{"a", "b", "c", "d", "e"}, rel)
	m := acc.metrics()
	l2 := math.Log2
	want := Metrics{
		K:         4,
		Precision: 2.0 / 4,
		Recall:    2.0 / 3,
		HitRate:   1,
		MRR:       1,
		// DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4)
		NDCG: 1.5 / (1 + 1/l2(3) + 0.5),
		// AP = (1/1 + 2/3) / min(3,4)
		MAP:      (1 + 2.0/3) / 3,
		Coverage: 4.0 / 10,
		// novelty: −log2(8/8), −log2(4/8), −log2(2/8), −log2(1/8) → 0, 1, 2, 3
		Novelty: 6.0 / 4,
	}
	if !near(m.Precision, want.Precision) || !near(m.Recall, want.Recall) || !near(m.HitRate, want.HitRate) ||
		!near(m.MRR, want.MRR) || !near(m.NDCG, want.NDCG) || !near(m.MAP, want.MAP) ||
		!near(m.Coverage, want.Coverage) || !near(m.Novelty, want.Novelty) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}

	// A second user with no hit halves the averages and adds its items to coverage.
	acc.add([]string{"f", "g"}, map[string]bool{"z": true})
	m2 := acc.metrics()
	if !near(m2.Precision, want.Precision/2) || !near(m2.HitRate, 0.5) || !near(m2.MRR, 0.5) || !near(m2.Coverage, 6.0/10) {
		t.Fatalf("two users: %+v", m2)
	}
}

func TestMetricsLateHit(t *testing.T) {
	acc := newAccumulator(5, 5, nil, nil)
	acc.add([]string{"p", "q", "r"}, map[string]bool{"r": true})
	m := acc.metrics()
	// First hit at rank 3: MRR 1/3, NDCG (1/log2 4) / 1 = 0.5, AP (1/3)/1.
	if !near(m.MRR, 1.0/3) || !near(m.NDCG, 0.5) || !near(m.MAP, 1.0/3) || !near(m.Precision, 1.0/5) || !near(m.Recall, 1) {
		t.Fatalf("%+v", m)
	}
}
