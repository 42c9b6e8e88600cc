// Package config is streamrec's configuration: one plain struct, its
// defaults in one function, filled from a YAML file, then environment
// variables, then flags (each later source wins), and validated once at
// start with errors that name the field.
package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamrec/streamrec/event"
	"github.com/streamrec/streamrec/experiment"
	"github.com/streamrec/streamrec/model"
	"github.com/streamrec/streamrec/model/als"
	"github.com/streamrec/streamrec/model/ann"
	"github.com/streamrec/streamrec/model/content"
	"github.com/streamrec/streamrec/model/itemknn"
	"github.com/streamrec/streamrec/model/mf"
	"github.com/streamrec/streamrec/model/sequential"
	"github.com/streamrec/streamrec/model/sessionknn"
	"github.com/streamrec/streamrec/model/trending"
	"github.com/streamrec/streamrec/pipeline"
	"github.com/streamrec/streamrec/ranker"
	"github.com/streamrec/streamrec/recommend"
)

// Duration is a time.Duration written as "10s", "2h" in files.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 10s or 2h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Config is everything the server can be told.
type Config struct {
	Addr      string `yaml:"addr"`       // listen address
	Data      string `yaml:"data"`       // data directory (Pebble)
	LogLevel  string `yaml:"log_level"`  // debug, info, warn, error
	LogFormat string `yaml:"log_format"` // text or json

	// Preset is the scenario: ecommerce or video.
	Preset string `yaml:"preset"`
	// EventTypes overrides or adds rules of the preset's event-type table.
	EventTypes map[string]event.TypeRule `yaml:"event_types"`

	// AdminAddr, when set, serves pprof, expvar and /metrics on a separate
	// listener (never on the public one).
	AdminAddr string `yaml:"admin_addr"`
	// APIKeys, when any, are required on every request but /healthz and
	// /readyz. Without keys the server listens only on loopback unless
	// Insecure is set.
	APIKeys  []APIKey `yaml:"api_keys"`
	Insecure bool     `yaml:"insecure"`
	// TLS serves HTTPS when both files are given.
	TLS      TLS      `yaml:"tls"`
	Timeouts Timeouts `yaml:"timeouts"`

	// SnapshotEvery writes a model snapshot after this many new log records
	// (0: only at shutdown). A start loads the latest snapshot and replays
	// the log after it.
	SnapshotEvery uint64 `yaml:"snapshot_every"`

	// ProcsPerCore sets GOMAXPROCS to this many times the cores Go found
	// at start (serve only, and only when the GOMAXPROCS environment
	// variable is not set; 0 or 1: Go's default). Two let the kernel
	// interleave a read that just arrived with a long ingest batch instead
	// of queueing it behind the batch's time slice (docs/OPERATIONS.md).
	ProcsPerCore int `yaml:"procs_per_core"`

	// AnswerCache bounds the items, across whole recommendation answers,
	// the engine keeps for its current state (0: none). Any write empties
	// them, so none is ever stale; they serve users asked again while
	// nothing is written.
	AnswerCache int `yaml:"answer_cache"`

	Limits   Limits   `yaml:"limits"`
	Dedup    Dedup    `yaml:"dedup"`
	ItemKNN  ItemKNN  `yaml:"item_knn"`
	Trending Trending `yaml:"trending"`
	MF       MF       `yaml:"mf"`
	// SessionKNN, Sequential and Content configure the session, sequence
	// and item-text sources.
	SessionKNN SessionKNN `yaml:"session_knn"`
	Sequential Sequential `yaml:"sequential"`
	Content    Content    `yaml:"content"`
	Ranker     Ranker     `yaml:"ranker"`
	// Blend weighs each source of a blended answer, by source name; a
	// source it leaves out keeps its default weight, 0 leaves it out of
	// the blend.
	Blend map[string]float32 `yaml:"blend"`
	// Sessions says when a user's session ends.
	Sessions Sessions `yaml:"sessions"`

	// Retention bounds the events the in-memory models keep; the log keeps
	// every record.
	Retention Retention `yaml:"retention"`

	// Experiments configures A/B experiments: attribution, and those
	// defined in this file.
	Experiments Experiments `yaml:"experiments"`
	// Streams configures the pushed recommendations (Server-Sent Events).
	Streams Streams `yaml:"streams"`
	// Kafka, when brokers are given, makes a Kafka topic the log (cluster
	// mode: docs/SCALING.md); the data directory keeps a copy of it.
	Kafka Kafka `yaml:"kafka"`
	// Redis, when a URL is given, is the response cache replicas share.
	Redis Redis `yaml:"redis"`
}

// Redis configures the shared response cache (docs/SCALING.md).
type Redis struct {
	URL string `yaml:"url"` // redis://host:port/db; empty: no shared cache
	// CacheTTL is how long a cached answer lives: the most it can lag
	// other users' events (never the user's own, the catalogue or the
	// models: those are in its key).
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Kafka configures the log on Kafka (package cluster).
type Kafka struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Replication is the replication factor of the topic when a replica
	// creates it (0: 3, or fewer when the cluster has fewer brokers).
	Replication int `yaml:"replication"`
	// ModelsDir, a directory every replica reads and writes (a shared
	// volume), elects one replica to train (Kafka group membership); it
	// writes each model there, the others load it. Empty: every replica
	// trains its own models.
	ModelsDir string `yaml:"models_dir"`
	// CheckpointEvery is how often the elected replica publishes a
	// checkpoint of its data directory (its copy of the log, the catalogue
	// and the newest model snapshot) to ModelsDir/checkpoints; a replica
	// started with an empty data directory starts from the newest one and
	// reads only the topic's tail. 0: none.
	CheckpointEvery Duration `yaml:"checkpoint_every"`
	// Retention, when set, is the topic's retention.ms when a replica
	// creates it: what the newest checkpoint does not hold may then go.
	// It needs ModelsDir and at least 3 × CheckpointEvery. 0: the topic
	// keeps its whole history.
	Retention Duration `yaml:"retention"`
	// SessionTimeout is how long the elected trainer may be silent before
	// another replica takes over.
	SessionTimeout Duration `yaml:"session_timeout"`
	// SourceTopic, when set, is a topic of the application's own events
	// (JSON or NDJSON in the schema of POST /v1/events) the replicas
	// consume, as a consumer group, into the log; messages that fail
	// validation go to DeadLetterTopic with the reason.
	SourceTopic     string `yaml:"source_topic"`
	SourceGroup     string `yaml:"source_group"`
	DeadLetterTopic string `yaml:"dead_letter_topic"`
}

// Experiments configures online experiments (package experiment).
type Experiments struct {
	// Enabled turns on assignment, recommendation ids, impressions and the
	// experiments API.
	Enabled bool `yaml:"enabled"`
	// Windows is, by event type, how long after an impression an event on
	// a shown item is attributed to it when it names no recommendation id
	// ("default" for the types not listed).
	Windows map[string]Duration `yaml:"windows"`
	// Conversions lists the event types counted as conversions (with their
	// value).
	Conversions []string `yaml:"conversions"`
	// MaxShown bounds the impressed items remembered per user.
	MaxShown int `yaml:"max_shown"`
	// KeyFile holds the key recommendation ids are signed with (made when
	// absent). Default: DATA/recommendation.key, or, in cluster mode with
	// kafka.models_dir, the shared directory's, so that every replica
	// recognises every replica's ids.
	KeyFile string `yaml:"key_file"`
	// Define lists experiments defined by this file: at start, each one
	// not in the log yet, or different from it, is written to the log as
	// if sent to POST /v1/experiments (or PATCH, keeping its users).
	Define []experiment.Definition `yaml:"define"`
}

// Streams configures GET /v1/users/{id}/recommendations/stream.
type Streams struct {
	// Interval is the least time between two updates of one stream.
	Interval Duration `yaml:"interval"`
	// Max bounds the streams open at once.
	Max int `yaml:"max"`
	// Kafka, when brokers are given, publishes every list a stream sends,
	// and those of the users it names, to a Kafka topic.
	Kafka StreamsKafka `yaml:"kafka"`
}

// StreamsKafka configures the Kafka topic of updated recommendations.
type StreamsKafka struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Users are followed without a stream open: their list of N items is
	// published whenever it changes.
	Users []string `yaml:"users"`
	N     int      `yaml:"n"`
}

// ExperimentConfig is the attribution part.
func (c *Config) ExperimentConfig() (experiment.Config, error) {
	x := experiment.DefaultConfig()
	if d, ok := c.Experiments.Windows["default"]; ok {
		for t := range x.Window {
			x.Window[t] = time.Duration(d)
		}
	}
	for name, d := range c.Experiments.Windows {
		if name == "default" {
			continue
		}
		t, ok := event.ParseType(name)
		if !ok {
			return x, fmt.Errorf("config: experiments.windows: unknown event type %q", name)
		}
		if d <= 0 {
			return x, fmt.Errorf("config: experiments.windows.%s must be positive", name)
		}
		x.Window[t] = time.Duration(d)
	}
	if c.Experiments.Conversions != nil {
		x.Conversion = [event.NumTypes]bool{}
		for _, name := range c.Experiments.Conversions {
			t, ok := event.ParseType(name)
			if !ok {
				return x, fmt.Errorf("config: experiments.conversions: unknown event type %q", name)
			}
			x.Conversion[t] = true
		}
	}
	if c.Experiments.MaxShown > 0 {
		x.MaxShown = c.Experiments.MaxShown
	}
	return x, nil
}

// MF configures matrix factorisation: training, its schedule, fold-in and
// retrieval.
// Ranker is the ranker learned from the log in the background (package
// ranker): when it trains and on what.
type Ranker struct {
	// Enabled trains a ranker in the background; off, the blend weighs
	// every request.
	Enabled bool `yaml:"enabled"`
	// FirstTrainRecords trains once the log holds this many records, then
	// each time it doubles, until that is TrainEveryRecords apart.
	FirstTrainRecords uint64 `yaml:"first_train_records"`
	TrainEveryRecords uint64 `yaml:"train_every_records"`
	// TrainEvery retrains after this long when the log has grown (0: off).
	TrainEvery Duration `yaml:"train_every"`
	// Quiet trains as soon as ingestion has been quiet this long after at
	// least QuietRecords new records (a bulk load), ahead of the schedule.
	Quiet        Duration `yaml:"quiet"`
	QuietRecords uint64   `yaml:"quiet_records"`
	// Validation is the newest share of the log the examples come from;
	// MaxExamples bounds them (and a training's memory).
	Validation  float64 `yaml:"validation"`
	MaxExamples int     `yaml:"max_examples"`
	// Horizon and HorizonTime bound what counts as a hit for an example:
	// the user's next events, within that time.
	Horizon     int      `yaml:"horizon"`
	HorizonTime Duration `yaml:"horizon_time"`
	// NextShare is how much of the fitted objective is the NDCG of the
	// very next event's item; the rest is that of every item within the
	// horizon.
	NextShare float64 `yaml:"next_share"`
	// Trees bounds the boosted trees (LambdaMART over the fused features)
	// fitted on top of the weights; 0 fits the weights alone. Pool is how
	// many of the blend's best candidates the trees rerank.
	Trees int `yaml:"trees"`
	Pool  int `yaml:"pool"`
}

// RankerConfig is the ranker's training configuration.
func (c *Config) RankerConfig() ranker.Config {
	r := ranker.DefaultConfig()
	r.FirstRecords, r.EveryRecords = c.Ranker.FirstTrainRecords, c.Ranker.TrainEveryRecords
	r.Validation, r.MaxExamples = c.Ranker.Validation, c.Ranker.MaxExamples
	r.Horizon, r.HorizonSeconds = c.Ranker.Horizon, time.Duration(c.Ranker.HorizonTime).Seconds()
	r.NextShare = c.Ranker.NextShare
	r.Trees, r.Pool = c.Ranker.Trees, c.Ranker.Pool
	if r.Trees == 0 {
		r.Trees = -1 // none
	}
	// In a session, under a day, under a week, longer: a session gap of a
	// day or more merges the first buckets.
	r.Gaps = slices.Compact(slices.Sorted(slices.Values([]float64{time.Duration(c.Sessions.Gap).Seconds(), 24 * 3600, 7 * 24 * 3600})))
	return r
}

type MF struct {
	Factors    int     `yaml:"factors"`
	Lambda     float32 `yaml:"lambda"`
	Alpha      float32 `yaml:"alpha"`
	Iterations int     `yaml:"iterations"`
	CGSteps    int     `yaml:"cg_steps"`
	// Workers is how many cores training may use (0: half of them, at least
	// one, so that serving and ingestion keep a core).
	Workers int `yaml:"workers"`
	// TrainEveryEvents retrains after this many new log records; TrainEvery
	// retrains after this long when there is anything new (0 turns either
	// trigger off; both 0: never in the background).
	TrainEveryEvents uint64 `yaml:"train_every_events"`
	// FirstTrainEvents trains a young log sooner: first after this many
	// records, then each time the log doubles, until the interval reaches
	// TrainEveryEvents (0: only TrainEveryEvents).
	FirstTrainEvents uint64   `yaml:"first_train_events"`
	TrainEvery       Duration `yaml:"train_every"`
	// Quiet trains as soon as ingestion has been quiet this long after at
	// least QuietEvents new records (a bulk load), ahead of the schedule
	// (0: off).
	Quiet       Duration `yaml:"quiet"`
	QuietEvents uint64   `yaml:"quiet_events"`
	FoldInSteps int      `yaml:"fold_in_steps"`
	// ANNThreshold is the trained-catalogue size from which retrieval uses
	// the HNSW index (negative: always exact).
	ANNThreshold int `yaml:"ann_threshold"`
	ANNM         int `yaml:"ann_m"`
	ANNEfSearch  int `yaml:"ann_ef_search"`
}

// Sessions configures how events group into sessions.
type Sessions struct {
	// Gap is the inactivity, on the events' clock, after which a user's
	// next event starts a new session (when the event's context carries no
	// session_id).
	Gap Duration `yaml:"gap"`
}

// APIKey is a key and what it may do: read, ingest, admin.
type APIKey struct {
	Key    string   `yaml:"key"`
	Scopes []string `yaml:"scopes"`
}

// TLS names the certificate and key files.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Timeouts of the HTTP server.
type Timeouts struct {
	ReadHeader Duration `yaml:"read_header"`
	Read       Duration `yaml:"read"`
	Write      Duration `yaml:"write"`
	Idle       Duration `yaml:"idle"`
	Shutdown   Duration `yaml:"shutdown"`
	// Durable bounds how long a write may wait to become durable (a full
	// or stalled disk): past it the request is answered 503
	// storage_unavailable and is not acknowledged.
	Durable Duration `yaml:"durable"`
}

// Limits bound what one request may ask.
type Limits struct {
	// RatePerSecond is the requests per second allowed to each API key (or
	// each client address when there are no keys); 0 means unlimited.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`

	MaxBodyBytes   int64    `yaml:"max_body_bytes"`
	MaxBatchEvents int      `yaml:"max_batch_events"`
	MaxN           int      `yaml:"max_n"`
	MaxIDBytes     int      `yaml:"max_id_bytes"`
	MaxFuture      Duration `yaml:"max_future"`

	// MaxConnections bounds open client connections (further ones wait in
	// the listen queue); MaxInFlight bounds requests being answered at
	// once and MaxInFlightWrites those with a body (beyond either: 503
	// overloaded). With streamed replies these bound the memory any client
	// behaviour can take (docs/OPERATIONS.md).
	MaxConnections    int `yaml:"max_connections"`
	MaxInFlight       int `yaml:"max_in_flight"`
	MaxInFlightWrites int `yaml:"max_in_flight_writes"`
	// AuthFailuresPerSecond and AuthFailureBurst limit requests with a
	// missing or wrong API key, per client address (beyond: 429).
	AuthFailuresPerSecond float64 `yaml:"auth_failures_per_second"`
	AuthFailureBurst      int     `yaml:"auth_failure_burst"`
}

// Dedup configures de-duplication.
type Dedup struct {
	IDs    int      `yaml:"ids"`
	Window Duration `yaml:"window"`
}

// ItemKNN configures the item-kNN model.
type ItemKNN struct {
	Window     int     `yaml:"window"`
	Neighbors  int     `yaml:"neighbors"`
	QueryItems int     `yaml:"query_items"`
	Decay      float32 `yaml:"decay"`
	Refresh    float32 `yaml:"refresh"` // share of new updates after which a cached neighbour list is recomputed
}

// SessionKNN configures the nearest-neighbour sessions source.
type SessionKNN struct {
	Neighbours  int      `yaml:"neighbours"`   // neighbour sessions that score items
	Sample      int      `yaml:"sample"`       // recent sessions per item that may be neighbours
	QueryItems  int      `yaml:"query_items"`  // latest events of the current session that make the query
	Recency     Duration `yaml:"recency"`      // a neighbour Δt old weighs exp(-Δt/recency)
	MaxSessions int      `yaml:"max_sessions"` // sessions kept, oldest dropped first
	MaxEntries  int      `yaml:"max_entries"`  // events kept over all sessions
}

// Sequential configures the sequential-rules source.
type Sequential struct {
	Steps         int `yaml:"steps"`          // how far apart in a session two events form a rule
	MaxSuccessors int `yaml:"max_successors"` // rules an item keeps, the weakest pruned
	QueryItems    int `yaml:"query_items"`    // latest events of the session that score
}

// Content configures the item-text source.
type Content struct {
	HalfLife    Duration `yaml:"half_life"`    // how long an event's part in a user's profile takes to halve
	QueryTerms  int      `yaml:"query_terms"`  // profile terms that score candidates
	MaxPostings int      `yaml:"max_postings"` // items read per query term, heaviest first (0: all)
}

// Trending configures time-decayed popularity.
type Trending struct {
	HalfLife Duration `yaml:"half_life"`
	TopSize  int      `yaml:"top_size"`
}

// Retention says which events the in-memory models keep (0: no limit).
// MaxEventsPerUser keeps each user's latest events; MaxAge drops events
// older than that before the latest event time applied (the events' clock).
// Evicted events are forgotten by every model, in log order, so a replay
// rebuilds the same state; the log keeps them.
type Retention struct {
	MaxEventsPerUser int      `yaml:"max_events_per_user"`
	MaxAge           Duration `yaml:"max_age"`
}

// DefaultMaxEventsPerUser is the default per-user cap: with the measured
// memory per event (docs/BENCHMARKS.md), 50,000 users at the cap (50 million
// events) fit in 24 GiB, and a user's fold-in and request work stay bounded.
const DefaultMaxEventsPerUser = 1000

// Default returns the embedded defaults.
func Default() Config {
	k := itemknn.DefaultConfig()
	t := trending.DefaultConfig()
	d := pipeline.DefaultDedupConfig()
	m := mf.DefaultConfig()
	sk, sq, ct := sessionknn.DefaultConfig(), sequential.DefaultConfig(), content.DefaultConfig()
	rk := ranker.DefaultConfig()
	return Config{
		Addr:          "127.0.0.1:8080",
		Data:          "./streamrec-data",
		LogLevel:      "info",
		LogFormat:     "text",
		Preset:        event.PresetEcommerce,
		SnapshotEvery: 1_000_000,
		AnswerCache:   65536,
		ProcsPerCore:  2,
		Timeouts: Timeouts{
			ReadHeader: Duration(5 * time.Second),
			Read:       Duration(60 * time.Second),
			Write:      Duration(60 * time.Second),
			Idle:       Duration(2 * time.Minute),
			Shutdown:   Duration(30 * time.Second),
			Durable:    Duration(10 * time.Second),
		},
		Limits: Limits{
			Burst:          100,
			MaxBodyBytes:   10 << 20,
			MaxBatchEvents: 10000,
			MaxN:           1000,
			MaxIDBytes:     256,
			MaxFuture:      Duration(time.Hour),

			MaxConnections:        1024,
			MaxInFlight:           256,
			MaxInFlightWrites:     16,
			AuthFailuresPerSecond: 1,
			AuthFailureBurst:      20,
		},
		Dedup:    Dedup{IDs: d.IDs, Window: Duration(d.Window)},
		ItemKNN:  ItemKNN{Window: k.Window, Neighbors: k.Neighbors, QueryItems: k.QueryItems, Decay: k.Decay, Refresh: k.Refresh},
		Trending: Trending{HalfLife: Duration(time.Duration(t.HalfLifeSeconds) * time.Second), TopSize: t.TopSize},
		MF: MF{
			Factors: m.ALS.Factors, Lambda: m.ALS.Lambda, Alpha: m.ALS.Alpha, Iterations: m.ALS.Iterations, CGSteps: m.ALS.CGSteps,
			TrainEveryEvents: 100_000, FirstTrainEvents: 10_000, TrainEvery: Duration(10 * time.Minute),
			Quiet: Duration(3 * time.Second), QuietEvents: 5_000,
			FoldInSteps: m.FoldInSteps, ANNThreshold: m.ANNThreshold, ANNM: 16, ANNEfSearch: 128,
		},
		SessionKNN: SessionKNN{Neighbours: sk.Neighbours, Sample: sk.Sample, QueryItems: sk.QueryItems,
			Recency: Duration(time.Duration(sk.RecencySeconds) * time.Second), MaxSessions: sk.MaxSessions, MaxEntries: sk.MaxEntries},
		Sequential: Sequential{Steps: sq.Steps, MaxSuccessors: sq.MaxSuccessors, QueryItems: sq.QueryItems},
		Content:    Content{HalfLife: Duration(time.Duration(ct.HalfLifeSeconds) * time.Second), QueryTerms: ct.QueryTerms, MaxPostings: ct.MaxPostings},
		Ranker: Ranker{Enabled: true, FirstTrainRecords: rk.FirstRecords, TrainEveryRecords: rk.EveryRecords, TrainEvery: Duration(30 * time.Minute),
			Quiet: Duration(3 * time.Second), QuietRecords: 5_000, Validation: rk.Validation, MaxExamples: rk.MaxExamples,
			Horizon: rk.Horizon, HorizonTime: Duration(time.Duration(rk.HorizonSeconds) * time.Second), NextShare: rk.NextShare, Trees: rk.Trees, Pool: rk.Pool},
		Blend:    DefaultBlend(),
		Sessions: Sessions{Gap: Duration(recommend.DefaultSessionGap)},

		Retention: Retention{MaxEventsPerUser: DefaultMaxEventsPerUser},

		Experiments: Experiments{Enabled: true, MaxShown: experiment.DefaultConfig().MaxShown,
			Windows:     map[string]Duration{"default": Duration(30 * time.Minute), "purchase": Duration(24 * time.Hour), "cart": Duration(24 * time.Hour)},
			Conversions: []string{"purchase"}, Define: []experiment.Definition{}},
		Kafka: Kafka{Brokers: []string{}, Topic: "streamrec-log", SessionTimeout: Duration(10 * time.Second), CheckpointEvery: Duration(10 * time.Minute),
			SourceGroup: "streamrec-source", DeadLetterTopic: "streamrec-dead-letter"},
		Redis: Redis{CacheTTL: Duration(2 * time.Second)},
		Streams: Streams{Interval: Duration(200 * time.Millisecond), Max: 10000,
			Kafka: StreamsKafka{Brokers: []string{}, Topic: "recommendations", Users: []string{}, N: 10}},
	}
}

// LoadFile merges the YAML file at path into c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // an empty file changes nothing
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// LoadEnv reads STREAMREC_ADDR, STREAMREC_DATA, STREAMREC_PRESET and
// STREAMREC_LOG_LEVEL.
func (c *Config) LoadEnv(getenv func(string) string) {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.Addr, "STREAMREC_ADDR")
	set(&c.Data, "STREAMREC_DATA")
	set(&c.Preset, "STREAMREC_PRESET")
	set(&c.LogLevel, "STREAMREC_LOG_LEVEL")
	set(&c.LogFormat, "STREAMREC_LOG_FORMAT")
	set(&c.AdminAddr, "STREAMREC_ADMIN_ADDR")
	if v := getenv("STREAMREC_KAFKA_BROKERS"); v != "" {
		c.Kafka.Brokers = splitList(v)
	}
	set(&c.Kafka.Topic, "STREAMREC_KAFKA_TOPIC")
	set(&c.Redis.URL, "STREAMREC_REDIS")
	// STREAMREC_API_KEYS: "KEY:scope+scope,KEY2:scope".
	if v := getenv("STREAMREC_API_KEYS"); v != "" {
		c.APIKeys = nil
		for _, part := range strings.Split(v, ",") {
			key, scopes, _ := strings.Cut(strings.TrimSpace(part), ":")
			c.APIKeys = append(c.APIKeys, APIKey{Key: key, Scopes: strings.Split(scopes, "+")})
		}
	}
}

// Table builds the event-type table: the preset, with EventTypes applied.
func (c *Config) Table() (*event.Table, error) {
	tb, err := event.Preset(c.Preset)
	if err != nil {
		return nil, fmt.Errorf("config: preset: %w", err)
	}
	for name, rule := range c.EventTypes {
		t, ok := event.ParseType(name)
		if !ok {
			return nil, fmt.Errorf("config: event_types: unknown event type %q", name)
		}
		if rule.MaxValue < rule.MinValue {
			return nil, fmt.Errorf("config: event_types.%s: max_value %v is below min_value %v", name, rule.MaxValue, rule.MinValue)
		}
		tb.Set(t, rule)
	}
	return tb, nil
}

// Validate checks every field once, naming the first wrong one.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("config: addr %q: %w", c.Addr, err)
	}
	if c.Data == "" {
		return errors.New("config: data: must not be empty")
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return fmt.Errorf("config: admin_addr %q: %w", c.AdminAddr, err)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("config: tls: give both cert_file and key_file, or neither")
	}
	if len(c.APIKeys) == 0 && !c.Insecure && !IsLoopback(c.Addr) {
		return fmt.Errorf("config: addr %q is not a loopback address and no api_keys are configured: configure keys, or pass --insecure to serve everyone", c.Addr)
	}
	if c.AdminAddr != "" && len(c.APIKeys) == 0 && !c.Insecure && !IsLoopback(c.AdminAddr) {
		return fmt.Errorf("config: admin_addr %q is not a loopback address and no api_keys are configured: it would serve pprof, expvar and metrics to anyone; configure keys (the admin listener then needs the admin scope), or pass --insecure", c.AdminAddr)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("config: log_format %q: want text or json", c.LogFormat)
	}
	if _, err := c.Table(); err != nil {
		return err
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"answer_cache must not be negative", c.AnswerCache >= 0},
		{"procs_per_core must be in [0, 8]", c.ProcsPerCore >= 0 && c.ProcsPerCore <= 8},
		{"limits.max_body_bytes must be positive", c.Limits.MaxBodyBytes > 0},
		{"limits.max_batch_events must be positive", c.Limits.MaxBatchEvents > 0},
		{"limits.max_n must be positive", c.Limits.MaxN > 0},
		{"limits.max_id_bytes must be positive", c.Limits.MaxIDBytes > 0},
		{"limits.max_future must be positive", c.Limits.MaxFuture > 0},
		{"limits.rate_per_second must not be negative", c.Limits.RatePerSecond >= 0},
		{"limits.burst must be positive", c.Limits.Burst > 0},
		{"timeouts must be positive", c.Timeouts.ReadHeader > 0 && c.Timeouts.Read > 0 && c.Timeouts.Write > 0 && c.Timeouts.Idle > 0 && c.Timeouts.Shutdown > 0 && c.Timeouts.Durable > 0},
		{"limits.max_connections must be positive", c.Limits.MaxConnections > 0},
		{"limits.max_in_flight must be positive", c.Limits.MaxInFlight > 0},
		{"limits.max_in_flight_writes must be in [1, max_in_flight]", c.Limits.MaxInFlightWrites > 0 && c.Limits.MaxInFlightWrites <= c.Limits.MaxInFlight},
		{"limits.auth_failures_per_second must be positive", c.Limits.AuthFailuresPerSecond > 0},
		{"limits.auth_failure_burst must be positive", c.Limits.AuthFailureBurst > 0},
		{"dedup.ids must be positive", c.Dedup.IDs > 0},
		{"dedup.window must not be negative", c.Dedup.Window >= 0},
		{"item_knn.window must be positive", c.ItemKNN.Window > 0},
		{"item_knn.neighbors must be positive", c.ItemKNN.Neighbors > 0},
		{"item_knn.query_items must be positive", c.ItemKNN.QueryItems > 0},
		{"item_knn.decay must be in (0, 1]", c.ItemKNN.Decay > 0 && c.ItemKNN.Decay <= 1},
		{"item_knn.refresh must be in [0, 1]", c.ItemKNN.Refresh >= 0 && c.ItemKNN.Refresh <= 1},
		{"trending.half_life must be positive", c.Trending.HalfLife > 0},
		{"trending.top_size must be positive", c.Trending.TopSize > 0},
		{"mf.factors must be in [1, 1024]", c.MF.Factors > 0 && c.MF.Factors <= 1024},
		{"mf.lambda must be positive", c.MF.Lambda > 0},
		{"mf.alpha must be positive", c.MF.Alpha > 0},
		{"mf.iterations must be positive", c.MF.Iterations > 0},
		{"mf.cg_steps must be positive", c.MF.CGSteps > 0},
		{"mf.workers must not be negative", c.MF.Workers >= 0},
		{"mf.train_every must not be negative", c.MF.TrainEvery >= 0},
		{"mf.quiet must not be negative", c.MF.Quiet >= 0},
		{"mf.fold_in_steps must be positive", c.MF.FoldInSteps > 0},
		{"mf.ann_m must be positive", c.MF.ANNM > 0},
		{"mf.ann_ef_search must be positive", c.MF.ANNEfSearch > 0},
		{"sessions.gap must be at least 1s", c.Sessions.Gap >= Duration(time.Second)},
		{"session_knn.neighbours must be positive", c.SessionKNN.Neighbours > 0},
		{"session_knn.sample must be positive", c.SessionKNN.Sample > 0},
		{"session_knn.query_items must be positive", c.SessionKNN.QueryItems > 0},
		{"session_knn.recency must not be negative", c.SessionKNN.Recency >= 0},
		{"session_knn.max_sessions must be positive", c.SessionKNN.MaxSessions > 0},
		{"session_knn.max_entries must be positive", c.SessionKNN.MaxEntries > 0},
		{"sequential.steps must be positive", c.Sequential.Steps > 0},
		{"sequential.max_successors must be positive", c.Sequential.MaxSuccessors > 0},
		{"sequential.query_items must be positive", c.Sequential.QueryItems > 0},
		{"content.half_life must be positive", c.Content.HalfLife > 0},
		{"content.query_terms must be positive", c.Content.QueryTerms > 0},
		{"content.max_postings must not be negative", c.Content.MaxPostings >= 0},
		{"ranker.first_train_records must be positive", c.Ranker.FirstTrainRecords > 0},
		{"ranker.train_every_records must be positive", c.Ranker.TrainEveryRecords > 0},
		{"ranker.train_every must not be negative", c.Ranker.TrainEvery >= 0},
		{"ranker.quiet must not be negative", c.Ranker.Quiet >= 0},
		{"ranker.validation must be in (0, 1)", c.Ranker.Validation > 0 && c.Ranker.Validation < 1},
		{"ranker.max_examples must be positive", c.Ranker.MaxExamples > 0},
		{"ranker.horizon must be positive", c.Ranker.Horizon > 0},
		{"ranker.next_share must be in [0, 1]", c.Ranker.NextShare >= 0 && c.Ranker.NextShare <= 1},
		{"ranker.trees must be in [0, 10000]", c.Ranker.Trees >= 0 && c.Ranker.Trees <= 10000},
		{"ranker.pool must be in [10, 1000] (at least the 10 the trees are fitted on)", c.Ranker.Pool >= 10 && c.Ranker.Pool <= 1000},
		{"ranker.horizon_time must be at least 1s", c.Ranker.HorizonTime >= Duration(time.Second)},
		{"retention.max_events_per_user must not be negative", c.Retention.MaxEventsPerUser >= 0},
		{"retention.max_age must be 0 (no limit) or at least 1s", c.Retention.MaxAge == 0 || c.Retention.MaxAge >= Duration(time.Second)},
		{"experiments.max_shown must be positive", c.Experiments.MaxShown > 0},
		{"streams.interval must not be negative", c.Streams.Interval >= 0},
		{"streams.max must be positive", c.Streams.Max > 0},
		{"kafka.topic must be set when kafka.brokers are", len(c.Kafka.Brokers) == 0 || c.Kafka.Topic != ""},
		{"kafka.replication must not be negative", c.Kafka.Replication >= 0},
		{"kafka.session_timeout must be at least 1s", c.Kafka.SessionTimeout >= Duration(time.Second)},
		{"kafka.checkpoint_every must not be negative", c.Kafka.CheckpointEvery >= 0},
		{"kafka.retention needs kafka.models_dir and kafka.checkpoint_every, and must be at least 3 × kafka.checkpoint_every (a new replica needs the records after the newest checkpoint)", c.Kafka.Retention == 0 || c.Kafka.ModelsDir != "" && c.Kafka.CheckpointEvery > 0 && c.Kafka.Retention >= 3*c.Kafka.CheckpointEvery},
		{"redis.cache_ttl must be positive", c.Redis.CacheTTL > 0},
		{"kafka.source_topic needs kafka.brokers, a source_group and a dead_letter_topic", c.Kafka.SourceTopic == "" || len(c.Kafka.Brokers) > 0 && c.Kafka.SourceGroup != "" && c.Kafka.DeadLetterTopic != ""},
		{"streams.kafka.topic must be set when streams.kafka.brokers are", len(c.Streams.Kafka.Brokers) == 0 || c.Streams.Kafka.Topic != ""},
		{"streams.kafka.n must be in [1, limits.max_n]", c.Streams.Kafka.N > 0 && c.Streams.Kafka.N <= c.Limits.MaxN},
	}
	for _, ch := range checks {
		if !ch.ok {
			return errors.New("config: " + ch.name)
		}
	}
	if _, err := c.ExperimentConfig(); err != nil {
		return err
	}
	if err := c.checkExperiments(); err != nil {
		return err
	}
	return c.checkBlend()
}

// checkExperiments validates the experiments the file defines.
func (c *Config) checkExperiments() error {
	var sources []string
	for _, m := range c.Models() {
		if _, ok := m.(model.Source); ok {
			sources = append(sources, m.Name())
		}
	}
	seen := map[string]bool{}
	for i, d := range c.Experiments.Define {
		d.Normalize(time.Now())
		if err := d.Validate(sources, c.Limits.MaxN); err != nil {
			return fmt.Errorf("config: experiments.define[%d]: %w", i, err)
		}
		if seen[d.Name] {
			return fmt.Errorf("config: experiments.define[%d]: the name %q is used twice", i, d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// checkBlend refuses a blend that names no source or weighs one below 0,
// and one where no source has a positive weight.
func (c *Config) checkBlend() error {
	var names []string
	positive := false
	for _, m := range c.Models() {
		names = append(names, m.Name())
		w := float32(1)
		if d, ok := m.(model.Weighted); ok {
			w = d.DefaultWeight()
		}
		if x, ok := c.Blend[m.Name()]; ok {
			w = x
		}
		positive = positive || w > 0
	}
	for _, k := range slices.Sorted(maps.Keys(c.Blend)) {
		if !slices.Contains(names, k) {
			return fmt.Errorf("config: blend: unknown source %q (%s)", k, strings.Join(names, ", "))
		}
		if w := c.Blend[k]; w < 0 || math.IsNaN(float64(w)) {
			return fmt.Errorf("config: blend.%s must not be negative", k)
		}
	}
	if !positive {
		return errors.New("config: blend: at least one weight must be positive")
	}
	return nil
}

// PipelineConfig is the pipeline's part of the configuration.
func (c *Config) PipelineConfig(tb *event.Table) pipeline.Config {
	return pipeline.Config{Table: tb, MaxIDBytes: c.Limits.MaxIDBytes, MaxFuture: time.Duration(c.Limits.MaxFuture)}
}

// DedupConfig is the de-duplication part.
func (c *Config) DedupConfig() pipeline.DedupConfig {
	return pipeline.DedupConfig{IDs: c.Dedup.IDs, Window: time.Duration(c.Dedup.Window)}
}

// ItemKNNConfig is the item-kNN part.
//
// In cluster mode (kafka.brokers) neighbour lists are always exact
// (refresh 0): a list kept until its item changed by a share depends on
// when it was last read, which differs between replicas, and replicas must
// answer alike after the same records.
func (c *Config) ItemKNNConfig() itemknn.Config {
	refresh := c.ItemKNN.Refresh
	if len(c.Kafka.Brokers) > 0 {
		refresh = 0
	}
	return itemknn.Config{Window: c.ItemKNN.Window, Neighbors: c.ItemKNN.Neighbors, QueryItems: c.ItemKNN.QueryItems, Decay: c.ItemKNN.Decay, Refresh: refresh}
}

// TrendingConfig is the trending part.
func (c *Config) TrendingConfig() trending.Config {
	return trending.Config{HalfLifeSeconds: time.Duration(c.Trending.HalfLife).Seconds(), TopSize: c.Trending.TopSize}
}

// Cores is the GOMAXPROCS Go chose at start (the cores, or the container's
// CPU quota), before Procs may raise it.
var Cores = runtime.GOMAXPROCS(0)

// Procs is the GOMAXPROCS serve runs with: ProcsPerCore times Cores.
func (c *Config) Procs() int { return Cores * max(1, c.ProcsPerCore) }

// MFConfig is the matrix-factorisation part.
func (c *Config) MFConfig() mf.Config {
	workers := c.MF.Workers
	if workers == 0 {
		workers = max(1, Cores/2)
	}
	return mf.Config{
		ALS: als.Config{Factors: c.MF.Factors, Lambda: c.MF.Lambda, Alpha: c.MF.Alpha, Iterations: c.MF.Iterations,
			CGSteps: c.MF.CGSteps, Seed: 1, Workers: workers},
		FoldInSteps:  c.MF.FoldInSteps,
		ANNThreshold: c.MF.ANNThreshold,
		ANN:          ann.Config{M: c.MF.ANNM, EfSearch: c.MF.ANNEfSearch},
	}
}

// EngineConfig is the engine's part: new models with their settings, the
// blend, retention and sessions.
func (c *Config) EngineConfig(tb *event.Table) recommend.Config {
	return recommend.Config{Table: tb, Models: c.Models(), Blend: maps.Clone(c.Blend), Retention: c.RetentionConfig(),
		SessionGap: time.Duration(c.Sessions.Gap), Answers: c.AnswerCache}
}

// Models returns new instances of every model the engine runs, in the
// order they apply each event. Adding a model is one line here.
func (c *Config) Models() []model.Model {
	return []model.Model{
		itemknn.NewSource(c.ItemKNNConfig()),
		trending.NewSource(c.TrendingConfig()),
		mf.NewSource(c.MFConfig()),
		sessionknn.New(c.SessionKNNConfig()),
		sequential.New(c.SequentialConfig()),
		content.New(c.ContentConfig()),
		c.tracker(),
	}
}

// tracker is the experiments' part: it keeps their results from the log
// (its configuration was validated at start).
func (c *Config) tracker() model.Model {
	x, err := c.ExperimentConfig()
	if err != nil {
		x = experiment.DefaultConfig()
	}
	return experiment.New(x)
}

// SessionKNNConfig is the nearest-neighbour sessions part.
func (c *Config) SessionKNNConfig() sessionknn.Config {
	k := sessionknn.DefaultConfig()
	k.Neighbours, k.Sample, k.QueryItems = c.SessionKNN.Neighbours, c.SessionKNN.Sample, c.SessionKNN.QueryItems
	k.RecencySeconds = time.Duration(c.SessionKNN.Recency).Seconds()
	k.MaxSessions, k.MaxEntries = c.SessionKNN.MaxSessions, c.SessionKNN.MaxEntries
	return k
}

// SequentialConfig is the sequential-rules part.
func (c *Config) SequentialConfig() sequential.Config {
	q := sequential.DefaultConfig()
	q.Steps, q.MaxSuccessors, q.QueryItems = c.Sequential.Steps, c.Sequential.MaxSuccessors, c.Sequential.QueryItems
	return q
}

// ContentConfig is the item-text part.
func (c *Config) ContentConfig() content.Config {
	t := content.DefaultConfig()
	t.HalfLifeSeconds = time.Duration(c.Content.HalfLife).Seconds()
	t.QueryTerms, t.MaxPostings = c.Content.QueryTerms, c.Content.MaxPostings
	return t
}

// DefaultBlend is the default weight of each source (model.Weighted, or
// 1), tuned by prequential replay (docs/EVALUATION.md).
func DefaultBlend() map[string]float32 {
	c := Config{}
	out := map[string]float32{}
	for _, m := range c.Models() {
		if _, ok := m.(model.Source); !ok {
			continue
		}
		w := float32(1)
		if d, ok := m.(model.Weighted); ok {
			w = d.DefaultWeight()
		}
		out[m.Name()] = w
	}
	return out
}

// RetentionConfig is the retention part.
func (c *Config) RetentionConfig() recommend.Retention {
	return recommend.Retention{MaxEventsPerUser: c.Retention.MaxEventsPerUser, MaxAge: time.Duration(c.Retention.MaxAge)}
}

// splitList splits a comma-separated list, dropping empty parts.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// IsLoopback reports whether addr (host:port) listens only on loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
