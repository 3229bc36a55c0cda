package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

func TestRenewalRounds(t *testing.T) {
	for _, tc := range []struct {
		idle, ttl time.Duration
		rounds    int
	}{
		{60 * time.Second, 10 * time.Second, 18},
		{20 * time.Second, 10 * time.Second, 6},
		{21 * time.Second, 10 * time.Second, 6},
		{time.Second, 10 * time.Second, 1},
		{10 * time.Second, 3 * time.Second, 10},
	} {
		n, window := renewalRounds(tc.idle, tc.ttl)
		if n != tc.rounds || window != time.Duration(n)*(tc.ttl/3) {
			t.Errorf("renewalRounds(%s, %s) = %d, %s; want %d rounds of %s", tc.idle, tc.ttl, n, window, tc.rounds, tc.ttl/3)
		}
	}
}

func TestPrefixesAndOwners(t *testing.T) {
	if got := clusterPrefix("bench-0a1b2c:"); got != "bench-0a1b2c-cluster:" {
		t.Fatalf("clusterPrefix = %q", got)
	}
	if got := mostOwned(map[string]int{"r3": 10, "r2": 12, "r1": 12, "": 50}); got != "r1" {
		t.Fatalf("mostOwned = %q, want r1 (tie: smallest ID; never no owner)", got)
	}
	if got := mostOwned(nil); got != "" {
		t.Fatalf("mostOwned(nil) = %q", got)
	}
	for aor, want := range map[string]string{"sip:user000001@10.0.0.1": "user000001", "sips:x@y:5061": "x", "u@h": "u", "sip:host": ""} {
		if got := aorUser(aor); got != want {
			t.Errorf("aorUser(%q) = %q, want %q", aor, got, want)
		}
	}
	users := trunkUsers(300)
	if len(users) != 300 || users["trunk-000001"] != "user000001" || users["trunk-000300"] != "user000300" {
		t.Fatalf("trunkUsers: %d, %q, %q", len(users), users["trunk-000001"], users["trunk-000300"])
	}
}

func TestClusterRegistryConfig(t *testing.T) {
	cfg := Config{LeaseTTL: 10 * time.Second}
	got, err := clusterRegistryConfig(cfg, "r2", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "bench-ab:")
	if err != nil {
		t.Fatal(err)
	}
	want := `kind: Registry
apiVersion: v2beta1
spec:
  requesterAddr: 127.0.0.1:1
  apiAddr: 127.0.0.1:2
  edgePorts:
    - address: edge.bench:5060
  httpAddr: 127.0.0.1:7002
  controlAddr: 127.0.0.1:7001
  expires: 600
  cache:
    provider: redis
    parameters: "host=127.0.0.1,port=3"
  keyPrefix: "bench-ab:"
  clusterMode: true
  leaseTTL: 10s
  replicaId: "r2"
  advertiseAddr: 127.0.0.1:7001
`
	if got != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteCluster(t *testing.T) {
	before := []replicaMetrics{{OK: true, Owned: 33_000}, {OK: true, Owned: 34_000}, {OK: true, Owned: 33_000}}
	after := []replicaMetrics{{OK: true, Owned: 50_000, Takeovers: 17_000}, {Err: "killed"},
		{OK: true, Owned: 50_000, Takeovers: 17_000, RenewFailed: 1}}
	r := Result{
		Trunks: 100_000, Replicas: []string{"r1", "r2", "r3"}, LeaseTTL: 10 * time.Second, Interval: 60 * time.Second,
		Registered: true, RegisterTime: 30 * time.Second, RedisCommands: 190_000, RedisRoundTrips: 1_890,
		RegisterCPU:  []float64{10, 11, 12},
		IdleMeasured: true, IdleWindow: 20 * time.Second, IdleRounds: 6, IdleCPU: []float64{1, 0.5, 0.5},
		IdleRedisCommands: 720, IdleRedisRoundTrips: 90, IdleRedisServerCommands: 1_200_000,
		Owned:  map[string]int{"r1": 33_000, "r2": 34_000, "r3": 33_000},
		Listed: 100_000, ListAgree: 100_000, ListedFrom: "r1", MetricsBefore: before, MetricsAfter: after,
		FailoverMeasured: true, Victim: "r2", Moved: 34_000, Refreshed: 34_000, FailoverComplete: true,
		FailoverTime: 13 * time.Second, Continued: 34_000, MovedTo: map[string]int{"r1": 17_000, "r3": 17_000}, MovedFrom: "r1",
	}
	var out bytes.Buffer
	Write(&out, r, nil)
	text := out.String()
	for _, want := range []string{
		"### Several replicas (3 × registry, 100,000 trunks)",
		"| every trunk registered, from the first FindBy (s) | 30.00 | — |  |",
		"| Redis commands / registration (round trips) | 1.90 (0.019) | ≤ 0.02 round trips | met |",
		"| Redis commands / lease-renewal round (round trips) | 40.0 (5.00) | — |  |",
		"the Lua scripts' own included (Redis's count) | 66,667 |",
		"| idle CPU s / replica / minute: r1, r2, r3 (mean) | 3.000, 1.500, 1.500 (2.000) | — |  |",
		"| failover after SIGKILL of r2: kill → every trunk it owned REGISTERed again (s) | 13.00 | ≤ 12 (lease TTL 10 s + 2 s) | **not met** |",
		"| trunks moved; of them, kept Call-ID with a higher CSeq | 34,000; 34,000 | all | met |",
		"| trunks taken over by the survivors during the failover (their sipreg_cluster_takeovers_total) | 34,000 of 34,000 | = trunks moved | met |",
		"ownership before the kill, from ListRegistrations through r1 (0.00 s, every page): 100,000 registrations (r1 33,000, r2 34,000, r3 33,000)",
		"leases held by each replica's own count (sipreg_cluster_trunks_owned): r1 33,000, r2 34,000, r3 33,000",
		"their owners afterwards, from ListRegistrations through r1 (0.00 s after the first listing): r1 17,000, r3 17,000",
		"takeovers r1 0 → 17,000, r2 0 → —, r3 0 → 17,000",
		"lease renewal rounds that failed r1 0 → 0, r2 0 → —, r3 0 → 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "lease keys") {
		t.Errorf("output still mentions the lease keys:\n%s", text)
	}

	// Fewer takeovers than trunks moved: not met, and said in the notes.
	r.MetricsAfter = []replicaMetrics{after[0], after[1], {OK: true, Takeovers: 10_000}}
	out.Reset()
	Write(&out, r, nil)
	if text := out.String(); !strings.Contains(text, "| 27,000 of 34,000 | = trunks moved | **not met** |") ||
		!strings.Contains(text, "**the survivors took over 27,000 trunks, 34,000 moved**") {
		t.Errorf("missing takeovers:\n%s", text)
	}

	// Nothing measured: every line says so, and the error is in the notes.
	out.Reset()
	Write(&out, Result{Trunks: 10, Replicas: []string{"r1", "r2", "r3"}, LeaseTTL: 10 * time.Second},
		fmt.Errorf("replica r2: %w", errors.New("registry exited early")))
	text = out.String()
	notMeasuredLines := 0
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "| ") && strings.Contains(line, "| not measured |") {
			notMeasuredLines++
		}
	}
	if notMeasuredLines != 8 {
		t.Errorf("%d lines not measured, want 8:\n%s", notMeasuredLines, text)
	}
	if !strings.Contains(text, "- **not measured**: replica r2: registry exited early") {
		t.Errorf("no error note:\n%s", text)
	}

	// A failover not complete within the timeout.
	r.MetricsAfter = after
	r.FailoverComplete, r.Refreshed, r.FailoverTimeout, r.Continued = false, 30_000, time.Minute, 30_000
	out.Reset()
	Write(&out, r, nil)
	if text := out.String(); !strings.Contains(text, "| > 60 (30,000 of 34,000) | ≤ 12 (lease TTL 10 s + 2 s) | **not met** |") ||
		!strings.Contains(text, "| 34,000; 30,000 | all | **not met** |") {
		t.Errorf("incomplete failover:\n%s", text)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP sipreg_cluster_takeovers_total Trunks claimed from another replica.
# TYPE sipreg_cluster_takeovers_total counter
sipreg_cluster_takeovers_total 17042
sipreg_cluster_trunks_owned 50021
sipreg_cluster_handovers_total 3
sipreg_cluster_lease_renewal_failures_total 0
sipreg_registrations{state="registered"} 50021 1700000000000
sipreg_label_with_space{a="x y"} 2.5e+00

go_gc_duration_seconds{quantile="0.5"} NaN
`
	series, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if series[`sipreg_registrations{state="registered"}`] != 50021 || series[`sipreg_label_with_space{a="x y"}`] != 2.5 {
		t.Fatalf("series = %v", series)
	}
	m := clusterMetrics(series)
	if want := (replicaMetrics{OK: true, Owned: 50021, Takeovers: 17042, HandOvers: 3}); m != want {
		t.Fatalf("clusterMetrics = %+v, want %+v", m, want)
	}
	delete(series, metricTakeovers)
	if m := clusterMetrics(series); m.OK || !strings.Contains(m.Err, metricTakeovers) {
		t.Fatalf("without takeovers: %+v", m)
	}
	if _, err := parseMetrics(strings.NewReader("lonely_name\n")); err == nil {
		t.Fatal("a line without a value: no error")
	}
}

func TestReadListing(t *testing.T) {
	reg := func(ref, aor, owner string, st registryv1.RegistrationState) *registryv1.Registration {
		return &registryv1.Registration{TrunkRef: ref, Aor: aor, Owner: owner, State: st}
	}
	ok := registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED
	users := map[string]string{"t1": "u1", "t2": "u2", "t3": "u3", "t4": "u4"}
	l := readListing([]*registryv1.Registration{
		reg("t1", "sip:u1@h", "r1", ok),
		reg("t2", "sip:u2@h", "r2", ok),
		reg("t3", "sip:wrong@h", "r2", ok),
		reg("t4", "sip:u4@h", "", ok),
	}, users)
	if !maps.Equal(l.owned, map[string]int{"r1": 1, "r2": 2, "": 1}) || l.agree != 2 || l.owners["t3"] != "r2" {
		t.Fatalf("readListing = %+v", l)
	}
}
