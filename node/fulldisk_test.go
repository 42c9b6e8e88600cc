package node

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/store"
)

// tmpfs mounts a small tmpfs and returns its path; the test is skipped
// where that cannot be done (it needs root, as in CI).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func ballast(t *testing.T, path string, mb int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, mb<<20), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fillUntilRefused posts batches of 100 events with 2 KB contexts until one
// is refused; it returns the event ids acknowledged and the refusal.
func fillUntilRefused(t *testing.T, n *testNode, round int) ([]string, int, string, string) {
	t.Helper()
	pad := strings.Repeat("p", 2000)
	var acked []string
	for b := range 5000 {
		var sb strings.Builder
		ids := make([]string, 100)
		sb.WriteByte('[')
		for i := range ids {
			ids[i] = fmt.Sprintf("r%d-b%d-e%d", round, b, i)
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"event_id":%q,"user_id":"u%d-%d","item_id":"i%d","type":"view","context":{"pad":%q}}`, ids[i], round, b, i, pad)
		}
		sb.WriteByte(']')
		resp, body := do(t, "POST", n.URL+"/v1/events", "", sb.String())
		if resp.StatusCode != 200 {
			return acked, resp.StatusCode, body, resp.Header.Get("Retry-After")
		}
		if !strings.Contains(body, `"accepted":100,`) {
			t.Fatalf("batch %d: %s", b, body)
		}
		acked = append(acked, ids...)
	}
	t.Fatal("the disk never filled")
	return nil, 0, "", ""
}

// TestFullDisk: on a full disk a write is answered 503 storage_unavailable
// within timeouts.durable (not left hanging) and is not acknowledged;
// /readyz says not ready for writes while reads go on; the node recovers by
// itself when space returns; SIGTERM on a full disk exits within the grace;
// and nothing acknowledged is lost.
func TestFullDisk(t *testing.T) {
	disk := tmpfs(t, "40m")
	ballast(t, filepath.Join(disk, "ballast1"), 8)
	ballast(t, filepath.Join(disk, "ballast2"), 8)
	cfg := defaultConfig(t)
	cfg.Data = filepath.Join(disk, "data")
	cfg.Timeouts.Durable = config.Duration(2 * time.Second)
	cfg.Timeouts.Shutdown = config.Duration(4 * time.Second)
	cfg.MF.TrainEveryEvents, cfg.MF.TrainEvery = 0, 0
	cfg.SnapshotEvery = 0
	n := startNode(t, cfg)

	acked, status, body, retry := fillUntilRefused(t, n, 1)
	if status != 503 || !strings.Contains(body, `"code":"storage_unavailable"`) || retry == "" {
		t.Fatalf("a write on a full disk: %d Retry-After=%q %s", status, retry, body)
	}
	t.Logf("full after %d acknowledged events: %s", len(acked), body)
	// The refused write waited timeouts.durable from its submission; the
	// store write it queued behind may have started a little later (the
	// writer was applying the group before it), and readiness turns once
	// that write is past the bound: within another timeouts.durable.
	var resp *http.Response
	var rbody string
	for until := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, rbody = do(t, "GET", n.URL+"/readyz", "", "")
		if resp.StatusCode == 503 || time.Now().After(until) {
			break
		}
	}
	if resp.StatusCode != 503 || !strings.Contains(rbody, "not ready for writes") {
		t.Fatalf("/readyz on a full disk: %d %s", resp.StatusCode, rbody)
	}
	if resp, body := do(t, "GET", n.URL+"/v1/users/u1/recommendations", "", ""); resp.StatusCode != 200 {
		t.Fatalf("a read on a full disk: %d %s", resp.StatusCode, body)
	}
	if m := scrape(t, n); !strings.Contains(m, "streamrec_storage_errors_total{cause=") {
		t.Fatalf("no storage error counted:\n%s", grepLines(m, "storage"))
	}

	// Space returns: writes resume by themselves.
	os.Remove(filepath.Join(disk, "ballast1"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := do(t, "POST", n.URL+"/v1/events", "", `[{"event_id":"after-space","user_id":"u1","item_id":"x","type":"view"}]`)
		if resp.StatusCode == 200 && strings.Contains(body, `"accepted":1,`) {
			acked = append(acked, "after-space")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume a minute after space returned: %d %s", resp.StatusCode, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, body := do(t, "GET", n.URL+"/readyz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz after recovery: %d %s", resp.StatusCode, body)
	}

	// Full again, then SIGTERM: the process must be able to exit.
	more, status, body, _ := fillUntilRefused(t, n, 2)
	acked = append(acked, more...)
	if status != 503 {
		t.Fatalf("second fill: %d %s", status, body)
	}
	start := time.Now()
	n.cancel()
	select {
	case err := <-n.done:
		n.cancel = nil
		t.Logf("stopped %s after SIGTERM on a full disk: %v", time.Since(start).Round(time.Millisecond), err)
		if err != nil && !errors.Is(err, ErrUncleanShutdown) {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(time.Duration(cfg.Timeouts.Shutdown) + 10*time.Second):
		t.Fatal("SIGTERM on a full disk did not stop the node within the grace")
	}

	// Nothing acknowledged was lost: free the space, let the old store
	// finish closing, and read the log.
	os.Remove(filepath.Join(disk, "ballast2"))
	var st *store.Store
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if st, err = store.Open(cfg.Data); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	stored := map[string]bool{}
	if err := st.Replay(1, func(_ uint64, r event.Record) error {
		stored[r.Event.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, id := range acked {
		if !stored[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events are not in the log", lost, len(acked))
	}
	t.Logf("%d acknowledged events, all in the log (%d records)", len(acked), len(stored))
}

// TestDataDirectoryInUse: a second process on a data directory says so.
func TestDataDirectoryInUse(t *testing.T) {
	n := startNode(t, defaultConfig(t))
	_, err := store.Open(n.cfg.Data)
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "in use by another streamrec process") {
		t.Fatalf("second open: %v", err)
	}
}
