// Package node assembles one streamrec process from its configuration: the
// Pebble store, the in-memory engine rebuilt from the log, the log's single
// writer, the HTTP API and its metrics. It owns their start and their
// orderly stop.
//
// The HTTP listener answers from the first moment: /healthz says the
// process is up, /readyz answers 503 with the rebuild's progress until the
// models are loaded, and the API answers 503 until then too.
package node

import (
	"cmp"
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"github.com/streamrec/streamrec/cluster"
	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/metrics"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/push"
	"github.com/streamrec/streamrec/push/kafka"
	"github.com/streamrec/streamrec/recommend"
	"github.com/streamrec/streamrec/server"
	"github.com/streamrec/streamrec/store"
)

// Node is one running streamrec process.
type Node struct {
	Store   *store.Store
	Metrics *metrics.Metrics
	// Engine, Writer and API are set once Ready is closed.
	Engine *recommend.Engine
	Writer *ingest.Writer
	API    *server.Server
	// Hub tells open recommendation streams of changes.
	Hub *push.Hub

	cfg      config.Config
	log      *slog.Logger
	http     *http.Server
	admin    *http.Server
	api      atomic.Pointer[http.Handler]
	ready    chan struct{}
	progress atomic.Pointer[[2]uint64] // rebuild: done, total
	bg       sync.WaitGroup            // background work (training) to wait for at shutdown
	trainMu  sync.Mutex                // one background training (mf or ranker) at a time
	// publisher, when streams.kafka is configured, takes updated lists.
	publisher *kafka.Publisher
	// remote, in cluster mode, is the log on Kafka.
	remote *cluster.Log
	// cache, with redis.url, is the response cache replicas share.
	cache  *cluster.Cache
	access *server.Access
	// elected: one replica of the cluster trains (kafka.models_dir);
	// leading: this is the one.
	elected bool
	leading atomic.Bool
	// checkpointSeq is the newest checkpoint this replica published, or
	// the one its data directory started from.
	checkpointSeq atomic.Uint64
}

// Routes lists the routes the node answers itself, beside the API's.
func Routes() []string { return []string{"GET /healthz", "GET /readyz", "GET /metrics"} }

// Open validates the configuration and opens the store. The models are
// rebuilt by Serve, while the listener already answers health checks.
func Open(cfg config.Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seeded, err := seedFromCheckpoint(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	access, err := newAccess(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	if !access.Enabled() {
		log.Warn("no API keys configured: anyone who can reach the listener may read and write", "addr", cfg.Addr)
	}
	n := &Node{Store: st, Metrics: metrics.New(), Hub: push.New(), cfg: cfg, log: log, ready: make(chan struct{}), access: access}
	n.progress.Store(&[2]uint64{})
	n.checkpointSeq.Store(seeded)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", n.Metrics.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := n.api.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		writeStarting(w, n.progress.Load())
	})
	limited := server.Limit(server.Concurrency{
		MaxInFlight:       cfg.Limits.MaxInFlight,
		MaxInFlightWrites: cfg.Limits.MaxInFlightWrites,
		Open:              openPaths,
	}, mux)
	route := func(r *http.Request) string {
		if rt := server.RouteOf(mux, r); rt != "unmatched" {
			return rt
		}
		if h := n.api.Load(); h != nil {
			return n.API.Route(r)
		}
		return "starting"
	}
	n.http = &http.Server{
		Handler:           server.Observe(n.Metrics, log, route, server.Canonical(access.Wrap(limited))),
		ReadHeaderTimeout: time.Duration(cfg.Timeouts.ReadHeader),
		ReadTimeout:       time.Duration(cfg.Timeouts.Read),
		WriteTimeout:      time.Duration(cfg.Timeouts.Write),
		IdleTimeout:       time.Duration(cfg.Timeouts.Idle),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return n, nil
}

// openPaths need no key and are never refused for load: health checks.
var openPaths = []string{"/healthz", "/readyz"}

func newAccess(cfg config.Config) (*server.Access, error) {
	return newAccessFor(cfg, "", openPaths)
}

// newAccessFor builds the access checks of one listener: require, when set,
// is the scope every request there needs.
func newAccessFor(cfg config.Config, require server.Scope, open []string) (*server.Access, error) {
	ac := server.AccessConfig{Rate: cfg.Limits.RatePerSecond, Burst: cfg.Limits.Burst,
		FailRate: cfg.Limits.AuthFailuresPerSecond, FailBurst: cfg.Limits.AuthFailureBurst,
		Open: open, Require: require}
	for _, k := range cfg.APIKeys {
		key := server.Key{Secret: k.Key}
		for _, s := range k.Scopes {
			key.Scopes = append(key.Scopes, server.Scope(s))
		}
		ac.Keys = append(ac.Keys, key)
	}
	a, err := server.NewAccess(ac)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return a, nil
}

// ServeAdmin serves pprof, expvar and /metrics on l, a listener separate
// from the API's, until Serve shuts down. With API keys configured every
// request there needs the admin scope; without keys the configuration
// allows only a loopback address (or --insecure).
func (n *Node) ServeAdmin(l net.Listener) error {
	access, err := newAccessFor(n.cfg, server.ScopeAdmin, nil)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("/metrics", n.Metrics.Handler())
	n.admin = &http.Server{Handler: access.Wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	if !access.Enabled() && !config.IsLoopback(l.Addr().String()) {
		n.log.Warn("admin listener on a non-loopback address with no API keys (--insecure): pprof, expvar and metrics are open to anyone who can reach it", "addr", l.Addr().String())
	}
	n.log.Info("admin listener (pprof, expvar, metrics)", "addr", l.Addr().String(), "keys_required", access.Enabled())
	go n.admin.Serve(l)
	return nil
}

// Ready is closed once the models are loaded and the API answers.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// start rebuilds the models and switches the API on.
func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	newEngine := func() *recommend.Engine { return recommend.New(cfg.EngineConfig(table)) }
	var remote ingest.Remote
	if len(cfg.Kafka.Brokers) > 0 {
		l, err := cluster.Open(ctx, cluster.Config{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.Topic, Replication: cfg.Kafka.Replication, Retention: time.Duration(cfg.Kafka.Retention)})
		if err != nil {
			return err
		}
		n.remote = l
		remote = l
		n.log.Info("the log is a Kafka topic (cluster mode)", "brokers", cfg.Kafka.Brokers, "topic", cfg.Kafka.Topic)
	}
	w, err := ingest.New(ctx, n.Store, newEngine, pipeline.NewDedup(cfg.DedupConfig()), n.log, ingest.Config{
		Remote:        remote,
		DedupIDs:      cfg.Dedup.IDs,
		SnapshotEvery: cfg.SnapshotEvery,
		Durable:       time.Duration(cfg.Timeouts.Durable),
		Metrics:       n.Metrics,
		Progress:      func(done, total uint64) { n.progress.Store(&[2]uint64{done, total}) },
		Applied:       n.Hub.Applied,
	})
	if err != nil {
		return err
	}
	eng := w.Engine()
	n.Engine, n.Writer = eng, w
	n.API = server.New(w, eng, n.Store, pipeline.New(cfg.PipelineConfig(table)), server.Limits{
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		MaxBatchEvents: cfg.Limits.MaxBatchEvents,
		MaxN:           cfg.Limits.MaxN,
		MaxIDBytes:     cfg.Limits.MaxIDBytes,
	}, n.log, n.Metrics)
	n.API.SetPush(n.Hub, time.Duration(cfg.Streams.Interval), cfg.Streams.Max)
	n.http.RegisterOnShutdown(n.API.CloseStreams)
	n.Metrics.Gauge("streamrec_streams_open", "Recommendation streams open.", func() float64 { return float64(n.Hub.Len()) })
	if cfg.Experiments.Enabled {
		if err := n.startExperiments(ctx, eng); err != nil {
			return err
		}
	}
	if err := n.startPublisher(ctx); err != nil { // after the experiments: followers personalise
		return err
	}
	if url := cfg.Redis.URL; url != "" {
		c, err := cluster.OpenCache(url, time.Duration(cfg.Redis.CacheTTL))
		if err != nil {
			return err
		}
		n.cache = c
		n.API.SetCache(c)
		n.access.SetShared(c.Allow) // rate limits across replicas
		n.Metrics.Counter("streamrec_cache_hits_total", "Recommendation answers served from the shared Redis cache.", func() float64 { h, _, _ := c.Stats(); return float64(h) })
		n.Metrics.Counter("streamrec_cache_misses_total", "Recommendation answers the shared cache did not hold (Redis down included).", func() float64 { _, m, _ := c.Stats(); return float64(m) })
		n.Metrics.Counter("streamrec_cache_errors_total", "Redis calls that failed (the answer then came from this replica alone).", func() float64 { _, _, e := c.Stats(); return float64(e) })
		n.log.Info("shared response cache on Redis", "url", url, "ttl", time.Duration(cfg.Redis.CacheTTL))
	}
	n.Metrics.Counter("streamrec_answer_cache_hits_total", "Recommendation answers served from the engine's answer cache (kept for its current state only: never stale).", func() float64 { h, _ := eng.AnswerStats(); return float64(h) })
	n.Metrics.Counter("streamrec_answer_cache_misses_total", "Recommendation answers the engine's answer cache did not hold (computed, then kept).", func() float64 { _, m := eng.AnswerStats(); return float64(m) })
	n.Metrics.Gauge("streamrec_engine_users", "Users known to the models.", func() float64 { return float64(eng.Stats().Users) })
	n.Metrics.Gauge("streamrec_engine_items", "Items known to the models.", func() float64 { return float64(eng.Stats().Items) })
	n.Metrics.Gauge("streamrec_engine_events", "Interactions held in memory.", func() float64 { return float64(eng.Stats().Events) })
	n.Metrics.GaugeLabelled("streamrec_model_bytes", "Estimated memory each model holds (and the users' histories, source=\"history\").", "source", func() map[string]float64 {
		m := eng.Memory()
		out := map[string]float64{"history": float64(m.History)}
		for k, v := range m.Models {
			out[k] = float64(v)
		}
		return out
	})
	n.Metrics.Gauge("streamrec_log_last_sequence", "Sequence number of the last record in the log.", func() float64 { return float64(n.Store.LastSeq()) })
	n.loadModel(ctx)
	if n.remote != nil {
		n.startTrainerElection(ctx, n.remote)
		n.startSource(ctx, pipeline.New(cfg.PipelineConfig(table)))
	}
	t := &trainer{n: n}
	n.Metrics.Gauge("streamrec_mf_model_age_seconds", "Seconds since the served matrix-factorisation model finished training (0: none yet).", func() float64 { return modelAge(eng.MFTrained()) })
	n.Metrics.Gauge("streamrec_mf_trained_through_sequence", "Log records the served matrix-factorisation model was trained on.", func() float64 {
		if m := eng.MFTrained(); m != nil {
			return float64(m.Seq)
		}
		return 0
	})
	n.Metrics.Gauge("streamrec_mf_training_progress_ratio", "Share of the running training's steps done (0 when none runs).", func() float64 {
		if p := t.progress.Load(); p != nil && t.running.Load() && p[1] > 0 {
			return float64(p[0]) / float64(p[1])
		}
		return 0
	})
	n.Metrics.Counter("streamrec_mf_fold_ins_total", "User and item vectors re-solved against fixed factors since start (fold-in).", func() float64 { return float64(eng.Stats().MF.FoldIns) })
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t.run(ctx, time.Second)
	}()
	if cfg.Ranker.Enabled {
		rt := newRankTrainer(n, newEngine)
		rt.metrics()
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			rt.run(ctx, time.Second)
		}()
	}
	h := n.API.Handler()
	n.api.Store(&h)
	close(n.ready)
	return nil
}

func (n *Node) isReady() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	body := map[string]any{"status": "ok", "ready": n.isReady(), "last_seq": n.Store.LastSeq()}
	if n.isReady() {
		body["engine"] = n.Engine.Stats()
		body["applied_seq"] = n.Writer.Applied()
		if n.remote != nil {
			body["log_lag"] = n.Writer.Lag() // records of the Kafka log not applied here yet
		}
		body["writable"] = true
		if err := n.Writer.Health(); err != nil {
			body["writable"], body["storage_error"] = false, err.Error()
		}
	}
	server.WriteJSON(w, http.StatusOK, body)
}

// readyz is 503 while the models load, and while writes cannot become
// durable (a full or stalled disk): a balancer then sends writes elsewhere.
// Reads keep being answered meanwhile.
func (n *Node) readyz(w http.ResponseWriter, _ *http.Request) {
	if !n.isReady() {
		writeStarting(w, n.progress.Load())
		return
	}
	if err := n.Writer.Health(); err != nil {
		w.Header().Set("Retry-After", "5")
		server.WriteError(w, http.StatusServiceUnavailable, "storage_unavailable", "not ready for writes (reads are served): "+err.Error())
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "last_seq": n.Store.LastSeq()})
}

func writeStarting(w http.ResponseWriter, p *[2]uint64) {
	w.Header().Set("Retry-After", "1")
	server.WriteError(w, http.StatusServiceUnavailable, "starting",
		fmt.Sprintf("rebuilding the models from the log: %d of %d records", p[0], p[1]))
}

// Serve answers HTTP on l, rebuilds the models (the API answers 503 until
// then), and runs until ctx is done; then it shuts down gracefully:
// in-flight requests finish, the writer drains and snapshots, the store
// closes. A failed rebuild stops the node with its error.
func (n *Node) Serve(ctx context.Context, l net.Listener) error {
	// Connections past the limit wait in the kernel's listen queue.
	l = netutil.LimitListener(l, n.cfg.Limits.MaxConnections)
	errc := make(chan error, 2)
	go func() {
		if n.cfg.TLS.CertFile != "" {
			errc <- n.http.ServeTLS(l, n.cfg.TLS.CertFile, n.cfg.TLS.KeyFile)
			return
		}
		errc <- n.http.Serve(l)
	}()
	n.log.Info("listening", "addr", l.Addr().String())
	rctx, stopRebuild := context.WithCancel(ctx)
	defer stopRebuild()
	started := make(chan struct{})
	go func() {
		defer close(started)
		if err := n.start(rctx); err != nil {
			if rctx.Err() == nil {
				errc <- fmt.Errorf("rebuild: %w", err)
			}
			return
		}
		n.log.Info("ready")
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		n.log.Info("shutting down")
	}
	grace := time.Duration(n.cfg.Timeouts.Shutdown)
	deadline := time.Now().Add(grace)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	if serr := n.http.Shutdown(sctx); errors.Is(serr, context.DeadlineExceeded) {
		// Requests still running past the grace are cut off; none of them
		// was acknowledged, so this is no failure of the node.
		n.log.Warn("requests still running after the shutdown grace were cut off", "grace", grace)
		n.http.Close()
	} else if err == nil {
		err = serr
	}
	if n.admin != nil {
		n.admin.Shutdown(sctx)
		n.admin.Close()
	}
	cancel()
	stopRebuild() // also stops a training in progress
	<-started     // the rebuild reads the store: it must stop before the store closes
	n.bg.Wait()
	if n.publisher != nil {
		pctx, pcancel := context.WithDeadline(context.Background(), deadline)
		n.publisher.Close(pctx) // what is buffered, within the grace
		pcancel()
	}
	// Draining the writer and closing the store wait on the disk: a full or
	// stalled one would hold them forever, so they get what is left of the
	// grace (at least a second). Everything acknowledged is durable already.
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case cerr := <-closed:
		if err == nil {
			err = cerr
		}
	case <-time.After(max(time.Until(deadline), time.Second)):
		err = fmt.Errorf("%w: the store did not close within the shutdown grace (%s; %s); everything acknowledged is durable, writes not acknowledged may or may not be stored",
			ErrUncleanShutdown, grace, cmp.Or(n.Store.Trouble(), "the disk is slow or stalled"))
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ErrUncleanShutdown is returned by Serve when the store could not be closed
// within the shutdown grace (the process should exit anyway: a restart
// recovers from the log).
var ErrUncleanShutdown = errors.New("unclean shutdown")

// Close stops the writer (if the models were loaded) and closes the store.
func (n *Node) Close() error {
	if n.isReady() {
		n.Writer.Close()
	}
	if n.remote != nil {
		n.remote.Close()
	}
	if n.cache != nil {
		n.cache.Close()
	}
	if err := n.Store.Close(); err != nil {
		return fmt.Errorf("node: close store: %w", err)
	}
	return nil
}
