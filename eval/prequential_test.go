package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamrec/streamrec/dataset"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
)

func sharedDataset(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "datasets", name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("../shared/datasets/%s is absent (%v): real-data tests need the shared data sets beside the repository", name, err)
	}
	return dir
}

func TestPrequentialTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip("set TUNE=1")
	}
	d, err := dataset.Load(sharedDataset(t, "ml-100k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := event.Preset("ecommerce")
	p := pipeline.New(pipeline.DefaultConfig(table))
	recs, _, err := Records(d.Items, d.Events, p, pipeline.NewDedup(pipeline.DefaultDedupConfig()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []itemknn.Config{
		{Window: 10, Neighbors: 200, QueryItems: 15, Decay: 0.9},
		{Window: 12, Neighbors: 200, QueryItems: 15, Decay: 0.9},
		{Window: 20, Neighbors: 200, QueryItems: 15, Decay: 0.9},
	} {
		eng := recommend.New(recommend.Config{Table: table, ItemKNN: c})
		res := Prequential(eng, recs, table, PrequentialConfig{WarmUp: 0.2, K: 10})
		fmt.Printf("%+v -> %+v\n", c, res)
	}
}
