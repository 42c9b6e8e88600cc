package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamrec/streamrec/bench"
)

// TestReferenceHelperProcess is not a test: it is the child that
// startReference runs in the tests below (this test binary, told so by
// STREAMREC_REFERENCE_HELPER), acting as the streamrec binary.
func TestReferenceHelperProcess(t *testing.T) {
	if os.Getenv("STREAMREC_REFERENCE_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, args, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// useHelperReference makes bench saturate start the reference from this
// test binary.
func useHelperReference(t *testing.T) {
	t.Helper()
	argv, env := referenceArgv, referenceEnv
	referenceArgv = func() ([]string, error) {
		return []string{os.Args[0], "-test.run=^TestReferenceHelperProcess$", "--"}, nil
	}
	referenceEnv = []string{"STREAMREC_REFERENCE_HELPER=1"}
	t.Cleanup(func() { referenceArgv, referenceEnv = argv, env })
}

// TestReferenceCmd: the reference server prints its address, answers
// every GET with the fixed body, and ends when its stdin closes.
func TestReferenceCmd(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- referenceCmd(context.Background(), []string{"--addr", "127.0.0.1:0", "--n", "5", "--watch-stdin"}, stdinR, outW, io.Discard)
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	resp, err := http.Get("http://" + strings.TrimSpace(line) + "/v1/users/42/recommendations?n=5")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != string(bench.ReferenceBody(5)) {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the reference server did not end when its stdin closed")
	}
}

// TestReferenceFlags: the hidden mode's flags, and bench saturate's.
func TestReferenceFlags(t *testing.T) {
	out, _, err := runCmd(t, nil, "bench", "reference", "--help")
	if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(out, "Usage: streamrec bench reference") || !strings.Contains(out, "-watch-stdin") {
		t.Fatalf("err %v, usage %q", err, out)
	}
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"bench", "reference", "--bogus"}, "bogus"},
		{[]string{"bench", "reference", "--n", "0"}, "--n"},
		{[]string{"bench", "reference", "extra"}, "unexpected argument"},
		{[]string{"bench", "reference", "--addr", "nope"}, "nope"},
		{[]string{"bench", "saturate", "--rounds", "0", "--zipf-users", "10", "--zipf-items", "10"}, "--rounds"},
		{[]string{"bench", "saturate", "--conns", "-1", "--zipf-users", "10", "--zipf-items", "10"}, "--conns"},
		{[]string{"bench", "saturate", "--url", "ftp://x", "--reference-url", "http://127.0.0.1:1", "--duration", "100ms", "--zipf-users", "10", "--zipf-items", "10"}, "127.0.0.1:1"},
	} {
		if _, _, err := runCmd(t, nil, tc.args...); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v: want an error mentioning %q, got %v", tc.args, tc.mention, err)
		}
	}
	if out, _, _ := runCmd(t, nil, "bench", "--help"); !strings.Contains(out, "saturate") || strings.Contains(out, "reference   ") {
		t.Fatalf("bench usage: %s", out)
	}
}

// TestBenchSaturate: the whole mode, the reference started as a child
// process (this test binary), against a slower in-test server: the
// table, the headline and the JSON, and the child gone at the end.
func TestBenchSaturate(t *testing.T) {
	useHelperReference(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		bench.ReferenceHandler(bench.ReferenceBody(10)).ServeHTTP(w, r)
	}))
	defer target.Close()
	js := filepath.Join(t.TempDir(), "sat.json")
	out, _, err := runCmd(t, nil, "bench", "saturate", "--url", target.URL, "--duration", "200ms", "--rounds", "1",
		"--conns", "2", "--zipf-users", "20", "--zipf-items", "20", "--json", js, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"2 keep-alive connections", "own process", "p99 ms", "of the minimal server's"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Mode     string               `json:"mode"`
		Saturate bench.SaturateResult `json:"saturate"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	s := res.Saturate
	if res.Mode != "saturate" || len(s.Rounds) != 2 || s.Rounds[0].Server != "reference" || s.Rounds[1].Server != "streamrec" ||
		s.Rounds[0].Requests <= 0 || s.Rounds[1].Requests <= 0 || s.Rounds[0].Errors+s.Rounds[1].Errors != 0 ||
		s.Ratio <= 0 || s.Ratio >= 1 || !strings.HasPrefix(s.Reference, "http://127.0.0.1:") {
		t.Fatalf("%s", b)
	}
	// The child is gone: its port no longer answers.
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get(s.Reference + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("the reference server still answers after the run")
	}
}
