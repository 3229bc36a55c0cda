package membership_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster/membership"
	"sipreg.dev/services/registry/internal/redistest"
)

// TestSet runs two Sets on one members key: each sees both, Owner agrees with
// Rendezvous over them, and the one that leaves calls OnLeave and drops out of
// the other's view at once (its tombstone).
func TestSet(t *testing.T) {
	s := redistest.Mini(t)
	newSet := func(id string, onLeave func(context.Context)) *membership.Set {
		return membership.New(membership.Options{Client: s.Client, Key: "test:members", ID: id, Advertise: id + ":51910",
			TTL: 3 * time.Second, Clock: time.Now, Log: slog.New(slog.DiscardHandler), OnLeave: onLeave})
	}
	left := make(chan struct{}, 1)
	a := newSet("a", nil)
	b := newSet("b", func(context.Context) { left <- struct{}{} })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bctx, leave := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	go func() { done <- b.Run(bctx) }()
	want := []membership.Member{{ID: "a", Advertise: "a:51910"}, {ID: "b", Advertise: "b:51910"}}
	wait := func(set *membership.Set, want []membership.Member) {
		t.Helper()
		for !slices.Equal(set.Members(), want) {
			select {
			case <-set.MembersChanged():
			case <-time.After(50 * time.Millisecond):
				// b's heartbeat reaches a at a's next one
			case <-ctx.Done():
				t.Fatalf("members %v, want %v", set.Members(), want)
			}
		}
	}
	wait(a, want)
	wait(b, want)
	for _, ref := range []string{"t1", "t2", "t3"} {
		if got, exp := a.Owner(ref), membership.Rendezvous(want, ref); got != exp || b.Owner(ref) != exp {
			t.Errorf("Owner(%s) = %s and %s, want %s", ref, got, b.Owner(ref), exp)
		}
	}
	leave()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	select {
	case <-left:
	default:
		t.Error("OnLeave not called")
	}
	if m := b.Members(); len(m) != 0 {
		t.Errorf("view after leaving %v, want empty", m)
	}
	wait(a, want[:1])
}

// TestSetWithoutClient: without Redis the view stays empty and Run still ends.
func TestSetWithoutClient(t *testing.T) {
	set := membership.New(membership.Options{Key: "k", ID: "a", TTL: 300 * time.Millisecond, Clock: time.Now,
		Log: slog.New(slog.DiscardHandler), OnLeave: func(context.Context) { t.Error("OnLeave called without client") }})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := set.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
	if m := set.Members(); len(m) != 0 {
		t.Errorf("members %v without client", m)
	}
}
