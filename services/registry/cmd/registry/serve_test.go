package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/metrics"
	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// scrapeLine returns the sample line of the unlabelled series name on /metrics.
func scrapeLine(t *testing.T, met *metrics.Metrics, name string) string {
	t.Helper()
	srv := httptest.NewServer(met.Handler())
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
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return ""
}

// The Redis store opened by serve reports every unreadable key under the record prefix
// to a warning (key and reason, never the value) and to
// sipreg_cache_skipped_records_total. Needs the real Redis (see redistest.Real).
func TestOpenStoreReportsSkippedRecords(t *testing.T) {
	redisSrv := redistest.Real(t)
	host, port, err := net.SplitHostPort(redisSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	met := metrics.New(nil)
	prefix := redisSrv.Prefix + "registration:"
	spec := config.Spec{
		Cache:     config.Cache{Provider: config.CacheRedis, Redis: config.RedisParams{Host: host, Port: portNum}},
		KeyPrefix: prefix,
	}
	st, err := openStore(spec, skipReporter(log, met))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	if err := st.Put(ctx, registration.Record{TrunkRef: "good", State: registration.StateRegistered}); err != nil {
		t.Fatal(err)
	}
	const secretValue = "not-json-Zq9-secret"
	rs, ok := st.(*store.Redis)
	if !ok {
		t.Fatalf("openStore returned a %T for the redis provider", st)
	}
	client := rs.Client()
	if err := client.Set(ctx, prefix+"bad", secretValue, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	recs, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].TrunkRef != "good" {
		t.Fatalf("List = %+v, want the good record only", recs)
	}
	if got := scrapeLine(t, met, "sipreg_cache_skipped_records_total"); got != "sipreg_cache_skipped_records_total 1" {
		t.Errorf("after one skipped key: %q", got)
	}
	out := logs.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "key="+prefix+"bad") || !strings.Contains(out, "reason=") {
		t.Errorf("want one warning with the key and the reason:\n%s", out)
	}
	if strings.Contains(out, secretValue) {
		t.Errorf("the skipped key's value is in the log:\n%s", out)
	}
}

// serve gives the control API spec.maxWatchStreams and the metrics: one stream more than
// the cap is refused with ResourceExhausted, and sipreg_watch_streams and
// sipreg_control_auth_failures_total count on /metrics.
func TestServeWiresControlAPI(t *testing.T) {
	t.Setenv("LOGS_LEVEL", "info")
	t.Setenv("LOGS_FORMAT", "json")
	const token = "tok-serve-test"
	cfg, err := config.Parse("registry.yaml", []byte(`kind: Registry
apiVersion: v2beta1
spec:
  requesterAddr: 127.0.0.1:1
  apiAddr: 127.0.0.1:1
  edgePorts: [{address: 'edge.example:5060'}]
  controlAddr: 127.0.0.1:0
  httpAddr: 127.0.0.1:0
  controlToken: `+token+`
  maxWatchStreams: 1
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var logs syncBuffer
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, &logs) }()
	defer func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not return")
		}
	}()

	// The listeners' addresses, from the start line.
	var start struct{ Control, HTTP string }
	deadline := time.Now().Add(10 * time.Second)
	for start.Control == "" {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"registry starting"`) {
				if err := json.Unmarshal([]byte(line), &start); err != nil {
					t.Fatal(err)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start line:\n%s", logs.String())
		}
		runtime.Gosched()
	}
	metric := func(name string) string {
		t.Helper()
		res, err := http.Get("http://" + start.HTTP + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				return line
			}
		}
		t.Fatalf("%s not in /metrics", name)
		return ""
	}

	conn, err := grpc.NewClient(start.Control, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := registryv1.NewRegistrationServiceClient(conn)
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)

	wctx, cancelWatch := context.WithCancel(authed)
	defer cancelWatch()
	first, err := client.WatchRegistrations(wctx, &registryv1.WatchRegistrationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Header(); err != nil { // headers come once the stream holds its slot
		t.Fatal(err)
	}
	// Refused at once; accepted, it would wait for changes until this deadline.
	sctx, cancelSecond := context.WithTimeout(authed, 5*time.Second)
	defer cancelSecond()
	second, err := client.WatchRegistrations(sctx, &registryv1.WatchRegistrationsRequest{})
	if err == nil {
		_, err = second.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many WatchRegistrations streams (1)") {
		t.Fatalf("second stream: %v, want ResourceExhausted (maxWatchStreams 1)", err)
	}
	if got := metric("sipreg_watch_streams"); got != "sipreg_watch_streams 1" {
		t.Errorf("%q with one stream open", got)
	}

	_, err = client.GetRegistration(ctx, &registryv1.GetRegistrationRequest{TrunkRef: "x"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call without a token: %v", err)
	}
	if got := metric("sipreg_control_auth_failures_total"); got != "sipreg_control_auth_failures_total 1" {
		t.Errorf("%q after one refused call", got)
	}
	cancelWatch()
}

// TestPprofMounted: with ENABLE_PPROF the profiles answer on the metrics listener's mux;
// without it nothing is under /debug/pprof/.
func TestPprofMounted(t *testing.T) {
	for _, on := range []bool{false, true} {
		mux := http.NewServeMux()
		if on {
			mountPprof(mux)
		}
		srv := httptest.NewServer(mux)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs?debug=1", "/debug/pprof/cmdline"} {
			res, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; res.StatusCode != want {
				t.Errorf("pprof on %v: GET %s = %d, want %d", on, path, res.StatusCode, want)
			}
		}
		srv.Close()
	}
}
