package controlapi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/controlapi"
	"sipreg.dev/services/registry/internal/metrics"
)

const (
	apiToken   = "tok-Vn4-the-right-one"
	wrongToken = "tok-Vn4-the-wrong-one"
	// forceTimeout is short so the t-slow case ends quickly; every other Force returns at once.
	forceTimeout = 300 * time.Millisecond
	// waitLimit only bounds a test that would otherwise hang; nothing waits for it to pass.
	waitLimit = 10 * time.Second
)

// env is one server from controlapi.NewServer on 127.0.0.1:0 over the fake engine, with
// the registry's metrics as its Observer.
type env struct {
	fx      *fixture
	addr    string
	baseURL string
	seen    *replies
	logs    *lockedBuffer
	met     *metrics.Metrics
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newEnv starts a server; each tweak may change its options or the fake engine first.
func newEnv(t *testing.T, tweaks ...func(*controlapi.Options, *fixture)) *env {
	t.Helper()
	e := &env{fx: newFixture(), seen: &replies{}, logs: &lockedBuffer{}, met: metrics.New(nil)}
	opts := controlapi.Options{
		Token:        apiToken,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ForceTimeout: forceTimeout,
		Observer:     e.met,
	}
	for _, tweak := range tweaks {
		tweak(&opts, e.fx)
	}
	h := controlapi.NewHandler(e.fx.engine, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.baseURL = "http://" + e.addr
	srv := controlapi.NewServer(e.addr, h)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// subscription returns the next subscription the handler made on the fake engine.
func (e *env) subscription(t *testing.T) *subscription {
	t.Helper()
	select {
	case s := <-e.fx.subs:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no subscription")
		return nil
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	for _, tr := range transports(e.baseURL, e.addr, e.seen) {
		t.Run(tr.name, func(t *testing.T) {
			c := tr.dial(t, apiToken)
			for _, tc := range apiCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, e, c, tr.dial) })
			}
		})
	}
	t.Run("health", func(t *testing.T) { testHealth(t, e) })
	t.Run("reflection", func(t *testing.T) { testReflection(t, e) })

	// No planted secret, and no token, in any reply, error or log line.
	if len(e.seen.msgs) == 0 {
		t.Fatal("no replies recorded")
	}
	for _, m := range e.seen.msgs {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(js, []byte(s)) || bytes.Contains(bin, []byte(s)) {
				t.Errorf("secret %q leaked in a %T reply: %s", s, m, js)
			}
		}
	}
	logs := e.logs.String()
	for _, s := range append(slices.Clone(secrets), apiToken, wrongToken) {
		for _, msg := range e.seen.errs {
			if strings.Contains(msg, s) {
				t.Errorf("secret %q leaked in an error: %s", s, msg)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret %q leaked in the log", s)
		}
	}
	if !strings.Contains(logs, "missing or invalid bearer token") {
		t.Error("refused calls were not logged")
	}
}

func wantCode(t *testing.T, err error, want connect.Code, msgContains string) {
	t.Helper()
	if got := codeOf(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
	if msgContains != "" && !strings.Contains(messageOf(err), msgContains) {
		t.Fatalf("message %q does not contain %q", messageOf(err), msgContains)
	}
}

func refsOf(regs []*registryv1.Registration) []string {
	out := make([]string, 0, len(regs))
	for _, r := range regs {
		out = append(out, r.GetTrunkRef())
	}
	return out
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func recvN(t *testing.T, s watchStream, n int) []*registryv1.WatchRegistrationsResponse {
	t.Helper()
	out := make([]*registryv1.WatchRegistrationsResponse, 0, n)
	for range n {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d message(s): %v", len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func watchRefs(ms []*registryv1.WatchRegistrationsResponse) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.GetRegistration().GetTrunkRef())
	}
	return out
}
