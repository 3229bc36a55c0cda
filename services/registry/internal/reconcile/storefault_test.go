package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// TestRedisOutageMidRun: with Redis gone the registry keeps refreshing from memory and
// reports the fault; when Redis returns the fault clears and the latest state is written.
func TestRedisOutageMidRun(t *testing.T) {
	mr := miniredis.RunT(t)
	addr := mr.Addr()
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{addr}, Prefix: "fault:",
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
	req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(2), nil
	}}
	h := start(t, testSpec(), api, req, st)
	h.waitFor("registered", stateIs("t1", registration.StateRegistered))

	mr.Close()
	// Refreshes go on while Redis is down.
	h.waitFor("refresh with Redis down", stateIs("t1", registration.StateRegistered))
	h.waitFor("another refresh with Redis down", stateIs("t1", registration.StateRegistered))
	if _, err := h.r.StoreFault(); err == nil {
		t.Fatal("no store fault reported while Redis is down")
	}

	if err := mr.StartAddr(addr); err != nil {
		t.Fatalf("restart miniredis: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := h.r.StoreFault(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("store fault not cleared after Redis returned")
		}
		h.waitFor("refresh while waiting for recovery", stateIs("t1", registration.StateRegistered))
	}
	h.waitFor("refresh after recovery", stateIs("t1", registration.StateRegistered))
	mem, _ := h.r.Record("t1")
	got, err := st.Get(context.Background(), "t1")
	if err != nil {
		t.Fatalf("record not back in Redis: %v", err)
	}
	if got.CallID != mem.CallID || got.CSeq+1 < mem.CSeq {
		t.Errorf("Redis holds Call-ID %s CSeq %d, memory %s CSeq %d", got.CallID, got.CSeq, mem.CallID, mem.CSeq)
	}
}
