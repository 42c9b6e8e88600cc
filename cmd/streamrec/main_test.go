package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/store"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), err
}

func countRecords(t *testing.T, dir string) (items, events int) {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Replay(1, func(_ uint64, r event.Record) error {
		switch r.Kind {
		case event.KindItemPut:
			items++
		case event.KindEvent:
			events++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return items, events
}

func TestImportJSONLines(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	for _, f := range []string{"events.jsonl", "items.jsonl"} {
		b, _ := os.ReadFile(filepath.Join("testdata", f))
		os.WriteFile(filepath.Join(src, f), b, 0o644)
	}
	data := filepath.Join(dir, "data")
	out, _, err := runCmd(t, nil, "import", "--data", data, src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2 items, 3 events stored, 1 duplicates skipped, 1 rejected") {
		t.Fatalf("summary: %s", out)
	}
	if items, events := countRecords(t, data); items != 2 || events != 3 {
		t.Fatalf("stored %d items, %d events", items, events)
	}
	// Importing into a data directory that holds records needs --append.
	if _, _, err = runCmd(t, nil, "import", "--data", data, src); err == nil || !strings.Contains(err.Error(), "--append") {
		t.Fatalf("second import without --append: %v", err)
	}
	// With --append, events whose event_id is stored are skipped.
	out, _, err = runCmd(t, nil, "import", "--append", "--data", data, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, events := countRecords(t, data); events != 3 {
		t.Fatalf("a second import stored events again: %d (%s)", events, out)
	}
}

func TestImportCSV(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if _, _, err := runCmd(t, nil, "import", "--data", data, filepath.Join("testdata", "events.csv")); err != nil {
		t.Fatal(err)
	}
	if _, events := countRecords(t, data); events != 2 {
		t.Fatalf("stored %d events", events)
	}
}

func TestImportMovieLens(t *testing.T) {
	shared.SkipUnderRace(t)
	for _, tc := range []struct {
		name          string
		items, events int
	}{
		{"ml-100k", 1682, 100000},
		{"ml-latest-small", 9742, 100836},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := shared.Dataset(t, tc.name)
			data := filepath.Join(t.TempDir(), "data")
			if _, _, err := runCmd(t, nil, "import", "--data", data, src); err != nil {
				t.Fatal(err)
			}
			if items, events := countRecords(t, data); items != tc.items || events != tc.events {
				t.Fatalf("stored %d items, %d events; want %d, %d", items, events, tc.items, tc.events)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		mention string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", nil, []string{"fly"}, "unknown command"},
		{"import without source", nil, []string{"import"}, "exactly one SOURCE"},
		{"import unknown format", nil, []string{"import", "--data", "DATA", "EMPTY"}, "no known format"},
		{"import missing path", nil, []string{"import", "--data", "DATA", "does-not-exist"}, "no such file"},
		{"bad preset", nil, []string{"serve", "--preset", "casino", "--data", "DATA"}, "unknown preset"},
		{"bad addr from env", map[string]string{"STREAMREC_ADDR": "nope"}, []string{"serve", "--data", "DATA"}, "addr"},
		{"unknown key in config file", nil, []string{"serve", "--config", "testdata/bad.yaml", "--data", "DATA"}, "windw"},
		{"bad log level", nil, []string{"serve", "--log-level", "loud", "--data", "DATA"}, "log_level"},
		{"bench without a mode", nil, []string{"bench"}, "give a MODE"},
		{"eval without data", nil, []string{"eval"}, "--data"},
		{"eval unknown protocol", nil, []string{"eval", "--data", "testdata/events.csv", "--protocol", "coinflip"}, "unknown protocol"},
		{"eval unknown model", nil, []string{"eval", "--data", "testdata/events.csv", "--models", "oracle"}, "unknown model"},
		{"eval K too large", nil, []string{"eval", "--data", "testdata/events.csv", "--k", "5"}, "not below"},
		{"eval png plot", nil, []string{"eval", "--data", "testdata/events.csv", "--plot", "x.png"}, ".svg"},
		{"eval unknown format", nil, []string{"eval", "--data", "EMPTY"}, "no known format"},
		{"bench unknown mode", nil, []string{"bench", "warp"}, "unknown mode"},
		{"bench bad url", nil, []string{"bench", "serve", "--url", "ftp://x", "--duration", "1s", "--zipf-users", "10", "--zipf-items", "10"}, "want http://host:port"},
		{"bench no server", nil, []string{"bench", "ingest", "--url", "http://127.0.0.1:1", "--duration", "100ms", "--zipf-users", "10", "--zipf-items", "10"}, "no batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, a := range tt.args {
				switch a {
				case "DATA":
					tt.args[i] = filepath.Join(t.TempDir(), "d")
				case "EMPTY":
					tt.args[i] = t.TempDir()
				}
			}
			_, _, err := runCmd(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("want an error mentioning %q, got %v", tt.mention, err)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	cf := newConfigFlags("serve", &bytes.Buffer{}, true)
	cf.fs.StringVar(&cf.addr, "addr", "", "")
	if err := cf.fs.Parse([]string{"--config", "testdata/good.yaml", "--data", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cf.load(func(k string) string {
		return map[string]string{"STREAMREC_DATA": "/from/env", "STREAMREC_ADDR": "127.0.0.1:7777"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7777" || cfg.Data != "/from/flag" || cfg.Preset != "video" || cfg.Dedup.Window.String() != "5s" {
		t.Fatalf("file < env < flags not respected: %+v", cfg)
	}
	tb, err := cfg.Table()
	if err != nil {
		t.Fatal(err)
	}
	if w := tb.Weight(event.Watch, 0.5); w != 1 {
		t.Fatalf("event_types override not applied: watch(0.5) weighs %v", w)
	}
}

func TestEvalWritesTableJSONAndPlot(t *testing.T) {
	shared.SkipUnderRace(t)
	src := shared.Dataset(t, "ml-100k")
	dir := t.TempDir()
	out, _, err := runCmd(t, nil, "eval", "--data", src, "--protocol", "chrono", "--json", filepath.Join(dir, "r.json"), "--plot", filepath.Join(dir, "r.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"protocol chrono", "trending", "item_knn", "mf", "session_knn", "sequential", "content", "blend", "ndcg"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Protocol string
		Results  []struct {
			Model   string
			Metrics []struct {
				K    int
				NDCG float64
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	if err := json.Unmarshal(b, &rep); err != nil || rep.Protocol != "chrono" || len(rep.Results) != len(config.DefaultBlend())+1 || len(rep.Results[0].Metrics) != 3 {
		t.Fatalf("json: %v %+v", err, rep)
	}
	if svg, _ := os.ReadFile(filepath.Join(dir, "r.svg")); !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("plot: %.60s", svg)
	}
}
