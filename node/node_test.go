package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamrec/streamrec/config"
)

// testNode is a real node serving on a loopback port, with its store in a
// temporary directory.
type testNode struct {
	*Node
	URL    string
	cancel context.CancelFunc
	done   chan error
}

func startNode(t testing.TB, cfg config.Config) *testNode {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = filepath.Join(t.TempDir(), "data")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	n, err := Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, URL: "http://" + l.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Serve(ctx, l) }()
	t.Cleanup(tn.stop)
	select {
	case <-n.Ready():
	case err := <-tn.done:
		tn.cancel = nil
		t.Fatalf("node stopped before it was ready: %v", err)
	}
	return tn
}

func (tn *testNode) stop() {
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	<-tn.done
	tn.cancel = nil
}

func defaultConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.Data = filepath.Join(t.TempDir(), "data")
	return cfg
}

// call sends a request with a JSON (or raw string) body and decodes the
// JSON reply into out when out is not nil. It returns the status.
func call(t testing.TB, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: reply %q is not JSON: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}
