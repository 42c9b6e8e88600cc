package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"

	"github.com/streamrec/streamrec/config"
	"github.com/streamrec/streamrec/node"
)

const serveUsage = `Usage: streamrec serve [flags]

Runs the HTTP API (docs: api/openapi.yaml) on --addr with the data in
--data: events are stored durably and reflected in the next
recommendation; matrix factorisation retrains in the background. SIGTERM
or Ctrl-C stops it cleanly. Configuration: embedded defaults, then
--config FILE, then the environment, then these flags
(docs/CONFIGURATION.md).

Flags:
`

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cf := newConfigFlags("serve", stderr, true)
	cf.fs.Usage = func() {
		fmt.Fprint(cf.fs.Output(), serveUsage)
		cf.fs.PrintDefaults()
	}
	cf.fs.StringVar(&cf.addr, "addr", config.Default().Addr, "listen address (env STREAMREC_ADDR)")
	cf.fs.StringVar(&cf.adminAddr, "admin-addr", "", "separate listener for pprof, expvar and metrics; off when empty (env STREAMREC_ADMIN_ADDR)")
	cf.fs.BoolVar(&cf.insecure, "insecure", false, "allow a non-loopback address without API keys")
	cf.fs.StringVar(&cf.tlsCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	cf.fs.StringVar(&cf.tlsKey, "tls-key", "", "TLS key file")
	cf.fs.StringVar(&cf.kafkaBrokers, "kafka-brokers", "", "cluster mode: Kafka brokers host:port,... whose topic is the log (env STREAMREC_KAFKA_BROKERS; docs/SCALING.md)")
	cf.fs.StringVar(&cf.sourceTopic, "kafka-source-topic", "", "cluster mode: a topic of the application's own events to consume into the log (docs/SCALING.md)")
	cf.fs.StringVar(&cf.redis, "redis", "", "a Redis URL (redis://host:port) for the response cache replicas share (env STREAMREC_REDIS)")
	cf.fs.StringVar(&cf.kafkaTopic, "kafka-topic", config.Default().Kafka.Topic, "cluster mode: the log's topic (env STREAMREC_KAFKA_TOPIC)")
	if err := parseFlags(cf.fs, args, stdout); err != nil {
		return err
	}
	cfg, err := cf.load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	setProcs(&cfg, getenv, log)
	n, err := node.Open(cfg, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		n.Close()
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	if cfg.AdminAddr != "" {
		al, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			l.Close()
			n.Close()
			return fmt.Errorf("listen %s: %w", cfg.AdminAddr, err)
		}
		if err := n.ServeAdmin(al); err != nil {
			al.Close()
			l.Close()
			n.Close()
			return err
		}
	}
	log.Info("streamrec started", "version", version, "data", cfg.Data, "preset", cfg.Preset)
	return n.Serve(ctx, l)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setProcs sets GOMAXPROCS to cfg.Procs() unless the environment sets it.
func setProcs(cfg *config.Config, getenv func(string) string, log *slog.Logger) {
	if getenv("GOMAXPROCS") != "" || cfg.Procs() == runtime.GOMAXPROCS(0) {
		return
	}
	runtime.GOMAXPROCS(cfg.Procs())
	log.Info("schedulers", "gomaxprocs", cfg.Procs(), "cores", config.Cores, "procs_per_core", cfg.ProcsPerCore)
}
