package node

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/store"
)

// Checkpoints: in a cluster with a shared directory (kafka.models_dir), the
// elected replica publishes, every kafka.checkpoint_every, a copy of its
// data directory — the log's copy, the catalogue, the newest model snapshot
// — to models_dir/checkpoints/checkpoint-SEQ (SEQ: the records it holds at
// least). A replica started with an empty data directory copies the newest
// one in before it opens its store, so it loads the snapshot, replays its
// copy after it, and reads only the topic's tail: the topic need not keep
// its whole history (kafka.retention).

const (
	checkpointPrefix = "checkpoint-"
	keepCheckpoints  = 2           // the newest and the one before: a replica may be copying it
	seedDir          = ".seed"     // in the data directory: the checkpoint being copied in
	seedComplete     = ".complete" // in seedDir: the copy is whole, what is left is moving it
)

func checkpointsDir(cfg config.Config) string {
	return filepath.Join(cfg.Kafka.ModelsDir, "checkpoints")
}

type checkpoint struct {
	path string
	seq  uint64
}

// checkpoints lists the published checkpoints in dir, newest first.
func checkpoints(dir string) []checkpoint {
	entries, _ := os.ReadDir(dir)
	var out []checkpoint
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, checkpointPrefix) {
			continue
		}
		if seq, err := strconv.ParseUint(strings.TrimPrefix(name, checkpointPrefix), 10, 64); err == nil {
			out = append(out, checkpoint{filepath.Join(dir, name), seq})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out
}

// publishCheckpoints publishes a checkpoint every interval while this
// replica is the elected one and its log grew since the newest published.
func (n *Node) publishCheckpoints(ctx context.Context, every time.Duration) {
	onTick(ctx, every, func() {
		if !n.leads() {
			return
		}
		var newest uint64
		if list := checkpoints(checkpointsDir(n.cfg)); len(list) > 0 {
			newest = list[0].seq
		}
		if n.Store.LastSeq() <= newest {
			return
		}
		start := time.Now()
		seq, err := n.publishCheckpoint()
		if err != nil {
			n.log.Error("cannot publish a checkpoint; a new replica starts from the previous one (or the topic's start)", "err", err)
			return
		}
		n.checkpointSeq.Store(seq)
		n.log.Info("checkpoint published", "seq", seq, "seconds", time.Since(start).Seconds())
	})
}

// publishCheckpoint writes the store's checkpoint beside it (hard links:
// cheap), copies it to the shared directory under a temporary name, renames
// it into place (the others never see half of one) and removes all but the
// newest keepCheckpoints.
func (n *Node) publishCheckpoint() (uint64, error) {
	local := filepath.Join(n.cfg.Data, "checkpoint.tmp")
	os.RemoveAll(local) // a crashed publication's
	defer os.RemoveAll(local)
	seq, err := n.Store.Checkpoint(local)
	if err != nil {
		return 0, err
	}
	shared := checkpointsDir(n.cfg)
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(shared, ".tmp-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp) // no-op once renamed
	if err := copyTree(tmp, local); err != nil {
		return 0, fmt.Errorf("copying the checkpoint: %w", err)
	}
	final := filepath.Join(shared, fmt.Sprintf("%s%020d", checkpointPrefix, seq))
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(final); serr == nil {
			return seq, nil // the same records, published already
		}
		return 0, err
	}
	syncDir(shared)
	if list := checkpoints(shared); len(list) > keepCheckpoints {
		for _, old := range list[keepCheckpoints:] {
			os.RemoveAll(old.path)
		}
	}
	// Temporary copies a crashed replica left behind.
	if stale, _ := filepath.Glob(filepath.Join(shared, ".tmp-*")); len(stale) > 0 {
		for _, p := range stale {
			if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > time.Hour {
				os.RemoveAll(p)
			}
		}
	}
	return seq, nil
}

// seedFromCheckpoint fills an empty data directory from the newest shared
// checkpoint (cluster mode with kafka.models_dir). The copy goes to
// DATA/.seed first and is marked complete before its files are moved into
// place, so a crash at any point leaves either nothing (copied again at
// the next start) or a complete copy whose moving the next start finishes.
// It returns the checkpoint's sequence number, 0 when none was used.
func seedFromCheckpoint(cfg config.Config, log *slog.Logger) (uint64, error) {
	if len(cfg.Kafka.Brokers) == 0 || cfg.Kafka.ModelsDir == "" {
		return 0, nil
	}
	staging := filepath.Join(cfg.Data, seedDir)
	if _, err := os.Stat(filepath.Join(staging, seedComplete)); err == nil {
		log.Info("finishing the copy of a shared checkpoint into the data directory")
		return 0, moveSeed(staging, cfg.Data)
	}
	if store.Exists(cfg.Data) {
		os.RemoveAll(staging)
		return 0, nil
	}
	list := checkpoints(checkpointsDir(cfg))
	if len(list) == 0 {
		log.Info("no shared checkpoint yet: this replica reads the topic from its start", "dir", checkpointsDir(cfg))
		return 0, nil
	}
	var err error
	for _, cp := range list[:min(keepCheckpoints, len(list))] {
		os.RemoveAll(staging)
		start := time.Now()
		if err = copyTree(staging, cp.path); err != nil {
			// Removed under us by the publisher (it keeps two): the next.
			log.Warn("cannot copy the shared checkpoint; trying the one before", "path", cp.path, "err", err)
			continue
		}
		if err = writeSynced(filepath.Join(staging, seedComplete)); err != nil {
			return 0, err
		}
		if err = moveSeed(staging, cfg.Data); err != nil {
			return 0, err
		}
		log.Info("data directory started from the shared checkpoint", "path", cp.path, "seq", cp.seq, "seconds", time.Since(start).Seconds())
		return cp.seq, nil
	}
	os.RemoveAll(staging)
	return 0, fmt.Errorf("node: cannot copy a shared checkpoint from %s: %w", checkpointsDir(cfg), err)
}

// moveSeed moves a complete copy's files from staging into dir, then
// removes staging.
func moveSeed(staging, dir string) error {
	err := filepath.WalkDir(staging, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(staging, path)
		if rel == seedComplete {
			return nil
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		return os.Rename(path, dst)
	})
	if err != nil {
		return fmt.Errorf("node: moving the shared checkpoint into %s: %w", dir, err)
	}
	syncDir(dir)
	return os.RemoveAll(staging)
}

// copyTree copies the directory src to dst (made), each file synced.
func copyTree(dst, src string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		return store.CopyFile(to, path)
	})
}

func writeSynced(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
