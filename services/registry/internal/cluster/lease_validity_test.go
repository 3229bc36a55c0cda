package cluster_test

import (
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
)

// TestValidByOwnClock checks the local validity window with a fake clock: it
// ends at the start of the last confirming round plus LeaseTTL minus the margin.
func TestValidByOwnClock(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	clock := newFakeClock()
	const ttl = 10 * time.Second
	const window = ttl - time.Second // margin: 10% of the TTL
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl, Clock: clock.Now})
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid before any claim")
	}
	if _, err := a.Claim(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	if fence, ok := a.Valid("t1"); !ok || fence != 1 {
		t.Fatalf("Valid right after the claim = %d, %v", fence, ok)
	}
	clock.Advance(window - time.Millisecond)
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid 1ms before the window ends")
	}
	clock.Advance(time.Millisecond)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid once LeaseTTL minus the margin has passed")
	}
	if held := a.Held(); held["t1"] != 1 {
		t.Errorf("held = %v: an expired window does not drop the lease", held)
	}
	// Redis still has it: a renewal makes it valid again, from its own start.
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew = %v, %v", lost, err)
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid after a successful renewal")
	}
	clock.Advance(window)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid after the renewed window")
	}
}

// TestValidAfterRenewFails cuts Redis off: Renew fails, and the lease stays
// valid only until its window ends by the local clock.
func TestValidAfterRenewFails(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	clock := newFakeClock()
	const ttl = 3 * time.Second
	const window = ttl - 500*time.Millisecond // margin: at least 500ms
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl, Clock: clock.Now})
	if _, err := a.Claim(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(ttl / 3)
	b.mini.Close()
	if _, err := a.Renew(ctx); err == nil {
		t.Fatal("renew with Redis down succeeded")
	}
	if a.RenewFailures() != 1 || a.Renewals() != 0 {
		t.Errorf("renewals %d, failures %d; want 0, 1", a.Renewals(), a.RenewFailures())
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid within the window of the last good claim")
	}
	clock.Advance(window - ttl/3)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid past the window while Redis is down")
	}
	// Redis is back, the lease never expired there: renewed and valid again.
	if err := b.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew after restart = %v, %v", lost, err)
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid after Redis came back")
	}
}
