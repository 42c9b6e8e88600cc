package eval

import (
	"errors"
	"fmt"
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
