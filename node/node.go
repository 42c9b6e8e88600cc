// Package node assembles one streamrec process from its configuration: the
// Pebble store, the in-memory engine rebuilt from the log, the log's single
// writer and the HTTP API. It owns their start and their orderly stop.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/server"
	"github.com/streamrec/streamrec/store"
)

// Node is one running streamrec process.
type Node struct {
	Store  *store.Store
	Engine *recommend.Engine
	Writer *ingest.Writer
	API    *server.Server
	log    *slog.Logger
	http   *http.Server
}

// Open opens the store in cfg.Data and rebuilds the models from its log.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	table, err := cfg.Table()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	newEngine := func() *recommend.Engine {
		return recommend.New(recommend.Config{Table: table, ItemKNN: cfg.ItemKNNConfig(), Trending: cfg.TrendingConfig()})
	}
	w, err := ingest.New(ctx, st, newEngine, pipeline.NewDedup(cfg.DedupConfig()), log, ingest.Config{
		DedupIDs:      cfg.Dedup.IDs,
		SnapshotEvery: cfg.SnapshotEvery,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	eng := w.Engine()
	api := server.New(w, eng, st, pipeline.New(cfg.PipelineConfig(table)), server.Limits{
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		MaxBatchEvents: cfg.Limits.MaxBatchEvents,
		MaxN:           cfg.Limits.MaxN,
		MaxIDBytes:     cfg.Limits.MaxIDBytes,
	}, log)
	n := &Node{Store: st, Engine: eng, Writer: w, API: api, log: log}
	n.http = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return n, nil
}

// Serve answers HTTP on l until ctx is done, then shuts down gracefully:
// in-flight requests finish, the writer drains, the store closes.
func (n *Node) Serve(ctx context.Context, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- n.http.Serve(l) }()
	n.log.Info("serving", "addr", l.Addr().String())
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		n.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = n.http.Shutdown(sctx)
		cancel()
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close stops the writer and closes the store.
func (n *Node) Close() error {
	n.Writer.Close()
	if err := n.Store.Close(); err != nil {
		return fmt.Errorf("node: close store: %w", err)
	}
	return nil
}
