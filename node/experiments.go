package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/push/kafka"
	"github.com/streamrec/streamrec/recommend"
)

// keyFile holds the key recommendation ids are signed with, in the data
// directory: ids stay valid across restarts.
const keyFile = "recommendation.key"

// startExperiments switches experiments on: the tracker the engine keeps,
// the key of recommendation ids, and the experiments the configuration
// file defines, written to the log where they are new or changed.
func (n *Node) startExperiments(ctx context.Context, eng *recommend.Engine) error {
	t, ok := eng.Part(experiment.Name).(*experiment.Tracker)
	if !ok {
		return errors.New("node: experiments are enabled but the engine keeps no experiments part")
	}
	path := filepath.Join(n.cfg.Data, keyFile)
	switch {
	case n.cfg.Experiments.KeyFile != "":
		path = n.cfg.Experiments.KeyFile
	case n.cfg.Kafka.ModelsDir != "":
		path = filepath.Join(n.cfg.Kafka.ModelsDir, keyFile) // shared: every replica recognises every replica's ids
	case len(n.cfg.Kafka.Brokers) > 0:
		n.log.Warn("cluster mode without a shared recommendation id key: an impression posted to another replica than the one that answered is refused; set experiments.key_file (or kafka.models_dir) to a file every replica reads")
	}
	key, err := loadKey(path)
	if err != nil {
		return err
	}
	n.API.SetExperiments(t, experiment.NewIDs(key))
	for _, g := range []struct {
		name, help string
		of         func(experiment.Arm) float64
	}{
		{"streamrec_experiment_users", "Users exposed to each variant of each experiment (holdout included).", func(a experiment.Arm) float64 { return float64(a.Users) }},
		{"streamrec_experiment_impressions", "Items shown to the users of each variant.", func(a experiment.Arm) float64 { return float64(a.Impressions) }},
		{"streamrec_experiment_clicks", "Shown items the users of each variant then used (attributed events).", func(a experiment.Arm) float64 { return float64(a.Clicks) }},
		{"streamrec_experiment_conversions", "Conversions attributed to each variant.", func(a experiment.Arm) float64 { return float64(a.Conversions) }},
	} {
		n.Metrics.GaugeLabelled2(g.name, g.help, "experiment", "variant", func() map[[2]string]float64 { return t.Figures(g.of) })
	}
	return n.defineFromFile(ctx, t)
}

// defineFromFile writes each experiment of the configuration file to the
// log when the log does not hold it, or when the file changed it since it
// last wrote it; an unchanged file leaves alone what the API changed since
// (a stop, a ramp). A changed one keeps its users: a change of its salt or
// variants, or one that would move users, stops the start naming it.
func (n *Node) defineFromFile(ctx context.Context, t *experiment.Tracker) error {
	for _, d := range n.cfg.Experiments.Define {
		logged, ok := t.Definition(d.Name)
		last, fromFile := t.FileDefinition(d.Name)
		if ok && d.Start.IsZero() {
			d.Start = logged.Start // a file without a start keeps the first one
		}
		d.Normalize(time.Now())
		if fromFile && reflect.DeepEqual(last, d) {
			continue // the file did not change: the log's definition stands
		}
		if ok {
			if !experiment.SameIdentity(logged, d) {
				return fmt.Errorf("config: experiments.define %s: its salt or variants differ from the running experiment's; that would move users: define a new experiment instead", d.Name)
			}
			if err := t.Check(d, false); err != nil {
				return fmt.Errorf("config: experiments.define %s: %w", d.Name, err)
			}
		}
		if _, err := n.Writer.Submit(ctx, []event.Record{{Kind: event.KindExperiment, Doc: experiment.FileRecord(d)}}); err != nil {
			return fmt.Errorf("node: define experiment %s: %w", d.Name, err)
		}
		n.log.Info("experiment defined from the configuration file", "experiment", d.Name, "changed", ok)
	}
	return nil
}

// loadKey reads the key in path, or makes one there. Several replicas
// starting at once on a shared directory agree: the file is created only
// if absent (a hard link of a complete temporary file), then read.
func loadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b[:32], nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	if err == nil {
		return nil, fmt.Errorf("node: recommendation id key %s: %d bytes, want 32", path, len(b))
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	tmp.Close()
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("node: recommendation id key: %w", err)
	}
	b, err = os.ReadFile(path) // ours, or the one another replica made first
	if err != nil || len(b) < 32 {
		return nil, fmt.Errorf("node: recommendation id key %s: %v", path, err)
	}
	return b[:32], nil
}

// startPublisher connects the Kafka topic of updated recommendations when
// streams.kafka names brokers, and follows the users it names.
func (n *Node) startPublisher(ctx context.Context) error {
	k := n.cfg.Streams.Kafka
	if len(k.Brokers) == 0 {
		return nil
	}
	p, err := kafka.New(kafka.Config{Brokers: k.Brokers, Topic: k.Topic})
	if err != nil {
		return err
	}
	n.publisher = p
	n.API.SetPublisher(p)
	n.Metrics.Counter("streamrec_push_kafka_sent_total", "Updated lists produced to the Kafka topic.", func() float64 { s, _, _ := p.Stats(); return float64(s) })
	n.Metrics.Counter("streamrec_push_kafka_failed_total", "Updated lists the Kafka brokers refused or did not take in time.", func() float64 { _, f, _ := p.Stats(); return float64(f) })
	n.Metrics.Counter("streamrec_push_kafka_dropped_total", "Updated lists dropped: the producer's buffer was full.", func() float64 { _, _, d := p.Stats(); return float64(d) })
	for _, u := range k.Users {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.API.Follow(ctx, u, k.N)
		}()
	}
	n.log.Info("publishing updated recommendations to Kafka", "brokers", k.Brokers, "topic", k.Topic, "followed_users", len(k.Users))
	return nil
}
