package controlapi_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/controlapi"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

// fakeEngine is a controlapi.Engine made of function fields.
type fakeEngine struct {
	records    func() []registration.Record
	record     func(ref string) (registration.Record, bool)
	refs       func() []string
	force      func(ctx context.Context, ref string) (registration.Record, error)
	subscribe  func() *watch.Subscription
	explain    func(ref string) (reconcile.Explanation, error)
	storeFault func() (time.Time, error)
	peers      []ownership.Peer
}

var _ controlapi.Engine = (*fakeEngine)(nil)

func (f *fakeEngine) Records() []registration.Record { return f.records() }

func (f *fakeEngine) Page(after string, keep func(registration.State) bool, size int) ([]registration.Record, bool) {
	return registration.PageOf(f.records(), after, keep, size)
}

func (f *fakeEngine) Record(ref string) (registration.Record, bool) { return f.record(ref) }
func (f *fakeEngine) Refs() []string                                { return f.refs() }
func (f *fakeEngine) Force(ctx context.Context, ref string) (registration.Record, error) {
	return f.force(ctx, ref)
}
func (f *fakeEngine) Subscribe() *watch.Subscription                    { return f.subscribe() }
func (f *fakeEngine) Explain(ref string) (reconcile.Explanation, error) { return f.explain(ref) }
func (f *fakeEngine) StoreFault() (time.Time, error)                    { return f.storeFault() }
func (f *fakeEngine) Peers() []ownership.Peer                           { return f.peers }

// Secrets planted in the fake engine's data; no reply may contain any of them.
const (
	secretPassword = "hunter2-Zq9-topsecret"
	secretDigest   = "6629fae49393a05397450978507c4ef1"
)

var (
	secretGatewayAuth = base64.StdEncoding.EncodeToString([]byte("alice:" + secretPassword))
	secrets           = []string{secretPassword, secretDigest, secretGatewayAuth}
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fixture is the fake engine's world: five trunks and the hooks tests drive.
type fixture struct {
	engine *fakeEngine
	recs   map[string]registration.Record
	// subs receives every subscription the handler makes.
	subs chan *subscription
	// backlog is the unread events a subscription holds (0: reconcile's default), and
	// onSubscribe, if set, sees each subscription before the handler does. Both are set
	// before the server starts.
	backlog     int
	onSubscribe func(*watch.Subscription)
	// fault is the store fault StoreFault reports (nil: healthy).
	fault atomic.Pointer[storeFault]
	// lastExplained is the request the fake handed out last (to prove it is not mutated).
	mu            sync.Mutex
	lastExplained *requesterv2beta1.SendMessageRequest
}

type storeFault struct {
	err   error
	since time.Time
}

// subscription is one the handler made: the test pushes events into it (Push) or ends
// it (End) as the engine would; gone is closed when the handler closes it.
type subscription struct {
	*watch.Subscription
	gone chan struct{}
}

var errBrokenTrunk = errors.New("trunk t-broken cannot be registered: no usable URI")

func newFixture() *fixture {
	f := &fixture{
		recs: map[string]registration.Record{
			"t-a": {
				TrunkRef: "t-a", TrunkName: "Alpha", AOR: "sip:alice@alpha.example", Target: "alpha.example:5060",
				Transport: "udp", EdgePort: "edgeport:5060", State: registration.StateRegistered,
				CallID: "call-a@sipreg", FromTag: "tag-a", CSeq: 7, GrantedExpires: 600,
				ExpiresAt: t0.Add(10 * time.Minute), RegisteredSince: t0.Add(-time.Hour),
				NextAction: registration.ActionRefresh, NextActionAt: t0.Add(6 * time.Minute),
				LastResponseCode: 200, LastResponseType: "OK", LastReason: "OK",
				Owner: "replica-1", Fence: 42, UpdatedAt: t0, Fingerprint: "fp-a",
			},
			"t-b": {
				TrunkRef: "t-b", State: registration.StateRetrying, CallID: "call-b@sipreg", CSeq: 3,
				Failures: 2, LastError: "requester unavailable", LastResponseCode: 503,
				NextAction: registration.ActionRetry, NextActionAt: t0.Add(time.Minute), UpdatedAt: t0,
			},
			"t-c": {TrunkRef: "t-c", State: registration.StateAuthFailed, LastResponseCode: 401, UpdatedAt: t0},
			"t-d": {
				TrunkRef: "t-d", State: registration.StateRegistered, CSeq: 1,
				ExpiresAt: t0.Add(time.Hour), UpdatedAt: t0,
			},
			"t-e": {TrunkRef: "t-e", State: registration.StatePending, UpdatedAt: t0},
		},
		subs: make(chan *subscription, 16),
	}
	f.engine = &fakeEngine{
		records: func() []registration.Record {
			out := make([]registration.Record, 0, len(f.recs))
			for _, r := range f.recs {
				out = append(out, r)
			}
			return out
		},
		record: func(ref string) (registration.Record, bool) {
			r, ok := f.recs[ref]
			return r, ok
		},
		refs: func() []string { return []string{"t-d", "t-broken", "t-a"} },
		force: func(ctx context.Context, ref string) (registration.Record, error) {
			switch ref {
			case "t-a", "t-d":
				r := f.recs[ref]
				r.CSeq++
				r.LastResponseCode = 200
				return r, nil
			case "t-slow":
				<-ctx.Done()
				return registration.Record{}, ctx.Err()
			case "t-stop":
				return registration.Record{}, reconcile.ErrStopping
			case "t-broken":
				return registration.Record{TrunkRef: "t-broken", State: registration.StateRejected}, errBrokenTrunk
			}
			return registration.Record{}, fmt.Errorf("%w: %s", reconcile.ErrUnknownTrunk, ref)
		},
		subscribe: func() *watch.Subscription {
			gone := make(chan struct{})
			sub := watch.NewSubscription(f.backlog, sync.OnceFunc(func() { close(gone) }))
			if f.onSubscribe != nil {
				f.onSubscribe(sub)
			}
			f.subs <- &subscription{Subscription: sub, gone: gone}
			return sub
		},
		explain: func(ref string) (reconcile.Explanation, error) {
			r, ok := f.recs[ref]
			if !ok {
				return reconcile.Explanation{}, fmt.Errorf("%w: %s", reconcile.ErrUnknownTrunk, ref)
			}
			req := unredactedRequest()
			f.mu.Lock()
			f.lastExplained = req
			f.mu.Unlock()
			return reconcile.Explanation{Record: r, Request: req, Reason: "registered; next REGISTER in 6m0s"}, nil
		},
		storeFault: func() (time.Time, error) {
			if p := f.fault.Load(); p != nil {
				return p.since, p.err
			}
			return time.Time{}, nil
		},
	}
	return f
}

// unredactedRequest is a REGISTER carrying every kind of credential, as an engine that
// forgot to redact would hand it out.
func unredactedRequest() *requesterv2beta1.SendMessageRequest {
	return &requesterv2beta1.SendMessageRequest{
		Target: "alpha.example:5060",
		Message: &sipmessagev2beta1.SIPMessage{
			Authorization: &sipmessagev2beta1.Authorization{
				Scheme: "Digest", Username: "alice", Realm: "alpha.example", Nonce: "abc",
				Uri: "sip:alpha.example", Response: secretDigest,
			},
			Extensions: []*sipmessagev2beta1.Extension{
				{Name: "X-Gateway-Auth", Value: secretGatewayAuth},
				{Name: "Proxy-Authorization", Value: "Basic " + secretGatewayAuth},
				{Name: "Authorization", Value: `Digest username="alice", realm="alpha.example", nonce="abc", uri="sip:alpha.example", response="` + secretDigest + `"`},
				{Name: "X-Password-Note", Value: "not a credential header"},
			},
		},
	}
}

func (f *fixture) sortedRefs(states ...registration.State) []string {
	var out []string
	for ref, r := range f.recs {
		if len(states) == 0 || slices.Contains(states, r.State) {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}
