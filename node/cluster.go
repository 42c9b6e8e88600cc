package node

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/streamrec/streamrec/cluster"
	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/pipeline"
)

// leads says whether this replica trains: always on one node; in a cluster
// with a shared models directory, only the elected replica.
func (n *Node) leads() bool { return !n.elected || n.leading.Load() }

// startTrainerElection joins the election of the one replica that trains
// and publishes checkpoints (cluster mode with kafka.models_dir), and
// watches the shared directory for the models the elected one writes.
func (n *Node) startTrainerElection(ctx context.Context, l *cluster.Log) {
	dir := n.cfg.Kafka.ModelsDir
	if dir == "" {
		return
	}
	n.elected = true
	n.Metrics.Gauge("streamrec_trainer_elected", "1 while this replica is the one the cluster elected to train and publish models and checkpoints.", func() float64 {
		if n.leading.Load() {
			return 1
		}
		return 0
	})
	if every := time.Duration(n.cfg.Kafka.CheckpointEvery); every > 0 {
		n.Metrics.Gauge("streamrec_checkpoint_sequence", "Log records the newest shared checkpoint this replica published (or started from) holds.", func() float64 { return float64(n.checkpointSeq.Load()) })
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.publishCheckpoints(ctx, every)
		}()
	}
	n.bg.Add(2)
	go func() {
		defer n.bg.Done()
		for wait := time.Second; ctx.Err() == nil; wait = min(2*wait, time.Minute) {
			err := l.Elect(ctx, n.cfg.Kafka.Topic+"-trainer", n.cfg.Kafka.Topic+"-trainer", time.Duration(n.cfg.Kafka.SessionTimeout), func(leading bool) {
				n.leading.Store(leading)
				n.log.Info("trainer election", "this_replica_trains", leading)
			}, func(err error) {
				n.log.Warn("trainer election: the group answered an error (is kafka.session_timeout within the brokers' group.min.session.timeout.ms, 6 s by default?)", "err", err)
			})
			if ctx.Err() != nil {
				return
			}
			n.log.Error("trainer election failed; retrying", "err", err, "in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}()
	go func() {
		defer n.bg.Done()
		n.watchModels(ctx, dir, time.Second)
	}()
}

// startSource consumes the application's own event topic into the log
// (kafka.source_topic), sharing its partitions with the other replicas.
func (n *Node) startSource(ctx context.Context, pipe *pipeline.Pipeline) {
	k := n.cfg.Kafka
	if k.SourceTopic == "" {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		cfg := cluster.SourceConfig{Brokers: k.Brokers, Topic: k.SourceTopic, Group: k.SourceGroup, DeadLetter: k.DeadLetterTopic, MaxEvents: n.cfg.Limits.MaxBatchEvents}
		sink := func(ctx context.Context, recs []event.Record) error {
			_, err := n.Writer.Submit(ctx, recs)
			return err
		}
		n.log.Info("consuming the application's event topic", "topic", k.SourceTopic, "group", k.SourceGroup, "dead_letter", k.DeadLetterTopic)
		if err := cluster.Consume(ctx, cfg, pipe, sink, n.log); err != nil {
			n.log.Error("consuming the application's event topic stopped", "err", err)
		}
	}()
}

// publish copies a model file the elected trainer wrote to the shared
// directory (atomically: the others never read half a file).
func (n *Node) publish(local string) {
	if !n.elected {
		return
	}
	if !n.leading.Load() {
		// Demoted while it trained: another replica trains now, and its
		// models are the ones to serve.
		n.log.Warn("not publishing a model trained before this replica lost the trainer's election", "path", local)
		return
	}
	dst := filepath.Join(n.cfg.Kafka.ModelsDir, filepath.Base(local))
	if err := copyFile(dst, local); err != nil {
		n.log.Error("cannot publish the model to the shared directory; the other replicas keep theirs", "path", dst, "err", err)
		return
	}
	n.log.Info("model published to the other replicas", "path", dst)
}

// watchModels installs the models the elected trainer publishes, while
// this replica does not train itself.
func (n *Node) watchModels(ctx context.Context, dir string, every time.Duration) {
	seen := map[string]time.Time{}
	onTick(ctx, every, func() {
		if n.leads() {
			return
		}
		for _, name := range []string{filepath.Base(ModelFile(n.cfg.Data)), filepath.Base(RankerFile(n.cfg.Data))} {
			shared := filepath.Join(dir, name)
			st, err := os.Stat(shared)
			if err != nil || !st.ModTime().After(seen[name]) {
				continue
			}
			seen[name] = st.ModTime()
			local := filepath.Join(n.cfg.Data, "models", name)
			// Under the training lock: a training of this replica's own
			// (from before it lost the election) cannot rename over the
			// copy before it is loaded.
			n.trainMu.Lock()
			err = copyFile(local, shared)
			if err == nil {
				if name == filepath.Base(ModelFile(n.cfg.Data)) {
					n.loadModel(ctx)
				} else {
					n.loadRanker()
				}
			}
			n.trainMu.Unlock()
			if err != nil {
				n.log.Warn("cannot copy the published model", "path", shared, "err", err)
				continue
			}
			n.Hub.All()
		}
	})
}

// onTick calls fn every interval until ctx ends.
func onTick(ctx context.Context, every time.Duration, fn func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// copyFile writes a copy of src to dst atomically (WriteModelFile).
func copyFile(dst, src string) error {
	return WriteModelFile(dst, func(f *os.File) error {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(f, in)
		return err
	})
}
