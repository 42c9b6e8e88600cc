package lambdamart

import (
	"math"
	"math/rand/v2"
)

// idealDCG is the DCG@k of labels sorted descending.
func idealDCG(labels []float32, k int) float64 {
	s := append([]float32(nil), labels...)
	for i := range s { // tiny insertion sort, descending
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	var dcg float64
	for i := 0; i < len(s) && (k <= 0 || i < k); i++ {
		dcg += float64(s[i]) / math.Log2(float64(i)+2)
	}
	return dcg
}

// normalise divides each query's labels by its ideal DCG@k, so Metric is
// the mean NDCG@k.
func normalise(d *Data, k int) {
	for q := 0; q+1 < len(d.Group); q++ {
		lab := d.Label[d.Group[q]:d.Group[q+1]]
		if ideal := idealDCG(lab, k); ideal > 0 {
			for i := range lab {
				lab[i] = float32(float64(lab[i]) / ideal)
			}
		}
	}
}

// planted is the planted task: F = 6 uniform features; a row is relevant iff
// x0 > 0.7 && x3 < 0.2 (gain 2 when also x1 > 0.5); Init is a weakly
// informative linear score plus noise. Labels are normalised (NDCG@k).
func planted(seed uint64, queries, rows, k int) *Data {
	rng := rand.New(rand.NewPCG(seed, 1))
	const F = 6
	d := &Data{F: F, Group: []int{0}}
	for range queries {
		n := rows - 5 + rng.IntN(11)
		for range n {
			var x [F]float32
			for j := range x {
				x[j] = rng.Float32()
			}
			var l float32
			if x[0] > 0.7 && x[3] < 0.2 {
				l = 1
				if x[1] > 0.5 {
					l = 2
				}
			}
			d.X = append(d.X, x[:]...)
			d.Label = append(d.Label, l)
			d.Init = append(d.Init, float32(0.3*float64(x[0])+0.3*rng.NormFloat64()))
		}
		d.Group = append(d.Group, len(d.Label))
	}
	normalise(d, k)
	return d
}

// synth is a larger generator of F features for benchmarks: relevance grows
// with a few features non-linearly; Init is a noisy linear blend.
func synth(seed uint64, queries, rows, F, k int) *Data {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := &Data{F: F, Group: []int{0}}
	x := make([]float32, F)
	for range queries {
		for range rows {
			for j := range x {
				x[j] = rng.Float32()
			}
			z := 2*float64(x[0]) - 1.5*math.Abs(float64(x[1])-0.5) + float64(x[2]*x[3]) + 0.5*rng.NormFloat64()
			var l float32
			switch {
			case z > 2.1:
				l = 3
			case z > 1.8:
				l = 1
			}
			d.X = append(d.X, x...)
			d.Label = append(d.Label, l)
			d.Init = append(d.Init, float32(0.5*float64(x[0])+0.5*rng.NormFloat64()))
		}
		d.Group = append(d.Group, len(d.Label))
	}
	normalise(d, k)
	return d
}

// randomForest is a forest of full trees of the given depth with random
// splits (raggedForest with no early leaves).
func randomForest(seed uint64, trees, depth, F int) *Forest {
	return raggedForest(seed, trees, depth, F, 0)
}

func row(d *Data, r int) []float32 { return d.X[r*d.F : (r+1)*d.F] }
