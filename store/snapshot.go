package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

const snapshotDir = "snapshots"

// SaveSnapshot writes a model snapshot beside the log: write produces the
// bytes and returns the log sequence number they reflect; side, when not
// nil, writes the companion file of the same sequence number (the
// de-duplication window), read back with SnapshotSide. Each file is synced
// and renamed into place (the side file first), so a crash leaves either
// the old snapshot or the new one; older snapshots are then removed.
func (s *Store) SaveSnapshot(write func(io.Writer) (uint64, error), side func(io.Writer) error) (uint64, error) {
	dir := filepath.Join(s.dir, snapshotDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	var seq uint64
	tmp, err := writeTemp(dir, "engine-*.tmp", func(w io.Writer) (err error) {
		seq, err = write(w)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	defer os.Remove(tmp) // no-op once renamed
	if side != nil {
		stmp, err := writeTemp(dir, "side-*.tmp", side)
		if err != nil {
			return 0, fmt.Errorf("store: snapshot side file: %w", err)
		}
		defer os.Remove(stmp)
		if err := os.Rename(stmp, sidePath(dir, seq)); err != nil {
			return 0, fmt.Errorf("store: snapshot side file: %w", err)
		}
	}
	final := filepath.Join(dir, fmt.Sprintf("engine-%020d.snap", seq))
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the renames durable
		d.Close()
	}
	s.snapMu.Lock() // a checkpoint links the newest snapshot: not while it goes
	defer s.snapMu.Unlock()
	for _, old := range s.snapshots() {
		if old.path != final {
			os.Remove(old.path)
			os.Remove(sidePath(dir, old.seq))
		}
	}
	return seq, nil
}

func sidePath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("side-%020d.bin", seq))
}

// writeTemp writes a synced temporary file in dir and returns its name.
func writeTemp(dir, pattern string, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// SnapshotSide opens the side file saved with the snapshot of seq;
// ErrNotFound when there is none (a snapshot from before side files).
func (s *Store) SnapshotSide(seq uint64) (*os.File, error) {
	f, err := os.Open(sidePath(filepath.Join(s.dir, snapshotDir), seq))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: snapshot side file: %w", err)
	}
	return f, nil
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

// Checkpoint writes a consistent copy of the store to dst (a directory that
// must not exist yet, on the same file system as the store for it to be
// cheap: Pebble hard-links its tables), with the newest model snapshot and
// its side file in dst/snapshots. The copy is itself a data directory: a
// replica started on it loads the snapshot and replays the copy's log after
// it. It returns the sequence number the copy's log holds at least.
func (s *Store) Checkpoint(dst string) (uint64, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	last := s.LastSeq()
	if err := s.db.Checkpoint(dst, pebble.WithFlushedWAL()); err != nil {
		return 0, fmt.Errorf("store: checkpoint: %w", err)
	}
	if list := s.snapshots(); len(list) > 0 {
		dir := filepath.Join(dst, snapshotDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("store: checkpoint: %w", err)
		}
		src := filepath.Join(s.dir, snapshotDir)
		names := []string{filepath.Base(list[0].path)}
		if _, err := os.Stat(sidePath(src, list[0].seq)); err == nil {
			names = append(names, filepath.Base(sidePath(src, list[0].seq)))
		}
		for _, name := range names {
			if err := linkOrCopy(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
				return 0, fmt.Errorf("store: checkpoint: %w", err)
			}
		}
	}
	return last, nil
}

// linkOrCopy hard-links src to dst, or copies it where links cannot go.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return CopyFile(dst, src)
}

// CopyFile copies src to dst (created or truncated) and syncs it.
func CopyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Exists says whether dir holds a store (Pebble's files), as opposed to
// nothing yet or only other files.
func Exists(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	return len(m) > 0
}
