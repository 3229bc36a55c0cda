package reconcile

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// TestShutdownCancelLeavesRecord: a REGISTER cut by our own shutdown leaves the record as
// it was before the attempt (state, failures, next action), not as a failure.
func TestShutdownCancelLeavesRecord(t *testing.T) {
	st := storetest.NewMemory()
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
	req := &hangingRequester{fakeRequester: fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}}
	spec := testSpec()
	spec.ShutdownTimeout = 50 * time.Millisecond
	log := slog.New(slog.DiscardHandler)
	r := New(Options{Spec: spec, Store: st, Trunks: api, Requester: req, Logger: log})
	events, unsub := subscribeChan(r, 1000)
	defer unsub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var before registration.Record
	for ev := range events {
		if ev.Record.State == registration.StateRegistered {
			before = ev.Record
			break
		}
	}
	req.hang.Store(true)
	go func() { _, _ = r.Force(context.Background(), "t1") }()
	waitUntil(t, "the forced REGISTER in flight", func() bool { return len(req.requests()) == 2 })
	cancel() // SIGTERM: the REGISTER in flight is cut at the shutdown deadline
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, err := st.Get(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if after.State != before.State || after.Failures != before.Failures || after.NextAction != before.NextAction ||
		!after.NextActionAt.Equal(before.NextActionAt) || after.LastError != "" {
		t.Fatalf("record after a shutdown-cut REGISTER:\n got %s failures=%d next=%s@%v err=%q\nwant %s failures=%d next=%s@%v",
			after.State, after.Failures, after.NextAction, after.NextActionAt, after.LastError,
			before.State, before.Failures, before.NextAction, before.NextActionAt)
	}
	if after.TopCSeq() <= before.CSeq+1 {
		t.Fatalf("stored CSeq %d (ceiling %d) after the cut REGISTER CSeq %d: it could be reused", after.CSeq, after.CSeqCeiling, before.CSeq+1)
	}
}

// hangingRequester answers like fakeRequester until hang is set; from then on it
// holds every call (but unregisters, with spareUnregisters) until the caller's context
// ends.
type hangingRequester struct {
	fakeRequester
	hang             atomic.Bool
	spareUnregisters bool
}

func (h *hangingRequester) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	if !h.hang.Load() || h.spareUnregisters && expiresOf(req) == 0 {
		return h.fakeRequester.SendMessage(ctx, req)
	}
	h.mu.Lock()
	h.sent = append(h.sent, proto.Clone(req).(*requesterv2beta1.SendMessageRequest))
	h.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestUnregisterOnShutdownAfterDrainDeadline: when the drain of REGISTERs in flight
// runs into shutdownTimeout, the unregisters still go out (they have a deadline of
// their own), and a record is marked unregistered only when its unregister succeeded.
func TestUnregisterOnShutdownAfterDrainDeadline(t *testing.T) {
	st := storetest.NewMemory()
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", ""), mkTrunk("t2", "sip.two.net", "bob", "")}}
	req := &hangingRequester{spareUnregisters: true, fakeRequester: fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(int32(expiresOf(r))), nil
	}}}
	spec := testSpec()
	spec.UnregisterOnStop, spec.ShutdownTimeout = true, 100*time.Millisecond
	r := New(Options{Spec: spec, Store: st, Trunks: api, Requester: req})
	events, unsub := subscribeChan(r, 1000)
	defer unsub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	registered := map[string]bool{}
	for ev := range events {
		if ev.Record.State == registration.StateRegistered {
			registered[ev.Record.TrunkRef] = true
		}
		if len(registered) == 2 {
			break
		}
	}
	req.hang.Store(true)
	go func() { _, _ = r.Force(context.Background(), "t1") }()
	waitUntil(t, "the forced REGISTER in flight", func() bool { return len(req.requests()) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, r := range req.requests() {
		if expiresOf(r) == 0 {
			zero++
		}
	}
	if zero != 2 {
		t.Fatalf("%d unregisters after the drain deadline, want 2", zero)
	}
	for _, ref := range []string{"t1", "t2"} {
		rec, err := st.Get(context.Background(), ref)
		if err != nil || rec.State != registration.StateUnregistered {
			t.Errorf("%s after shutdown: %s, %v; want unregistered", ref, rec.State, err)
		}
	}
}

// waitUntil polls cond until it holds, failing after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
