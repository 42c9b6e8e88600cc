package eval

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/recommend"
)

// TestTuneBlendPrequential is the search behind the default blend: every
// weighting of the grid scored by prequential replay of the first 60% of
// yoochoose-clicks-100k (K=20) and ml-100k (K=10), the rest of each never
// looked at; the rows are ranked by the smaller of the two MRRs relative to
// each set's best row. Run it with STREAMREC_TUNE=1.
func TestTuneBlendPrequential(t *testing.T) {
	if os.Getenv("STREAMREC_TUNE") == "" {
		t.Skip("set STREAMREC_TUNE=1 to run the blend grid")
	}
	grid := WeightGrid(map[string][]float32{
		ModelItemKNN: {1}, ModelMF: {0, 0.25}, ModelTrending: {0.05},
		"session_knn": {0, 0.25, 0.5, 1, 2}, "sequential": {0, 0.25, 0.5, 1, 2}, "content": {0, 0.1, 0.3},
	})
	if os.Getenv("STREAMREC_TUNE") == "fine" { // the second, finer pass around the first's best
		grid = WeightGrid(map[string][]float32{
			ModelItemKNN: {0.5, 0.75, 1}, ModelMF: {0.25}, ModelTrending: {0.05},
			"session_knn": {0.5, 0.75, 1}, "sequential": {0.25, 0.5}, "content": {0.1},
		})
	}
	sets := []struct {
		name string
		k    int
	}{{"yoochoose-clicks-100k", 20}, {"ml-100k", 10}}
	if os.Getenv("STREAMREC_TUNE") == "content" { // the third pass: content's weight, where items have text
		grid = WeightGrid(map[string][]float32{
			ModelItemKNN: {1}, ModelMF: {0.25}, ModelTrending: {0.05},
			"session_knn": {0.5}, "sequential": {0.25}, "content": {0.1, 0.3, 0.5, 1, 2},
		})
		sets[0] = struct {
			name string
			k    int
		}{"taobao-userbehavior-head", 20}
	}
	rows := make([][]BlendRow, len(sets))
	for i, set := range sets {
		recs, table := loadRecords(t, set.name)
		r, best, err := GridBlendPrequential(recs, table, func() *recommend.Engine { return newDefault(table) }, grid, 0.6, set.k, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = r
		t.Logf("%s best %v", set.name, best)
	}
	type combined struct {
		w     map[string]float32
		score float64
		parts []string
	}
	var all []combined
	for g := range grid {
		c := combined{w: grid[g], score: 1}
		for i := range sets {
			top := slices.MaxFunc(rows[i], func(a, b BlendRow) int { return cmpFloat(a.Validation, b.Validation) }).Validation
			rel := rows[i][g].Validation / top
			c.score = min(c.score, rel)
			c.parts = append(c.parts, fmt.Sprintf("%s HR %.4f MRR %.4f", sets[i].name, rows[i][g].HitRate, rows[i][g].Validation))
		}
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b combined) int { return cmpFloat(b.score, a.score) })
	for _, c := range all[:min(25, len(all))] {
		var w []string
		for _, k := range slices.Sorted(maps.Keys(c.w)) {
			w = append(w, fmt.Sprintf("%s %g", k, c.w[k]))
		}
		fmt.Printf("%.4f  %s  |  %s\n", c.score, strings.Join(w, ", "), strings.Join(c.parts, "; "))
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
