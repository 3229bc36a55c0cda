// Package metrics exposes the registry's Prometheus metrics on its own registry: the
// counters and the histogram the reconciler feeds through reconcile.Observer, gauges
// computed at scrape time from the engine's records, and the Go and process collectors.
// No label carries a secret or free text: states and outcomes are closed sets.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
)

// Source is what the scrape-time gauges read; *reconcile.Reconciler satisfies it.
type Source interface {
	// EachLocal calls f with each registration this replica holds (with several
	// replicas, its own share only: a scrape never reads the others'), copying none to
	// the heap: at 100,000 trunks a slice of them would be 40 MB a scrape.
	EachLocal(f func(registration.Record))
	// StoreFault returns the current store error and since when (nil when healthy).
	StoreFault() (time.Time, error)
}

var _ Source = (*reconcile.Reconciler)(nil)

// Outcomes are the values of the outcome label of sipreg_register_requests_total, as
// reconcile.Observer.Sent reports them. Anything else is counted as "error".
var Outcomes = []string{"ok", "challenge", "interval-too-brief", "bad-extension", "rejected", "transient", "error"}

// durationBuckets cover a REGISTER round trip from 1ms to the 32s of a SIP transaction
// timeout (and a little more).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40}

// Metrics holds the registry's metrics. It implements reconcile.Observer; every method is
// safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	requests    map[string]prometheus.Counter
	duration    prometheus.Histogram
	fetches     prometheus.Counter
	fetchErrors prometheus.Counter
	trunks      prometheus.Gauge
	skipped     prometheus.Counter
	authFails   prometheus.Counter
	watchers    prometheus.Gauge
	lapsed      prometheus.Counter
	storeDown   atomic.Bool
	records     *recordCollector
}

var _ reconcile.Observer = (*Metrics)(nil)

// WatchEngine makes src (the engine, once it exists) feed the scrape-time gauges; nil
// leaves them without registrations.
func (m *Metrics) WatchEngine(src Source) {
	if src == nil {
		m.records.src.Store(nil)
		return
	}
	m.records.src.Store(&src)
}

// New registers every series on a registry of its own. src feeds the scrape-time gauges
// (sipreg_registrations, sipreg_soonest_expiry_seconds, and sipreg_cache_up with the
// Store events); it may be nil, and then those show no registrations.
func New(src Source) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sipreg_requester_duration_seconds",
			Help:    "Time of one SendMessage to the Requester, from sending the REGISTER to its final answer or error.",
			Buckets: durationBuckets,
		}),
		fetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipreg_api_fetches_total",
			Help: "Trunk discoveries (Trunks.FindBy calls) made, failed ones included.",
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipreg_api_fetch_errors_total",
			Help: "Trunk discoveries that failed.",
		}),
		trunks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sipreg_api_trunks",
			Help: "Trunks marked sendRegister in the last successful discovery.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipreg_cache_skipped_records_total",
			Help: "Redis keys under the record prefix that held no readable record, skipped when records were loaded.",
		}),
		authFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipreg_control_auth_failures_total",
			Help: "Control API calls refused for a missing or invalid bearer token.",
		}),
		lapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipreg_bindings_lapsed_total",
			Help: "Bindings that expired before their refresh started: the registry fell behind its schedule.",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sipreg_watch_streams",
			Help: "WatchRegistrations streams open on this replica.",
		}),
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipreg_register_requests_total",
		Help: "REGISTERs sent, by the class of their answer (error: no answer could be read).",
	}, []string{"outcome"})
	m.requests = make(map[string]prometheus.Counter, len(Outcomes))
	for _, o := range Outcomes {
		m.requests[o] = requests.WithLabelValues(o)
	}
	m.records = &recordCollector{storeDown: &m.storeDown, now: time.Now}
	m.WatchEngine(src)
	m.reg.MustRegister(
		requests, m.duration, m.fetches, m.fetchErrors, m.trunks, m.records,
		m.skipped, m.authFails, m.watchers, m.lapsed,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// Handler serves the metrics in the Prometheus text (or protobuf) exposition format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Sent counts one REGISTER by outcome and observes how long the Requester took.
func (m *Metrics) Sent(outcome string, took time.Duration) {
	c, ok := m.requests[outcome]
	if !ok {
		c = m.requests["error"]
	}
	c.Inc()
	m.duration.Observe(took.Seconds())
}

// Discovery counts one trunk discovery; a successful one also sets sipreg_api_trunks
// (a failed one leaves it at the last known count, as the reconciler keeps those trunks).
func (m *Metrics) Discovery(trunks int, err error) {
	m.fetches.Inc()
	if err != nil {
		m.fetchErrors.Inc()
		return
	}
	m.trunks.Set(float64(trunks))
}

// Store records whether the store is reachable (err nil) or not.
func (m *Metrics) Store(err error) {
	m.storeDown.Store(err != nil)
}

// CacheRecordSkipped counts one Redis key under the record prefix that held no readable
// record and was skipped.
func (m *Metrics) CacheRecordSkipped() { m.skipped.Inc() }

// ControlAuthFailed counts one control API call refused for a missing or invalid bearer
// token.
func (m *Metrics) ControlAuthFailed() { m.authFails.Inc() }

// Lapsed counts one binding that expired before its refresh started.
func (m *Metrics) Lapsed() { m.lapsed.Inc() }

// WatchStreams adds delta (1 when a WatchRegistrations stream opens, -1 when it ends) to
// the open streams.
func (m *Metrics) WatchStreams(delta int) { m.watchers.Add(float64(delta)) }

// recordCollector computes the record gauges at scrape time, in one pass over the records
// and without allocating per record.
type recordCollector struct {
	src       atomic.Pointer[Source]
	storeDown *atomic.Bool
	now       func() time.Time
}

var (
	registrationsDesc = prometheus.NewDesc("sipreg_registrations",
		"Registrations by state.", []string{"state"}, nil)
	cacheUpDesc = prometheus.NewDesc("sipreg_cache_up",
		"1 when the store (memory or Redis) is reachable, 0 while it is not.", nil, nil)
	scheduleLagDesc = prometheus.NewDesc("sipreg_schedule_lag_seconds",
		"How late the most overdue action is: now minus the earliest next-action time that has passed without its REGISTER starting (0 when none is late).", nil, nil)
	soonestExpiryDesc = prometheus.NewDesc("sipreg_soonest_expiry_seconds",
		"Seconds until the soonest expiry among registered bindings (negative once lapsed); absent when none is registered.", nil, nil)
)

func (c *recordCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- registrationsDesc
	ch <- cacheUpDesc
	ch <- soonestExpiryDesc
	ch <- scheduleLagDesc
}

func (c *recordCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make([]float64, len(registration.States))
	var soonest, earliest time.Time
	up := !c.storeDown.Load()
	if p := c.src.Load(); p != nil {
		src := *p
		src.EachLocal(func(rec registration.Record) {
			r := &rec
			if k := stateIndex(r.State); k >= 0 {
				counts[k]++
			}
			if r.State == registration.StateRegistered && !r.ExpiresAt.IsZero() &&
				(soonest.IsZero() || r.ExpiresAt.Before(soonest)) {
				soonest = r.ExpiresAt
			}
			if overdue(r) && (earliest.IsZero() || r.NextActionAt.Before(earliest)) {
				earliest = r.NextActionAt
			}
		})
		if _, err := src.StoreFault(); err != nil {
			up = false
		}
	}
	for k, s := range registration.States {
		ch <- prometheus.MustNewConstMetric(registrationsDesc, prometheus.GaugeValue, counts[k], string(s))
	}
	ch <- prometheus.MustNewConstMetric(cacheUpDesc, prometheus.GaugeValue, boolValue(up))
	lag := 0.0
	if now := c.now(); !earliest.IsZero() && earliest.Before(now) {
		lag = now.Sub(earliest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(scheduleLagDesc, prometheus.GaugeValue, lag)
	if !soonest.IsZero() {
		ch <- prometheus.MustNewConstMetric(soonestExpiryDesc, prometheus.GaugeValue, soonest.Sub(c.now()).Seconds())
	}
}

// overdue reports whether r has a next action that is due (its REGISTER not started:
// in-flight states have none to wait for).
func overdue(r *registration.Record) bool {
	return !r.NextActionAt.IsZero() && r.State != registration.StateRegistering && r.State != registration.StateUnregistering
}

// stateIndex is the position of s in registration.States, -1 for an unknown state.
func stateIndex(s registration.State) int {
	for k, known := range registration.States {
		if s == known {
			return k
		}
	}
	return -1
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ClusterStats is what several replicas report about their leases (cluster.Cluster).
type ClusterStats interface {
	Held() map[string]int64
	Renewals() int64
	RenewFailures() int64
	Takeovers() int64
	HandOvers() int64
}

// WatchCluster adds the per-replica lease series: trunks owned, lease renewal rounds and
// their failures, takeovers and hand-overs. Call it once, before serving.
func (m *Metrics) WatchCluster(c ClusterStats) {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sipreg_cluster_trunks_owned", Help: "Trunks whose lease this replica holds."},
			func() float64 { return float64(len(c.Held())) }),
		counter("sipreg_cluster_lease_renewals_total", "Lease renewal rounds.", c.Renewals),
		counter("sipreg_cluster_lease_renewal_failures_total", "Lease renewal rounds that failed.", c.RenewFailures),
		counter("sipreg_cluster_takeovers_total", "Trunks claimed from another replica.", c.Takeovers),
		counter("sipreg_cluster_handovers_total", "Trunks released to another replica.", c.HandOvers),
	)
}
