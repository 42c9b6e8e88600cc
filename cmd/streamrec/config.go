package main

import (
	"flag"
	"io"
	"strings"

	"github.com/streamrec/streamrec/config"
)

// configFlags registers the flags shared by the commands that read the
// configuration.
type configFlags struct {
	fs     *flag.FlagSet
	file   string
	addr   string
	data   string
	preset string
	level  string

	withData        bool
	adminAddr       string
	kafkaBrokers    string
	kafkaTopic      string
	redis           string
	sourceTopic     string
	insecure        bool
	tlsCert, tlsKey string
}

// newConfigFlags registers --config, --preset, --log-level and, when
// withData, --data (the data directory).
func newConfigFlags(name string, stderr io.Writer, withData bool) *configFlags {
	c := &configFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), withData: withData}
	c.fs.SetOutput(stderr)
	d := config.Default()
	c.fs.StringVar(&c.file, "config", "", "YAML configuration file (env STREAMREC_CONFIG)")
	if withData {
		c.fs.StringVar(&c.data, "data", d.Data, "data directory (env STREAMREC_DATA)")
	}
	c.fs.StringVar(&c.preset, "preset", d.Preset, "scenario preset: ecommerce or video (env STREAMREC_PRESET)")
	c.fs.StringVar(&c.level, "log-level", d.LogLevel, "log level: debug, info, warn, error (env STREAMREC_LOG_LEVEL)")
	return c
}

// load builds the configuration: defaults, then the file, then the
// environment, then the flags given on the command line.
func (c *configFlags) load(getenv func(string) string) (config.Config, error) {
	cfg := config.Default()
	file := c.file
	if file == "" {
		file = getenv("STREAMREC_CONFIG")
	}
	if file != "" {
		if err := cfg.LoadFile(file); err != nil {
			return cfg, err
		}
	}
	cfg.LoadEnv(getenv)
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "addr":
			cfg.Addr = c.addr
		case "data":
			if c.withData {
				cfg.Data = c.data
			}
		case "preset":
			cfg.Preset = c.preset
		case "log-level":
			cfg.LogLevel = c.level
		case "admin-addr":
			cfg.AdminAddr = c.adminAddr
		case "insecure":
			cfg.Insecure = c.insecure
		case "tls-cert":
			cfg.TLS.CertFile = c.tlsCert
		case "tls-key":
			cfg.TLS.KeyFile = c.tlsKey
		case "kafka-brokers":
			cfg.Kafka.Brokers = nil
			for _, b := range strings.Split(c.kafkaBrokers, ",") {
				if b = strings.TrimSpace(b); b != "" {
					cfg.Kafka.Brokers = append(cfg.Kafka.Brokers, b)
				}
			}
		case "kafka-topic":
			cfg.Kafka.Topic = c.kafkaTopic
		case "redis":
			cfg.Redis.URL = c.redis
		case "kafka-source-topic":
			cfg.Kafka.SourceTopic = c.sourceTopic
		}
	})
	return cfg, cfg.Validate()
}
