package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/watch"
)

// fakeAPI is a Trunks source whose answer tests change at will.
type fakeAPI struct {
	mu     sync.Mutex
	trunks []*trunksv2beta1.Trunk
	err    error
	calls  int
}

// FindRegisteringRaw answers the trunks as the API would: a FindByResponse's bytes.
func (f *fakeAPI) FindRegisteringRaw(context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return proto.Marshal(&trunksv2beta1.FindByResponse{Items: f.trunks})
}

func (f *fakeAPI) set(trunks []*trunksv2beta1.Trunk, err error) {
	f.mu.Lock()
	f.trunks, f.err = trunks, err
	f.mu.Unlock()
}

// fakeRequester records requests and answers through a function.
type fakeRequester struct {
	mu     sync.Mutex
	sent   []*requesterv2beta1.SendMessageRequest
	answer func(req *requesterv2beta1.SendMessageRequest, n int) (*sipmessagev2beta1.SIPMessage, error)
	// inflight per Call-ID, and the largest ever seen.
	inflight    map[string]int
	maxInflight int
	// noRecord keeps nothing (benchmarks).
	noRecord bool
}

func (f *fakeRequester) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	if f.noRecord {
		msg, err := f.answer(req, 1)
		if err != nil {
			return nil, err
		}
		return &requesterv2beta1.SendMessageResponse{Message: msg}, nil
	}
	f.mu.Lock()
	// A clone: the request is only valid until SendMessage returns (exchange.Send).
	f.sent = append(f.sent, proto.Clone(req).(*requesterv2beta1.SendMessageRequest))
	n := 0
	for _, s := range f.sent {
		if s.GetMessage().GetCallId().GetCallId() == req.GetMessage().GetCallId().GetCallId() {
			n++
		}
	}
	if f.inflight == nil {
		f.inflight = map[string]int{}
	}
	id := req.GetMessage().GetCallId().GetCallId()
	f.inflight[id]++
	f.maxInflight = max(f.maxInflight, f.inflight[id])
	answer := f.answer
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inflight[id]--; f.mu.Unlock() }()
	msg, err := answer(req, n)
	if err != nil {
		return nil, err
	}
	return &requesterv2beta1.SendMessageResponse{Message: msg}, nil
}

func (f *fakeRequester) requests() []*requesterv2beta1.SendMessageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*requesterv2beta1.SendMessageRequest(nil), f.sent...)
}

func response(t sipmessagev2beta1.ResponseType, reason string, ext ...string) *sipmessagev2beta1.SIPMessage {
	m := &sipmessagev2beta1.SIPMessage{
		MessageType:  &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: t},
		ReasonPhrase: reason,
	}
	for i := 0; i+1 < len(ext); i += 2 {
		m.Extensions = append(m.Extensions, &sipmessagev2beta1.Extension{Name: ext[i], Value: ext[i+1]})
	}
	return m
}

func ok(expires int32) *sipmessagev2beta1.SIPMessage {
	m := response(sipmessagev2beta1.ResponseType_OK, "OK")
	m.Contact = &sipmessagev2beta1.Contact{Expires: expires}
	return m
}

func expiresOf(req *requesterv2beta1.SendMessageRequest) int {
	return int(req.GetMessage().GetExpires().GetExpires())
}

func cseqOf(t *testing.T, req *requesterv2beta1.SendMessageRequest) int {
	t.Helper()
	v, _ := sipmsg.Header(req.GetMessage(), "CSeq")
	var n int
	var m string
	if _, err := fmt.Sscan(v, &n, &m); err != nil || m != "REGISTER" {
		t.Fatalf("bad CSeq %q", v)
	}
	return n
}

func mkTrunk(ref, host, user, pass string) *trunksv2beta1.Trunk {
	t := &trunksv2beta1.Trunk{
		Ref: ref, Name: "trunk " + ref, SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{{Host: host, Port: 5060, Transport: "UDP", User: user, Enabled: true}},
	}
	if pass != "" {
		t.OutboundCredentials = &credentialsv2beta1.Credentials{Username: user, Password: pass}
	}
	return t
}

func testSpec() config.Spec {
	return config.Spec{
		RegisterInterval: time.Hour, Expires: 600, UserAgent: "test", AuthMode: config.AuthRegistry,
		Gin: true, APITimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		MaxInFlight: 8, RegistersPerSecond: 1000, StartupSpread: 0,
		BackoffBase: time.Second, BackoffMax: 4 * time.Second, RejectedRetry: time.Hour, AuthFailedRetry: time.Hour,
		ShutdownTimeout: 5 * time.Second, Methods: []string{"INVITE", "MESSAGE"},
		EdgePorts: []config.EdgePort{{Address: "edge.local:5060", Host: "edge.local", Port: 5060}},
	}
}

type harness struct {
	t      *testing.T
	api    *fakeAPI
	req    *fakeRequester
	st     store.Store
	r      *Reconciler
	events <-chan watch.Event
	cancel context.CancelFunc
	done   chan error

	history []watch.Event
	claimed map[int]bool
}

func start(t *testing.T, spec config.Spec, api *fakeAPI, req *fakeRequester, st store.Store, mods ...func(*Reconciler)) *harness {
	t.Helper()
	if st == nil {
		st = storetest.NewMemory()
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := New(Options{Spec: spec, Store: st, Trunks: api, Requester: req, Logger: log})
	for _, m := range mods {
		m(r)
	}
	events, unsub := subscribeChan(r, 100000)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, api: api, req: req, st: st, r: r, events: events, cancel: cancel, done: make(chan error, 1), claimed: map[int]bool{}}
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(func() { h.stop(); unsub() })
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		h.t.Error("reconciler did not stop")
	}
}

// waitFor returns the first event, not returned before, for which pred holds; events
// that do not match stay available to later waits. It fails after the deadline.
func (h *harness) waitFor(what string, pred func(watch.Event) bool) watch.Event {
	h.t.Helper()
	for i, ev := range h.history {
		if !h.claimed[i] && pred(ev) {
			h.claimed[i] = true
			return ev
		}
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-h.events:
			if !ok {
				h.t.Fatalf("events closed while waiting for %s", what)
			}
			h.history = append(h.history, ev)
			if pred(ev) {
				h.claimed[len(h.history)-1] = true
				return ev
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func stateIs(ref string, s registration.State) func(watch.Event) bool {
	return func(ev watch.Event) bool { return ev.Record.TrunkRef == ref && ev.Record.State == s && !ev.Removed }
}

// subscribeChan subscribes to r and pumps the events into a channel of buf (closed when
// the subscription ends); cancel closes the subscription.
func subscribeChan(r *Reconciler, buf int) (<-chan watch.Event, func()) {
	sub := r.Subscribe()
	ch := make(chan watch.Event, buf)
	go func() {
		defer close(ch)
		for {
			ev, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			ch <- ev
		}
	}()
	return ch, sub.Close
}

// runBackground runs r until the test ends (its cleanup stops r and waits for Run to
// return, inside a synctest bubble too); it returns Run's context.
func runBackground(t *testing.T, r *Reconciler) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ctx
}
