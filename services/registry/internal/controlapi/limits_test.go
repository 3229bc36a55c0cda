package controlapi_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/controlapi"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

// metricValue scrapes e's metrics and returns the value of the unlabelled series name.
func (e *env) metricValue(t *testing.T, name string) float64 {
	t.Helper()
	srv := httptest.NewServer(e.met.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

// waitMetric polls e's metrics until name has the value want.
func (e *env) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := e.metricValue(t, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		runtime.Gosched()
	}
}

// openWatch opens a Watch of t-a and reads its snapshot: once it returns, the stream
// holds its slot. The stream ends when cancel is called.
func openWatch(t *testing.T, c rpc) (watchStream, context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	s, err := c.Watch(ctx, &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
	if err == nil {
		_, err = s.Recv()
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

// At most MaxWatchStreams streams are open at once: one more fails at once with
// ResourceExhausted; once a stream ends, a new one is accepted. sipreg_watch_streams
// follows.
func TestWatchStreamLimit(t *testing.T) {
	const limit = 2
	for _, tr := range transports("", "", nil) {
		t.Run(tr.name, func(t *testing.T) {
			e := newEnv(t, func(o *controlapi.Options, _ *fixture) { o.MaxWatchStreams = limit })
			tr := transportByName(t, e, tr.name)
			c := tr.dial(t, apiToken)
			cancels := make([]context.CancelFunc, 0, limit)
			for i := range limit {
				_, cancel, err := openWatch(t, c)
				if err != nil {
					t.Fatalf("stream %d: %v", i+1, err)
				}
				defer cancel()
				cancels = append(cancels, cancel)
			}
			e.waitMetric(t, "sipreg_watch_streams", limit)

			_, _, err := openWatch(t, c)
			wantCode(t, err, connect.CodeResourceExhausted, fmt.Sprintf("too many WatchRegistrations streams (%d)", limit))
			if got := e.metricValue(t, "sipreg_watch_streams"); got != limit {
				t.Fatalf("sipreg_watch_streams = %v after a refused stream", got)
			}

			// One stream ends: a new one gets its slot (once the server noticed).
			cancels[0]()
			deadline := time.Now().Add(waitLimit)
			for {
				_, cancel, err := openWatch(t, c)
				if err == nil {
					defer cancel()
					break
				}
				wantCode(t, err, connect.CodeResourceExhausted, "too many")
				if time.Now().After(deadline) {
					t.Fatal("no stream accepted after one ended")
				}
				runtime.Gosched()
			}
			e.waitMetric(t, "sipreg_watch_streams", limit)
			for _, cancel := range cancels {
				cancel()
			}
		})
	}
}

// transportByName is the transport called name against e.
func transportByName(t *testing.T, e *env, name string) transport {
	t.Helper()
	for _, tr := range transports(e.baseURL, e.addr, e.seen) {
		if tr.name == name {
			return tr
		}
	}
	t.Fatalf("no transport %s", name)
	return transport{}
}

// A stream whose subscription was already past its backlog when it was read ends with
// ResourceExhausted after the snapshot, telling the client to reconnect.
func TestWatchTooSlowEndsResourceExhausted(t *testing.T) {
	const backlog = 4
	e := newEnv(t, func(_ *controlapi.Options, f *fixture) {
		f.backlog = backlog
		f.onSubscribe = func(s *watch.Subscription) {
			for i := range backlog + 1 {
				s.Push(watch.Event{Record: registration.Record{TrunkRef: "t-a", CSeq: uint32(i)}})
			}
		}
	})
	for _, tr := range transports(e.baseURL, e.addr, e.seen) {
		t.Run(tr.name, func(t *testing.T) {
			s, err := tr.dial(t, apiToken).Watch(ctxFor(t), &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
			if err != nil {
				t.Fatal(err)
			}
			if got := watchRefs(recvN(t, s, 1)); got[0] != "t-a" {
				t.Fatalf("snapshot = %v", got)
			}
			sub := e.subscription(t)
			_, err = s.Recv()
			wantCode(t, err, connect.CodeResourceExhausted, "reconnect")
			wantGone(t, sub)
		})
	}
	e.waitMetric(t, "sipreg_watch_streams", 0)
}

// A client that stops reading while changes keep coming is dropped: the engine's queue
// for it overflows at once (the engine never waits), and once the client reads again
// within Options.WatchDropGrace it finds the changes sent before, then
// ResourceExhausted.
func TestWatchSlowReaderIsDropped(t *testing.T) {
	e := newEnv(t, func(o *controlapi.Options, f *fixture) {
		f.backlog = 4
		o.WatchDropGrace = time.Hour // never reached here
	})
	for _, name := range []string{"connect-proto-http1", "grpc-go-h2c"} {
		t.Run(name, func(t *testing.T) {
			s, sub := stallWatch(t, e, name)
			for {
				m, err := s.Recv()
				if err != nil {
					wantCode(t, err, connect.CodeResourceExhausted, "reconnect")
					break
				}
				if m.GetRegistration().GetTrunkRef() != "t-a" {
					t.Fatalf("change = %v", m)
				}
			}
			wantGone(t, sub)
		})
	}
	e.waitMetric(t, "sipreg_watch_streams", 0)
}

// A client dropped as too slow that never reads again is reset once
// Options.WatchDropGrace has passed: its handler (blocked by flow control on what it was
// sending) ends and gives back its stream slot without the client's help.
func TestWatchStalledReaderIsReset(t *testing.T) {
	e := newEnv(t, func(o *controlapi.Options, f *fixture) {
		f.backlog = 4
		o.WatchDropGrace = time.Millisecond
	})
	for _, name := range []string{"connect-proto-http1", "grpc-go-h2c"} {
		t.Run(name, func(t *testing.T) {
			s, sub := stallWatch(t, e, name)
			wantGone(t, sub) // the client has read nothing since the snapshot
			e.waitMetric(t, "sipreg_watch_streams", 0)
			for {
				if _, err := s.Recv(); err != nil {
					break // reset, or (when the handler was not blocked) ResourceExhausted
				}
			}
		})
	}
}

// stallWatch opens a WatchRegistrations stream on transport name, reads its snapshot and
// then nothing, while large changes are pushed until the subscription overflows and
// drops. Each change waits (a little) for the handler to take it, so that the handler is
// blocked in a Send on the full connection when the drop comes, not merely outrun.
func stallWatch(t *testing.T, e *env, name string) (watchStream, *subscription) {
	t.Helper()
	const patience = 20 * time.Millisecond // for the handler to take one change
	// Random text: gzip (which Connect clients accept) would shrink a repeated byte to
	// nothing, and the connection would take changes by the thousand before filling.
	noise := make([]byte, 48<<10)
	_, _ = rand.Read(noise)
	big := registration.Record{TrunkRef: "t-a", State: registration.StateRegistered, TrunkName: base64.StdEncoding.EncodeToString(noise)}
	// The client's own deadline comes well after wantGone's limit: the handler must end
	// without it.
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitLimit)
	t.Cleanup(cancel)
	s, err := transportByName(t, e, name).dial(t, apiToken).Watch(ctx, &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, s, 1)
	sub := e.subscription(t)
	deadline := time.Now().Add(waitLimit)
	for {
		sub.Push(watch.Event{Record: big})
		pushed := time.Now()
		for sub.Len() > 0 && time.Since(pushed) < patience {
			runtime.Gosched()
		}
		select {
		case <-sub.Dropped():
			return s, sub
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("a reader that stopped was never dropped")
		}
	}
}

// The registry stopping ends a stream with Unavailable, after the changes queued before.
func TestWatchRegistryStops(t *testing.T) {
	e := newEnv(t)
	c := transportByName(t, e, "grpc-go-h2c").dial(t, apiToken)
	s, err := c.Watch(ctxFor(t), &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, s, 1)
	sub := e.subscription(t)
	sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-a", State: registration.StateUnregistering}})
	sub.End(reconcile.ErrStopping)
	if m := recvN(t, s, 1)[0]; m.GetRegistration().GetState() != registryv1.RegistrationState_REGISTRATION_STATE_UNREGISTERING {
		t.Fatalf("last change = %v", m)
	}
	_, err = s.Recv()
	wantCode(t, err, connect.CodeUnavailable, "shutting down")
	wantGone(t, sub)
}

func wantGone(t *testing.T, sub *subscription) {
	t.Helper()
	select {
	case <-sub.gone:
	case <-time.After(waitLimit):
		t.Fatal("the handler did not close its subscription")
	}
}

// 100 calls with a bad token from one peer address (over several connections) make one
// log line and count 100 in sipreg_control_auth_failures_total; no token is logged.
func TestAuthFailuresLoggedOncePerPeer(t *testing.T) {
	e := newEnv(t)
	var clients []rpc
	for _, tr := range transports(e.baseURL, e.addr, e.seen) {
		clients = append(clients, tr.dial(t, wrongToken), tr.dial(t, ""))
	}
	for i := range 100 {
		_, err := clients[i%len(clients)].Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-a"})
		wantCode(t, err, connect.CodeUnauthenticated, "bearer token")
	}
	// Calls with the right token are not failures.
	if _, err := transportByName(t, e, "grpc-go-h2c").dial(t, apiToken).Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-a"}); err != nil {
		t.Fatal(err)
	}
	if got := e.metricValue(t, "sipreg_control_auth_failures_total"); got != 100 {
		t.Errorf("sipreg_control_auth_failures_total = %v, want 100", got)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "control API call refused"); n != 1 {
		t.Errorf("%d log lines about refused calls, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "peer=127.0.0.1:") || !strings.Contains(logs, "suppressed=0") {
		t.Errorf("the line does not name the peer and the suppressed count:\n%s", logs)
	}
	for _, s := range []string{apiToken, wrongToken} {
		if strings.Contains(logs, s) {
			t.Errorf("a token is in the log:\n%s", logs)
		}
	}
}
