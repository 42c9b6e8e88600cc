package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/internal/shared"
	"github.com/streamrec/streamrec/store"
)

func runCmdCtx(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, args, &out, &errb, func(string) string { return "" })
	return out.String(), errb.String(), err
}

// TestHelp: COMMAND --help describes the command on stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd      string
		describe string // a phrase of the command's description
	}{
		{"serve", "Runs the HTTP API"},
		{"import", "Stores a data set"},
		{"train", "Trains matrix factorisation"},
		{"eval", "Scores every model"},
		{"bench", "Measures a running server"},
		{"version", "VCS revision"},
	} {
		for _, h := range []string{"--help", "-h"} {
			t.Run(tc.cmd+h, func(t *testing.T) {
				out, errOut, err := runCmd(t, nil, tc.cmd, h)
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err %v", err)
				}
				var code bytes.Buffer
				if c := exitCode(err, &code); c != 0 || code.Len() > 0 {
					t.Fatalf("exit %d, printed %q", c, code.String())
				}
				if !strings.HasPrefix(out, "Usage: streamrec "+tc.cmd) || !strings.Contains(out, tc.describe) || strings.Contains(out, "Usage of") || errOut != "" {
					t.Fatalf("stdout %q\nstderr %q", out, errOut)
				}
				if tc.cmd != "version" && !strings.Contains(out, "-quiet") && tc.cmd != "serve" {
					t.Fatalf("usage lacks --quiet: %s", out)
				}
			})
		}
	}
}

// TestBadFlagOnce: an unknown flag is reported once (by main), with no
// usage dump before it.
func TestBadFlagOnce(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"import", "--bogus", "x"},
		{"train", "--bogus"},
		{"eval", "--bogus"},
		{"bench", "serve", "--bogus"},
		{"serve", "--addr"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, errOut, err := runCmd(t, nil, args...)
			if err == nil || errOut != "" {
				t.Fatalf("err %v, stderr %q", err, errOut)
			}
			var printed bytes.Buffer
			flagName := strings.TrimLeft(args[len(args)-1], "-")
			if args[0] == "import" {
				flagName = "bogus"
			}
			if c := exitCode(err, &printed); c != 2 || strings.Count(printed.String(), "\n") != 1 ||
				!strings.Contains(printed.String(), flagName) || !strings.Contains(printed.String(), "--help") {
				t.Fatalf("exit %d, printed %q", c, printed.String())
			}
		})
	}
}

// TestEvalChecksFlagsFirst: bad --protocol, --models, --k or --plot-metric
// are reported before the data set is read (here: before noticing it is
// missing).
func TestEvalChecksFlagsFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-data")
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--protocol", "coinflip"}, "unknown protocol"},
		{[]string{"--models", "trending,oracle"}, "unknown model"},
		{[]string{"--k", "0"}, "K must be positive"},
		{[]string{"--plot", "x.svg", "--plot-metric", "beauty"}, "unknown metric"},
	} {
		t.Run(tc.mention, func(t *testing.T) {
			_, _, err := runCmd(t, nil, append([]string{"eval", "--data", missing}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("want %q, got %v", tc.mention, err)
			}
		})
	}
}

func TestDescribeBuild(t *testing.T) {
	ldVersion = ""
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		info        *debug.BuildInfo
		ok          bool
		want, short string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}, true, "streamrec v1.2.3 (no VCS revision", "v1.2.3"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260102030405-0123456789ab+dirty"}, Settings: rev}, true,
			"streamrec v0.0.0-20260102030405-0123456789ab+dirty revision 0123456789abcdef (2026-01-02T03:04:05Z, with uncommitted changes) go1.26.0", "v0.0.0-20260102030405-0123456789ab+dirty"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev[:1]}, true, "streamrec (devel) revision 0123456789abcdef go", "devel-0123456789abcdef"},
		{nil, false, "streamrec (unknown version) (no VCS revision", "devel"},
	} {
		if got := describeBuild(tc.info, tc.ok); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "dev ") {
			t.Errorf("describeBuild: %q, want it to start %q", got, tc.want)
		}
		if got := shortVersion(tc.info, tc.ok); got != tc.short {
			t.Errorf("shortVersion: %q, want %q", got, tc.short)
		}
	}
}

// TestVersionOfBuiltBinary: a binary go build made in the git checkout
// names the checkout's revision.
func TestVersionOfBuiltBinary(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git checkout to compare with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "streamrec")
	// -buildvcs=true overrides a GOFLAGS=-buildvcs=false in the environment.
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if s := string(out); !strings.HasPrefix(s, "streamrec v") || !strings.Contains(s, "revision "+strings.TrimSpace(string(head))) {
		t.Fatalf("version: %q, want the module version and revision %s", s, head)
	}
	for _, args := range [][]string{{"serve", "--help"}, {"version"}} {
		if err := exec.Command(bin, args...).Run(); err != nil {
			t.Fatalf("%v: %v, want exit 0", args, err)
		}
	}
}

// TestProgressOffTerminal: into a file or pipe (here a buffer) the progress
// of import, train and eval is a few plain lines, not redrawn frames;
// --quiet silences it.
func TestProgressOffTerminal(t *testing.T) {
	src := filepath.Join(t.TempDir(), "events.csv")
	writeEvents(t, src, 200)
	for _, tc := range []struct {
		name  string
		args  func(data string) []string
		lines []string // each must start one line of stderr
	}{
		{"import", func(data string) []string { return []string{"import", "--data", data, src} }, []string{"reading: ", "storing: "}},
		{"train", func(data string) []string {
			return []string{"train", "--data", data, "--factors", "2", "--iterations", "1", src}
		}, []string{"reading: ", "training on ", "training: "}},
		{"eval", func(string) []string {
			return []string{"eval", "--data", src, "--models", "trending", "--k", "1", "--protocol", "leave-last"}
		}, []string{"reading: ", "scoring leave-last: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := runCmd(t, nil, tc.args(filepath.Join(t.TempDir(), "d"))...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(errOut, "\r\x1b") || !strings.HasSuffix(errOut, "\n") {
				t.Fatalf("redrawn frames on a non-terminal: %q", errOut)
			}
			got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			if len(got) != len(tc.lines) {
				t.Fatalf("lines %q, want %d", got, len(tc.lines))
			}
			for i, want := range tc.lines {
				if !strings.HasPrefix(got[i], want) {
					t.Fatalf("line %d: %q, want it to start %q", i, got[i], want)
				}
			}
			args := tc.args(filepath.Join(t.TempDir(), "d"))
			_, errOut, err = runCmd(t, nil, append([]string{args[0], "--quiet"}, args[1:]...)...)
			if err != nil || errOut != "" {
				t.Fatalf("--quiet: %v, stderr %q", err, errOut)
			}
		})
	}
}

func TestBarLines(t *testing.T) {
	defer func(d time.Duration) { plainEvery = d }(plainEvery)
	plainEvery = time.Millisecond
	var w bytes.Buffer
	b := makeBar(&w, 200, "storing", false, false)
	time.Sleep(2 * time.Millisecond)
	b.Set(50)
	b.Stop()
	b.Set(100) // after Stop: nothing
	if s := w.String(); !strings.HasPrefix(s, "storing: 50/200 (25%), ") || strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "left\n") {
		t.Fatalf("plain lines %q", s)
	}

	// On a terminal an unfinished bar ends its line when stopped, so an
	// error printed next starts a line of its own.
	var tty bytes.Buffer
	b = makeBar(&tty, 200, "storing", false, true)
	b.Set(50)
	time.Sleep(150 * time.Millisecond) // past the redraw throttle
	b.Set(60)
	b.Stop()
	if s := tty.String(); !strings.Contains(s, "\r") || !strings.HasSuffix(s, "\n") {
		t.Fatalf("terminal bar after Stop: %q", s)
	}
	tty.Reset()
	b = makeBar(&tty, 10, "x", false, true)
	b.Set(3)
	b.Finish()
	b.Stop()
	if s := tty.String(); !strings.HasSuffix(s, "\n") || strings.HasSuffix(s, "\n\n") {
		t.Fatalf("terminal bar after Finish: %q", s)
	}
	if isTerminal(&tty) {
		t.Fatal("a buffer is not a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("a file is not a terminal")
	}
	var q bytes.Buffer
	b = newBar(progressOut(&q, true), 10, "x", false)
	b.Set(5)
	b.Finish()
	if q.Len() != 0 {
		t.Fatalf("quiet wrote %q", q.String())
	}
}

// TestImportEcommerceSets: the three e-commerce logs import (every event
// stored or dropped as a duplicate, none rejected) and evaluate.
func TestImportEcommerceSets(t *testing.T) {
	shared.SkipUnderRace(t)
	for _, tc := range []struct {
		name, format  string
		items, events int
	}{
		{"taobao-userbehavior-head", "taobao", 55368, 84475},
		{"yoochoose-clicks-100k", "session-rec", 0, 83846},
		{"otto-sample", "otto", 0, 862},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := shared.Dataset(t, tc.name)
			data := filepath.Join(t.TempDir(), "data")
			out, _, err := runCmd(t, nil, "import", "--quiet", "--data", data, src)
			if err != nil {
				t.Fatal(err)
			}
			var items, stored, dups, rejected int
			if _, err := fmt.Sscanf(out[strings.LastIndex(out, ": ")+2:], "%d items, %d events stored, %d duplicates skipped, %d rejected", &items, &stored, &dups, &rejected); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.Contains(out, "("+tc.format+")") || items != tc.items || stored+dups != tc.events || rejected != 0 || stored < tc.events*9/10 {
				t.Fatalf("summary %s", out)
			}
			if gotItems, gotEvents := countRecords(t, data); gotItems != items || gotEvents != stored {
				t.Fatalf("stored %d items, %d events; the summary says %s", gotItems, gotEvents, out)
			}
			out, _, err = runCmd(t, nil, "eval", "--quiet", "--data", src, "--models", "trending,item_knn", "--k", "5", "--protocol", "prequential")
			if err != nil || !strings.Contains(out, "item_knn") {
				t.Fatalf("eval: %v\n%s", err, out)
			}
		})
	}
}

// writeEvents writes n view events of distinct items, 10 s apart, without
// event ids.
func writeEvents(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,item_id,type,timestamp\n")
	for i := range n {
		fmt.Fprintf(&b, "u%d,i%d,view,%d\n", i%37, i, 1_700_000_000+10*i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportInterruptedResumes: an import cancelled mid-way says how many
// events it stored and how to go on; the same command with --append then
// stores exactly the rest, and a further run stores nothing.
func TestImportInterruptedResumes(t *testing.T) {
	defer func(b int, h func()) { importBatch, importAfterWrite = b, h }(importBatch, importAfterWrite)
	dir := t.TempDir()
	src := filepath.Join(dir, "events.csv")
	writeEvents(t, src, 3000)
	data := filepath.Join(dir, "data")

	importBatch = 500
	ctx, cancel := context.WithCancel(context.Background())
	writes := 0
	importAfterWrite = func() {
		if writes++; writes == 2 {
			cancel()
		}
	}
	_, _, err := runCmdCtx(t, ctx, "import", "--quiet", "--data", data, src)
	if err == nil || !strings.Contains(err.Error(), "interrupted: 1000 of 3000 events") || !strings.Contains(err.Error(), "--append") {
		t.Fatalf("interrupted import: %v", err)
	}
	if _, events := countRecords(t, data); events != 1000 {
		t.Fatalf("stored %d events, the message says 1000", events)
	}
	importAfterWrite = func() {}

	out, _, err := runCmd(t, nil, "import", "--quiet", "--append", "--data", data, src)
	if err != nil || !strings.Contains(out, "2000 events stored, 1000 duplicates skipped") {
		t.Fatalf("resumed import: %v\n%s", err, out)
	}
	if _, events := countRecords(t, data); events != 3000 {
		t.Fatalf("after resuming %d events are stored, the source has 3000", events)
	}
	out, _, err = runCmd(t, nil, "import", "--quiet", "--append", "--data", data, src)
	if err != nil || !strings.Contains(out, "0 events stored, 3000 duplicates skipped") {
		t.Fatalf("a third run: %v\n%s", err, out)
	}
	if _, events := countRecords(t, data); events != 3000 {
		t.Fatalf("a third run stored events again: %d", events)
	}
}

// TestImportChecksDataDirFirst: a data directory that holds records (without
// --append) or is in use is reported before the source is read: here the
// source is broken, and its error must not be the one reported.
func TestImportChecksDataDirFirst(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if _, _, err := runCmd(t, nil, "import", "--quiet", "--data", data, filepath.Join("testdata", "events.csv")); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.csv")
	os.WriteFile(broken, []byte("user_id,item_id,type,value\nu,i,view,lots\n"), 0o644)
	if _, _, err := runCmd(t, nil, "import", "--data", data, broken); err == nil || !strings.Contains(err.Error(), "--append") {
		t.Fatalf("want the --append error first, got %v", err)
	}
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := runCmd(t, nil, "import", "--append", "--data", data, broken); err == nil || strings.Contains(err.Error(), "lots") {
		t.Fatalf("want the data directory's lock reported first, got %v", err)
	}
}

// TestImportAllRejected: a run that rejects every row stores nothing and
// fails; one that rejects some succeeds and says so.
func TestImportAllRejected(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bad.csv")
	os.WriteFile(src, []byte("user_id,item_id,type\nu,i,teleport\nv,j,beam\n"), 0o644)
	data := filepath.Join(dir, "data")
	_, _, err := runCmd(t, nil, "import", "--quiet", "--data", data, src)
	if err == nil || !strings.Contains(err.Error(), "all 2 events") || !strings.Contains(err.Error(), "teleport") {
		t.Fatalf("all rejected: %v", err)
	}
	var code bytes.Buffer
	if exitCode(err, &code) == 0 {
		t.Fatal("exit 0 for a run that stored nothing")
	}
	if items, events := countRecords(t, data); items+events != 0 {
		t.Fatalf("stored %d items, %d events", items, events)
	}
	os.WriteFile(src, []byte("user_id,item_id,type\nu,i,teleport\nv,j,view\n"), 0o644)
	out, _, err := runCmd(t, nil, "import", "--quiet", "--data", data, src)
	if err != nil || !strings.Contains(out, "1 events stored, 0 duplicates skipped, 1 rejected") || !strings.Contains(out, "first rejection") {
		t.Fatalf("some rejected: %v\n%s", err, out)
	}
}
