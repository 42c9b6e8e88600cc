package eval

import (
	"math"
	"slices"
)

// Metrics are the averages over the scored users (or events) at one K.
// Definitions, for a ranked list L cut at K and the user's relevant set R:
//
//	Precision = |L∩R| / K
//	Recall    = |L∩R| / |R|
//	HitRate   = 1 if L∩R is not empty
//	MRR       = 1 / rank of the first relevant item (0 when none)
//	NDCG      = Σ_{i: L_i ∈ R} 1/log2(i+2)  /  Σ_{i < min(|R|,K)} 1/log2(i+2)
//	MAP       = Σ_{i: L_i ∈ R} Precision@(i+1)  /  min(|R|, K)
//	Coverage  = distinct items recommended to anyone / items in the catalogue
//	Novelty   = mean over recommended items of −log2(users of the item / users)
type Metrics struct {
	K         int     `json:"k"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	NDCG      float64 `json:"ndcg"`
	MAP       float64 `json:"map"`
	HitRate   float64 `json:"hit_rate"`
	MRR       float64 `json:"mrr"`
	Coverage  float64 `json:"coverage"`
	Novelty   float64 `json:"novelty"`
}

// accumulator sums the metrics of many lists at one K.
type accumulator struct {
	k                                 int
	n                                 int
	prec, rec, ndcg, ap, hit, rr, nov float64 // sums
	recommended                       map[string]bool
	novCount                          int
	catalogue                         int
	// popularity counts the users of each item and users() all users, as
	// known when a list is scored (they grow during a prequential replay).
	popularity map[string]int
	users      func() int
}

func newAccumulator(k, catalogue int, users func() int, popularity map[string]int) *accumulator {
	return &accumulator{k: k, recommended: map[string]bool{}, catalogue: catalogue, users: users, popularity: popularity}
}

// add scores one ranked list against the relevant items.
func (a *accumulator) add(list []string, relevant map[string]bool) {
	if len(list) > a.k {
		list = list[:a.k]
	}
	a.n++
	hits := 0
	var dcg, ap float64
	first := 0
	for i, it := range list {
		a.recommended[it] = true
		if a.popularity != nil {
			if n := a.users(); n > 0 {
				p := min(max(a.popularity[it], 1), n)
				a.nov += -math.Log2(float64(p) / float64(n))
				a.novCount++
			}
		}
		if relevant[it] {
			hits++
			dcg += 1 / math.Log2(float64(i+2))
			ap += float64(hits) / float64(i+1)
			if first == 0 {
				first = i + 1
			}
		}
	}
	ideal := 0.0
	for i := range min(len(relevant), a.k) {
		ideal += 1 / math.Log2(float64(i+2))
	}
	a.prec += float64(hits) / float64(a.k)
	if len(relevant) > 0 {
		a.rec += float64(hits) / float64(len(relevant))
		a.ap += ap / float64(min(len(relevant), a.k))
	}
	if ideal > 0 {
		a.ndcg += dcg / ideal
	}
	if hits > 0 {
		a.hit++
		a.rr += 1 / float64(first)
	}
}

func (a *accumulator) metrics() Metrics {
	m := Metrics{K: a.k}
	if a.n == 0 {
		return m
	}
	n := float64(a.n)
	m.Precision, m.Recall, m.NDCG, m.MAP, m.HitRate, m.MRR = a.prec/n, a.rec/n, a.ndcg/n, a.ap/n, a.hit/n, a.rr/n
	if a.catalogue > 0 {
		m.Coverage = float64(len(a.recommended)) / float64(a.catalogue)
	}
	if a.novCount > 0 {
		m.Novelty = a.nov / float64(a.novCount)
	}
	return m
}

// Ks are the cut-offs every protocol reports.
var Ks = []int{5, 10, 20}

// maxK is the longest list asked for.
func maxK(ks []int) int { return slices.Max(ks) }
