package eval

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/recommend"
)

// GridRow is one setting tried and its validation NDCG at the grid's K.
type GridRow struct {
	Factors    int     `json:"factors"`
	Lambda     float32 `json:"lambda"`
	Alpha      float32 `json:"alpha"`
	Validation float64 `json:"validation_ndcg"`
}

// Grid is the small search behind --grid.
type Grid struct {
	Factors []int
	Lambda  []float32
	Alpha   []float32
}

// DefaultGrid is 3 × 4 × 4 = 48 settings.
var DefaultGrid = Grid{Factors: []int{16, 32, 64}, Lambda: []float32{1, 5, 20, 50}, Alpha: []float32{2, 3, 5, 10}}

// GridMF tunes mf on a validation split carved from the chrono training
// events (the last `validation` share of them): the test events are never
// scored. It returns every row and the best setting (by NDCG at K).
func GridMF(recs []event.Record, table *event.Table, newEngine func() *recommend.Engine, base mf.Config, grid Grid, validation float64, k int) ([]GridRow, mf.Config, error) {
	if validation <= 0 || validation >= 1 {
		return nil, base, errors.New("eval: grid: the validation share must be in (0, 1)")
	}
	var rows []GridRow
	best := -1.0
	bestCfg := base
	for _, f := range grid.Factors {
		for _, l := range grid.Lambda {
			for _, a := range grid.Alpha {
				c := base
				c.ALS.Factors, c.ALS.Lambda, c.ALS.Alpha = f, l, a
				rep, err := Run(recs, table, newEngine, Config{Protocol: Chrono, Models: []string{ModelMF}, Ks: []int{k}, MF: &c, Validation: validation})
				if err != nil {
					return nil, base, err
				}
				v := rep.Results[0].Metrics[0].NDCG
				rows = append(rows, GridRow{Factors: f, Lambda: l, Alpha: a, Validation: v})
				if v > best {
					best, bestCfg = v, c
				}
			}
		}
	}
	return rows, bestCfg, nil
}

// GridTable formats the rows for people, the best first marked.
func GridTable(rows []GridRow, best mf.Config, k int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mf grid on the validation split (NDCG@%d)\n%8s %8s %8s %12s\n", k, "factors", "lambda", "alpha", "validation")
	for _, r := range rows {
		mark := ""
		if r.Factors == best.ALS.Factors && r.Lambda == best.ALS.Lambda && r.Alpha == best.ALS.Alpha {
			mark = "  <- best"
		}
		fmt.Fprintf(&b, "%8d %8g %8g %12.4f%s\n", r.Factors, r.Lambda, r.Alpha, r.Validation, mark)
	}
	return b.String()
}

// BlendRow is one blend setting tried and its validation figure at the
// grid's K: NDCG (chrono) or MRR, with the hit rate (prequential).
type BlendRow struct {
	Weights    map[string]float32 `json:"weights"`
	Validation float64            `json:"validation"`
	HitRate    float64            `json:"validation_hit_rate,omitempty"`
}

// DefaultBlendGrid is 2 × 3 × 3 = 18 weightings of the sources.
var DefaultBlendGrid = func() []map[string]float32 {
	var out []map[string]float32
	for _, k := range []float32{0, 1} {
		for _, m := range []float32{0, 0.25, 1} {
			for _, t := range []float32{0.05, 0.5, 2} {
				out = append(out, map[string]float32{ModelItemKNN: k, ModelMF: m, ModelTrending: t})
			}
		}
	}
	return out
}()

// GridBlend tunes the blend weights on the same chrono validation split as
// GridMF (mf trained with mfCfg), and returns every row and the best.
func GridBlend(recs []event.Record, table *event.Table, newEngine func() *recommend.Engine, mfCfg *mf.Config, grid []map[string]float32, validation float64, k int) ([]BlendRow, map[string]float32, error) {
	if validation <= 0 || validation >= 1 {
		return nil, nil, errors.New("eval: grid: the validation share must be in (0, 1)")
	}
	var rows []BlendRow
	best, bestW := -1.0, map[string]float32(nil)
	for _, w := range grid {
		rep, err := Run(recs, table, newEngine, Config{Protocol: Chrono, Models: []string{ModelBlend}, Ks: []int{k}, MF: mfCfg, Blend: w, Validation: validation})
		if err != nil {
			return nil, bestW, err
		}
		v := rep.Results[0].Metrics[0].NDCG
		rows = append(rows, BlendRow{Weights: w, Validation: v})
		if v > best {
			best, bestW = v, w
		}
	}
	return rows, bestW, nil
}

// BlendTable formats the blend rows, the best marked.
func BlendTable(rows []BlendRow, best map[string]float32, k int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "blend grid on the validation split (NDCG@%d)\n%8s %8s %8s %12s\n", k, "item_knn", "mf", "trending", "validation")
	for _, r := range rows {
		mark := ""
		if maps.Equal(r.Weights, best) {
			mark = "  <- best"
		}
		fmt.Fprintf(&b, "%8g %8g %8g %12.4f%s\n", r.Weights[ModelItemKNN], r.Weights[ModelMF], r.Weights[ModelTrending], r.Validation, mark)
	}
	return b.String()
}

// GridBlendPrequential tunes the blend by prequential replay of the first
// until share of the events (the rest never looked at): every weighting of
// grid is scored in the same pass, by MRR at k, and every row and the best
// are returned.
func GridBlendPrequential(recs []event.Record, table *event.Table, newEngine func() *recommend.Engine, grid []map[string]float32, until float64, k int, progress func(done, total int)) ([]BlendRow, map[string]float32, error) {
	rep, err := Run(recs, table, newEngine, Config{Protocol: Prequential, Ks: []int{k}, Blends: grid, Until: until, Progress: progress})
	if err != nil {
		return nil, nil, err
	}
	var rows []BlendRow
	best, bestW := -1.0, map[string]float32(nil)
	for i, r := range rep.Results {
		v := r.Metrics[0].MRR
		rows = append(rows, BlendRow{Weights: grid[i], Validation: v, HitRate: r.Metrics[0].HitRate})
		if v > best {
			best, bestW = v, grid[i]
		}
	}
	return rows, bestW, nil
}

// WeightGrid is every combination of the weights given per source.
func WeightGrid(weights map[string][]float32) []map[string]float32 {
	out := []map[string]float32{{}}
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		var next []map[string]float32
		for _, g := range out {
			for _, w := range weights[name] {
				m := maps.Clone(g)
				m[name] = w
				next = append(next, m)
			}
		}
		out = next
	}
	return out
}
