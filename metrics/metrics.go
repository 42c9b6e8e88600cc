// Package metrics holds streamrec's Prometheus collectors, registered on a
// registry of their own (no global state), and served at /metrics.
//
// Every method is safe on a nil *Metrics (it does nothing), so components
// can run without metrics in tests and tools.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	eventsAccepted *prometheus.CounterVec
	eventsRejected *prometheus.CounterVec
	eventsDup      prometheus.Counter
	pipeline       prometheus.Histogram
	commit         prometheus.Histogram
	commitRecords  prometheus.Histogram
	apply          prometheus.Histogram
	recommend      *prometheus.HistogramVec
	candidates     *prometheus.HistogramVec
	snapshot       prometheus.Histogram
	training       prometheus.Histogram
	trainings      *prometheus.CounterVec
	storageErrors  *prometheus.CounterVec
}

// latency buckets from 10 µs to about 1.3 s.
var latency = prometheus.ExponentialBuckets(10e-6, 2, 18)

// New creates the collectors on a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrec_http_requests_total", Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamrec_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route and method.", Buckets: latency,
		}, []string{"route", "method"}),
		eventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrec_events_accepted_total", Help: "Events stored and applied, by event type.",
		}, []string{"type"}),
		eventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrec_events_rejected_total", Help: "Events refused by the pipeline, by the field at fault.",
		}, []string{"field"}),
		eventsDup: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamrec_events_duplicate_total", Help: "Events dropped as duplicates (repeated event_id or identical within the window).",
		}),
		pipeline: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_pipeline_batch_duration_seconds", Help: "Time to decode, validate, clean and weight one request's events.", Buckets: latency,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_log_commit_duration_seconds", Help: "Time to write and fsync one group commit to the log.", Buckets: latency,
		}),
		commitRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_log_commit_records", Help: "Records in one group commit.", Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_model_apply_duration_seconds", Help: "Time to apply one group commit to every model.", Buckets: latency,
		}),
		recommend: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamrec_recommend_source_duration_seconds", Help: "Time each candidate source takes in one recommendation request.", Buckets: latency,
		}, []string{"source"}),
		candidates: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamrec_recommend_candidates", Help: "Candidates each source brings to one recommendation request.", Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, []string{"source"}),
		snapshot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_snapshot_duration_seconds", Help: "Time to write a model snapshot.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		training: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrec_mf_training_duration_seconds", Help: "Time one background training of matrix factorisation took, reading the data to installing the model.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		trainings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrec_mf_trainings_total", Help: "Background trainings of matrix factorisation, by outcome (ok, error).",
		}, []string{"outcome"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrec_storage_errors_total", Help: "Writes answered 503 because the log could not make them durable, by cause (stalled: not durable within timeouts.durable; error: the store refused the write).",
		}, []string{"cause"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.eventsAccepted, m.eventsRejected, m.eventsDup,
		m.pipeline, m.commit, m.commitRecords, m.apply, m.recommend, m.candidates, m.snapshot, m.training, m.trainings, m.storageErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Gauge registers a gauge whose value is read from f at each scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	if m != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
}

// GaugeLabelled registers a gauge with one value per label value, read from
// f at each scrape (label value → value).
func (m *Metrics) GaugeLabelled(name, help, label string, f func() map[string]float64) {
	if m != nil {
		m.Registry.MustRegister(&labelledGauge{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
	}
}

type labelledGauge struct {
	desc *prometheus.Desc
	f    func() map[string]float64
}

func (g *labelledGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *labelledGauge) Collect(ch chan<- prometheus.Metric) {
	for k, v := range g.f() {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, k)
	}
}

// GaugeLabelled2 registers a gauge with two labels whose values are read
// from f at each scrape (keyed by the two label values).
func (m *Metrics) GaugeLabelled2(name, help, label1, label2 string, f func() map[[2]string]float64) {
	if m != nil {
		m.Registry.MustRegister(&labelledGauge2{desc: prometheus.NewDesc(name, help, []string{label1, label2}, nil), f: f})
	}
}

type labelledGauge2 struct {
	desc *prometheus.Desc
	f    func() map[[2]string]float64
}

func (g *labelledGauge2) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *labelledGauge2) Collect(ch chan<- prometheus.Metric) {
	for k, v := range g.f() {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, k[0], k[1])
	}
}

// Counter registers a counter whose value is read from f at each scrape.
func (m *Metrics) Counter(name, help string, f func() float64) {
	if m != nil {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
}

// HTTP records one answered request.
func (m *Metrics) HTTP(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, method, statusText(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

func statusText(code int) string {
	const digits = "0123456789"
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{digits[code/100], digits[code/10%10], digits[code%10]})
}

// Pipeline records the time to run one request's events through the pipeline.
func (m *Metrics) Pipeline(d time.Duration) {
	if m != nil {
		m.pipeline.Observe(d.Seconds())
	}
}

// Accepted counts n stored events of a type.
func (m *Metrics) Accepted(typ string, n int) {
	if m != nil {
		m.eventsAccepted.WithLabelValues(typ).Add(float64(n))
	}
}

// Rejected counts an event refused because of field ("json" for a body or
// element that is not valid JSON of the right shape).
func (m *Metrics) Rejected(field string) {
	if m != nil {
		m.eventsRejected.WithLabelValues(field).Inc()
	}
}

// Duplicates counts events dropped as duplicates.
func (m *Metrics) Duplicates(n int) {
	if m != nil && n > 0 {
		m.eventsDup.Add(float64(n))
	}
}

// Commit records one group commit: its size and the time to write and sync it.
func (m *Metrics) Commit(records int, d time.Duration) {
	if m != nil {
		m.commit.Observe(d.Seconds())
		m.commitRecords.Observe(float64(records))
	}
}

// Apply records the time to apply one group commit to the models.
func (m *Metrics) Apply(d time.Duration) {
	if m != nil {
		m.apply.Observe(d.Seconds())
	}
}

// RecommendSource records one source's time and candidates in one
// request.
func (m *Metrics) RecommendSource(source string, d time.Duration, candidates int) {
	if m == nil {
		return
	}
	m.recommend.WithLabelValues(source).Observe(d.Seconds())
	m.candidates.WithLabelValues(source).Observe(float64(candidates))
}

// Snapshot records the time to write a model snapshot.
func (m *Metrics) Snapshot(d time.Duration) {
	if m != nil {
		m.snapshot.Observe(d.Seconds())
	}
}

// Training records one finished background training (err nil) or a failed
// one.
func (m *Metrics) Training(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.trainings.WithLabelValues("error").Inc()
		return
	}
	m.trainings.WithLabelValues("ok").Inc()
	m.training.Observe(d.Seconds())
}

// StorageError counts requests refused because the log could not make their
// records durable: cause is "stalled" or "error".
func (m *Metrics) StorageError(cause string) {
	if m != nil {
		m.storageErrors.WithLabelValues(cause).Inc()
	}
}
