package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/node"
	"github.com/streamrec/streamrec/recommend"
)

// TestTrainFromStoreAndDataSet: `streamrec train` trains on an imported
// store (and on a data set directly), writes the model file where the
// server looks, and the file loads into an engine that serves mf items.
func TestTrainFromStoreAndDataSet(t *testing.T) {
	shared.SkipUnderRace(t)
	src := shared.Dataset(t, "ml-100k")
	dir := filepath.Join(t.TempDir(), "data")
	if _, _, err := runCmd(t, nil, "import", "--data", dir, src); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCmd(t, nil, "train", "--data", dir, "--factors", "16", "--iterations", "3")
	if err != nil {
		t.Fatal(err, errOut)
	}
	if !strings.Contains(out, "wrote "+node.ModelFile(dir)) || !strings.Contains(errOut, "training") {
		t.Fatalf("out %q\nerr %q", out, errOut)
	}
	// The server's start path: rebuild, then load the file.
	cfg := config.Default()
	cfg.Data = dir
	tb, _ := cfg.Table()
	eng := recommend.New(cfg.EngineConfig(tb))
	eng2, err := rebuildFromStore(context.Background(), dir, func() *recommend.Engine { return eng }, cfg.DedupConfig(), cfg.Dedup.IDs, new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(node.ModelFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	tr, err := eng2.LoadMF(context.Background(), f, st.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Model.Factors() != 16 || tr.Events != 100000 {
		t.Fatalf("loaded model: %d factors, %d interactions", tr.Model.Factors(), tr.Events)
	}
	if got := eng2.Recommend(recommend.Request{User: "1", N: 10, Source: "mf"}); len(got) != 10 {
		t.Fatalf("mf from the loaded file: %v", got)
	}

	// Straight from the data set, to a file of one's choosing.
	file := filepath.Join(t.TempDir(), "m.model")
	if _, errOut, err := runCmd(t, nil, "train", "--out", file, "--factors", "8", "--iterations", "2", src); err != nil {
		t.Fatal(err, errOut)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("model file: %v", err)
	}
}

func TestTrainSyntheticAndBadInput(t *testing.T) {
	out, _, err := runCmd(t, nil, "train", "--synthetic", "20000", "--users", "300", "--items", "200", "--factors", "8", "--iterations", "2")
	if err != nil || !strings.Contains(out, "training") || !strings.Contains(out, "peak memory") {
		t.Fatalf("%v %q", err, out)
	}
	for _, args := range [][]string{
		{"train", "--data", filepath.Join(t.TempDir(), "none")},
		{"train", "--synthetic", "100", "--shape", "cubic"},
		{"train", "--synthetic", "100", "--users", "1"},
		{"train", "--factors", "-3", "--synthetic", "100"},
		{"train", "a", "b"},
	} {
		if _, _, err := runCmd(t, nil, args...); err == nil {
			t.Fatalf("%v: no error", args)
		}
	}
}
