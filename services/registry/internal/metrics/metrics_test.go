package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"sipreg.dev/services/registry/internal/registration"
)

// fakeSource is a Source made of function fields.
type fakeSource struct {
	records    func() []registration.Record
	storeFault func() (time.Time, error)
}

func (f *fakeSource) EachLocal(each func(registration.Record)) {
	for _, r := range f.records() {
		each(r)
	}
}
func (f *fakeSource) StoreFault() (time.Time, error) { return f.storeFault() }

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// scrape compares the named series of m's /metrics, scraped over HTTP, with want.
func scrape(t *testing.T, m *Metrics, want string, names ...string) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

const registrationsHead = `
# HELP sipreg_registrations Registrations by state.
# TYPE sipreg_registrations gauge
`

const cacheUpHead = `
# HELP sipreg_cache_up 1 when the store (memory or Redis) is reachable, 0 while it is not.
# TYPE sipreg_cache_up gauge
`

func TestEmpty(t *testing.T) {
	m := New(nil)
	scrape(t, m, registrationsHead+`
sipreg_registrations{state="auth-failed"} 0
sipreg_registrations{state="pending"} 0
sipreg_registrations{state="registered"} 0
sipreg_registrations{state="registering"} 0
sipreg_registrations{state="rejected"} 0
sipreg_registrations{state="retrying"} 0
sipreg_registrations{state="unregistered"} 0
sipreg_registrations{state="unregistering"} 0
`+cacheUpHead+`
sipreg_cache_up 1
# HELP sipreg_register_requests_total REGISTERs sent, by the class of their answer (error: no answer could be read).
# TYPE sipreg_register_requests_total counter
sipreg_register_requests_total{outcome="bad-extension"} 0
sipreg_register_requests_total{outcome="challenge"} 0
sipreg_register_requests_total{outcome="error"} 0
sipreg_register_requests_total{outcome="interval-too-brief"} 0
sipreg_register_requests_total{outcome="ok"} 0
sipreg_register_requests_total{outcome="rejected"} 0
sipreg_register_requests_total{outcome="transient"} 0
# HELP sipreg_api_fetches_total Trunk discoveries (Trunks.FindBy calls) made, failed ones included.
# TYPE sipreg_api_fetches_total counter
sipreg_api_fetches_total 0
# HELP sipreg_api_fetch_errors_total Trunk discoveries that failed.
# TYPE sipreg_api_fetch_errors_total counter
sipreg_api_fetch_errors_total 0
# HELP sipreg_api_trunks Trunks marked sendRegister in the last successful discovery.
# TYPE sipreg_api_trunks gauge
sipreg_api_trunks 0
`+controlHeads+`
sipreg_cache_skipped_records_total 0
sipreg_control_auth_failures_total 0
sipreg_watch_streams 0
`, "sipreg_registrations", "sipreg_cache_up", "sipreg_soonest_expiry_seconds", "sipreg_register_requests_total",
		"sipreg_api_fetches_total", "sipreg_api_fetch_errors_total", "sipreg_api_trunks",
		"sipreg_cache_skipped_records_total", "sipreg_control_auth_failures_total", "sipreg_watch_streams")
}

// controlHeads are the HELP and TYPE lines of the skipped-records, control auth and
// watch stream series (the text format accepts them ahead of the samples).
const controlHeads = `
# HELP sipreg_cache_skipped_records_total Redis keys under the record prefix that held no readable record, skipped when records were loaded.
# TYPE sipreg_cache_skipped_records_total counter
# HELP sipreg_control_auth_failures_total Control API calls refused for a missing or invalid bearer token.
# TYPE sipreg_control_auth_failures_total counter
# HELP sipreg_watch_streams WatchRegistrations streams open on this replica.
# TYPE sipreg_watch_streams gauge
`

func TestControlAndCacheSeries(t *testing.T) {
	m := New(nil)
	for range 3 {
		m.CacheRecordSkipped()
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(m.ControlAuthFailed)
	}
	for range 5 {
		wg.Go(func() { m.WatchStreams(1) })
	}
	wg.Wait()
	m.WatchStreams(-1)
	m.WatchStreams(-1)
	scrape(t, m, controlHeads+`
sipreg_cache_skipped_records_total 3
sipreg_control_auth_failures_total 100
sipreg_watch_streams 3
`, "sipreg_cache_skipped_records_total", "sipreg_control_auth_failures_total", "sipreg_watch_streams")
}

func TestObserverAndRecords(t *testing.T) {
	var (
		mu    sync.Mutex
		fault error
		calls atomic.Int32
	)
	src := &fakeSource{
		records: func() []registration.Record {
			calls.Add(1)
			return []registration.Record{
				{TrunkRef: "a", State: registration.StateRegistered, ExpiresAt: now.Add(30 * time.Minute)},
				{TrunkRef: "b", State: registration.StateRegistered, ExpiresAt: now.Add(90 * time.Second)},
				{TrunkRef: "c", State: registration.StateRegistered}, // no expiry known: not a candidate
				{TrunkRef: "d", State: registration.StateRetrying, ExpiresAt: now.Add(5 * time.Second)},
				{TrunkRef: "e", State: registration.StateAuthFailed, ExpiresAt: now.Add(time.Second)},
				{TrunkRef: "f", State: registration.StateUnregistering},
				{TrunkRef: "g", State: "no-such-state"}, // counted nowhere
			}
		},
		storeFault: func() (time.Time, error) {
			mu.Lock()
			defer mu.Unlock()
			return now, fault
		},
	}
	m := New(src)
	m.records.now = func() time.Time { return now }

	m.Sent("ok", 250*time.Millisecond)
	m.Sent("ok", 500*time.Millisecond)
	m.Sent("challenge", 2*time.Second)
	m.Sent("something-new", time.Minute) // an unknown outcome is an error, not a new label
	m.Discovery(10, nil)
	m.Discovery(0, errors.New("api down"))
	m.Discovery(12, nil)
	m.Discovery(0, errors.New("api down"))

	scrape(t, m, registrationsHead+`
sipreg_registrations{state="auth-failed"} 1
sipreg_registrations{state="pending"} 0
sipreg_registrations{state="registered"} 3
sipreg_registrations{state="registering"} 0
sipreg_registrations{state="rejected"} 0
sipreg_registrations{state="retrying"} 1
sipreg_registrations{state="unregistered"} 0
sipreg_registrations{state="unregistering"} 1
# HELP sipreg_soonest_expiry_seconds Seconds until the soonest expiry among registered bindings (negative once lapsed); absent when none is registered.
# TYPE sipreg_soonest_expiry_seconds gauge
sipreg_soonest_expiry_seconds 90
# HELP sipreg_register_requests_total REGISTERs sent, by the class of their answer (error: no answer could be read).
# TYPE sipreg_register_requests_total counter
sipreg_register_requests_total{outcome="bad-extension"} 0
sipreg_register_requests_total{outcome="challenge"} 1
sipreg_register_requests_total{outcome="error"} 1
sipreg_register_requests_total{outcome="interval-too-brief"} 0
sipreg_register_requests_total{outcome="ok"} 2
sipreg_register_requests_total{outcome="rejected"} 0
sipreg_register_requests_total{outcome="transient"} 0
# HELP sipreg_requester_duration_seconds Time of one SendMessage to the Requester, from sending the REGISTER to its final answer or error.
# TYPE sipreg_requester_duration_seconds histogram
sipreg_requester_duration_seconds_bucket{le="0.001"} 0
sipreg_requester_duration_seconds_bucket{le="0.0025"} 0
sipreg_requester_duration_seconds_bucket{le="0.005"} 0
sipreg_requester_duration_seconds_bucket{le="0.01"} 0
sipreg_requester_duration_seconds_bucket{le="0.025"} 0
sipreg_requester_duration_seconds_bucket{le="0.05"} 0
sipreg_requester_duration_seconds_bucket{le="0.1"} 0
sipreg_requester_duration_seconds_bucket{le="0.25"} 1
sipreg_requester_duration_seconds_bucket{le="0.5"} 2
sipreg_requester_duration_seconds_bucket{le="1"} 2
sipreg_requester_duration_seconds_bucket{le="2.5"} 3
sipreg_requester_duration_seconds_bucket{le="5"} 3
sipreg_requester_duration_seconds_bucket{le="10"} 3
sipreg_requester_duration_seconds_bucket{le="20"} 3
sipreg_requester_duration_seconds_bucket{le="40"} 3
sipreg_requester_duration_seconds_bucket{le="+Inf"} 4
sipreg_requester_duration_seconds_sum 62.75
sipreg_requester_duration_seconds_count 4
# HELP sipreg_api_fetches_total Trunk discoveries (Trunks.FindBy calls) made, failed ones included.
# TYPE sipreg_api_fetches_total counter
sipreg_api_fetches_total 4
# HELP sipreg_api_fetch_errors_total Trunk discoveries that failed.
# TYPE sipreg_api_fetch_errors_total counter
sipreg_api_fetch_errors_total 2
# HELP sipreg_api_trunks Trunks marked sendRegister in the last successful discovery.
# TYPE sipreg_api_trunks gauge
sipreg_api_trunks 12
`+cacheUpHead+`
sipreg_cache_up 1
`, "sipreg_registrations", "sipreg_soonest_expiry_seconds", "sipreg_register_requests_total",
		"sipreg_requester_duration_seconds", "sipreg_api_fetches_total", "sipreg_api_fetch_errors_total",
		"sipreg_api_trunks", "sipreg_cache_up")
	if n := calls.Load(); n != 1 {
		t.Fatalf("Records called %d times for one scrape", n)
	}

	// The store goes down (Store event), comes back, then the source reports a fault.
	m.Store(errors.New("redis: connection refused"))
	scrape(t, m, cacheUpHead+"sipreg_cache_up 0\n", "sipreg_cache_up")
	m.Store(nil)
	scrape(t, m, cacheUpHead+"sipreg_cache_up 1\n", "sipreg_cache_up")
	mu.Lock()
	fault = errors.New("redis: connection refused")
	mu.Unlock()
	scrape(t, m, cacheUpHead+"sipreg_cache_up 0\n", "sipreg_cache_up")
}

func TestSoonestExpiry(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []registration.Record
		want string // "" when the series must be absent
	}{
		{"none registered", []registration.Record{
			{State: registration.StateRetrying, ExpiresAt: now.Add(time.Minute)},
			{State: registration.StatePending},
		}, ""},
		{"registered without expiry", []registration.Record{{State: registration.StateRegistered}}, ""},
		{"lapsed binding is negative", []registration.Record{
			{State: registration.StateRegistered, ExpiresAt: now.Add(-15 * time.Second)},
			{State: registration.StateRegistered, ExpiresAt: now.Add(time.Hour)},
		}, "-15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(&fakeSource{
				records:    func() []registration.Record { return tc.recs },
				storeFault: func() (time.Time, error) { return time.Time{}, nil },
			})
			m.records.now = func() time.Time { return now }
			want := ""
			if tc.want != "" {
				want = `
# HELP sipreg_soonest_expiry_seconds Seconds until the soonest expiry among registered bindings (negative once lapsed); absent when none is registered.
# TYPE sipreg_soonest_expiry_seconds gauge
sipreg_soonest_expiry_seconds ` + tc.want + "\n"
			}
			scrape(t, m, want, "sipreg_soonest_expiry_seconds")
		})
	}
}

func TestRuntimeCollectors(t *testing.T) {
	srv := httptest.NewServer(New(nil).Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), "\n"+name+" ") {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

func BenchmarkCollect100k(b *testing.B) {
	states := registration.States
	recs := make([]registration.Record, 100_000)
	for i := range recs {
		recs[i] = registration.Record{
			TrunkRef:  fmt.Sprintf("trunk-%06d", i),
			State:     states[i%len(states)],
			ExpiresAt: now.Add(time.Duration(i) * time.Second),
		}
	}
	c := &recordCollector{
		storeDown: new(atomic.Bool),
		now:       func() time.Time { return now },
	}
	var src Source = &fakeSource{
		records:    func() []registration.Record { return recs },
		storeFault: func() (time.Time, error) { return time.Time{}, nil },
	}
	c.src.Store(&src)
	ch := make(chan prometheus.Metric, 16)
	for b.Loop() {
		c.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
}

type fakeCluster struct{ held map[string]int64 }

func (f fakeCluster) Held() map[string]int64 { return f.held }
func (fakeCluster) Renewals() int64          { return 7 }
func (fakeCluster) RenewFailures() int64     { return 1 }
func (fakeCluster) Takeovers() int64         { return 3 }
func (fakeCluster) HandOvers() int64         { return 2 }

func TestClusterSeries(t *testing.T) {
	m := New(nil)
	m.WatchCluster(fakeCluster{held: map[string]int64{"a": 1, "b": 4}})
	want := `# HELP sipreg_cluster_handovers_total Trunks released to another replica.
# TYPE sipreg_cluster_handovers_total counter
sipreg_cluster_handovers_total 2
# HELP sipreg_cluster_lease_renewal_failures_total Lease renewal rounds that failed.
# TYPE sipreg_cluster_lease_renewal_failures_total counter
sipreg_cluster_lease_renewal_failures_total 1
# HELP sipreg_cluster_lease_renewals_total Lease renewal rounds.
# TYPE sipreg_cluster_lease_renewals_total counter
sipreg_cluster_lease_renewals_total 7
# HELP sipreg_cluster_takeovers_total Trunks claimed from another replica.
# TYPE sipreg_cluster_takeovers_total counter
sipreg_cluster_takeovers_total 3
# HELP sipreg_cluster_trunks_owned Trunks whose lease this replica holds.
# TYPE sipreg_cluster_trunks_owned gauge
sipreg_cluster_trunks_owned 2
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"sipreg_cluster_handovers_total", "sipreg_cluster_lease_renewal_failures_total", "sipreg_cluster_lease_renewals_total",
		"sipreg_cluster_takeovers_total", "sipreg_cluster_trunks_owned"); err != nil {
		t.Error(err)
	}
}

// TestScheduleLagAndLapses: the lag is how late the most overdue action is, in-flight
// exchanges and future actions left out; lapses are counted.
func TestScheduleLagAndLapses(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []registration.Record
		want string
	}{
		{"nothing due", []registration.Record{
			{State: registration.StateRegistered, NextActionAt: now.Add(time.Minute)},
			{State: registration.StateRejected},
		}, "0"},
		{"the most overdue counts", []registration.Record{
			{State: registration.StateRegistered, NextActionAt: now.Add(-12 * time.Second)},
			{State: registration.StateRetrying, NextActionAt: now.Add(-3 * time.Second)},
			{State: registration.StatePending, NextActionAt: now.Add(time.Second)},
		}, "12"},
		{"an exchange in flight is not late", []registration.Record{
			{State: registration.StateRegistering, NextActionAt: now.Add(-time.Hour)},
		}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(&fakeSource{
				records:    func() []registration.Record { return tc.recs },
				storeFault: func() (time.Time, error) { return time.Time{}, nil },
			})
			m.records.now = func() time.Time { return now }
			scrape(t, m, `
# HELP sipreg_schedule_lag_seconds How late the most overdue action is: now minus the earliest next-action time that has passed without its REGISTER starting (0 when none is late).
# TYPE sipreg_schedule_lag_seconds gauge
sipreg_schedule_lag_seconds `+tc.want+"\n", "sipreg_schedule_lag_seconds")
		})
	}
	m := New(nil)
	m.Lapsed()
	m.Lapsed()
	if got := testutil.ToFloat64(m.lapsed); got != 2 {
		t.Fatalf("sipreg_bindings_lapsed_total = %v, want 2", got)
	}
}
