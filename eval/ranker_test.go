package eval

import (
	"testing"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/recommend"
)

// TestRankerChrono: ml-100k, chrono 80/20, the ranker trained on the
// training part as the server trains it on its log. The fixed blend scores
// NDCG@10 0.159 there against trending's 0.217 (the users asked mostly
// come back after weeks, when what is popular now is the best guess); the
// ranker must learn that from the training part alone and answer above
// every single source (measured: 0.2216, the target 0.22; the floor
// here is trending's 0.2172, so that a change of a few thousandths in the
// fit does not read as a failure).
func TestRankerChrono(t *testing.T) {
	if shared.Race {
		t.Skip("accuracy replay: run without -race (go test -run TestRankerChrono ./eval)")
	}
	recs, table := loadRecords(t, "ml-100k")
	cfg := config.Default()
	rc := cfg.RankerConfig()
	rep, err := Run(recs, table, func() *recommend.Engine { return newDefault(table) },
		Config{Protocol: Chrono, Ks: []int{10}, Ranker: &rc})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ranker == nil || !rep.Ranker.Accepted {
		t.Fatalf("ranker not installed: %+v", rep.Ranker)
	}
	var blend float64
	best, bestName := 0.0, ""
	for _, r := range rep.Results {
		v := r.Metrics[0].NDCG
		if r.Model == ModelBlend {
			blend = v
		} else if v > best {
			best, bestName = v, r.Model
		}
	}
	t.Logf("blend with the ranker NDCG@10 %.4f; best single source %s %.4f; ranker %+v", blend, bestName, best, *rep.Ranker.Ranker)
	if blend < best {
		t.Fatalf("blend NDCG@10 %.4f, want at least %s's %.4f", blend, bestName, best)
	}
}
