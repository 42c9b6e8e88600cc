package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const snapshotDir = "snapshots"

// SaveSnapshot writes a model snapshot beside the log: write produces the
// bytes and returns the log sequence number they reflect. The file is
// synced and renamed into place, so a crash leaves either the old snapshot
// or the new one; older snapshots are then removed.
func (s *Store) SaveSnapshot(write func(io.Writer) (uint64, error)) (uint64, error) {
	dir := filepath.Join(s.dir, snapshotDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	f, err := os.CreateTemp(dir, "engine-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	seq, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	final := filepath.Join(dir, fmt.Sprintf("engine-%020d.snap", seq))
	if err := os.Rename(f.Name(), final); err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	for _, old := range s.snapshots() {
		if old.path != final {
			os.Remove(old.path)
		}
	}
	return seq, nil
}

type snapshotFile struct {
	path string
	seq  uint64
}

// snapshots lists the snapshot files, newest first.
func (s *Store) snapshots() []snapshotFile {
	names, _ := filepath.Glob(filepath.Join(s.dir, snapshotDir, "engine-*.snap"))
	var out []snapshotFile
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "engine-"), ".snap")
		if seq, err := strconv.ParseUint(base, 10, 64); err == nil {
			out = append(out, snapshotFile{n, seq})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out
}

// LatestSnapshot opens the newest snapshot. ok is false when there is none.
// The caller closes the file.
func (s *Store) LatestSnapshot() (f *os.File, size int64, seq uint64, ok bool, err error) {
	list := s.snapshots()
	if len(list) == 0 {
		return nil, 0, 0, false, nil
	}
	f, err = os.Open(list[0].path)
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("store: snapshot: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, false, fmt.Errorf("store: snapshot: %w", err)
	}
	return f, st.Size(), list[0].seq, true, nil
}
