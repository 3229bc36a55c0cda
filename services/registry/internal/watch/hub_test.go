package watch

import (
	"context"
	"errors"
	"testing"

	"sipreg.dev/services/registry/internal/registration"
)

// TestHub: events reach every open subscription; End ends open and later
// subscriptions after their queued events; a closed subscription leaves the hub and
// runs its onClose once.
func TestHub(t *testing.T) {
	h := NewHub(4)
	closed := 0
	a, ended := h.Subscribe(func() { closed++ })
	b, _ := h.Subscribe(nil)
	if ended {
		t.Fatal("ended before End")
	}
	h.Publish(Event{Record: registration.Record{TrunkRef: "t1"}})
	for _, s := range []*Subscription{a, b} {
		if ev, err := s.Next(context.Background()); err != nil || ev.Record.TrunkRef != "t1" {
			t.Fatalf("got %v, %v", ev, err)
		}
	}
	b.Close()
	b.Close()
	if len(h.subs) != 1 {
		t.Fatalf("%d subscriptions after one closed, want 1", len(h.subs))
	}
	h.Publish(Event{Record: registration.Record{TrunkRef: "t2"}})
	stop := errors.New("stopping")
	h.End(stop)
	if ev, err := a.Next(context.Background()); err != nil || ev.Record.TrunkRef != "t2" {
		t.Fatalf("queued event before the end: %v, %v", ev, err)
	}
	if _, err := a.Next(context.Background()); !errors.Is(err, stop) {
		t.Fatalf("after End: %v, want %v", err, stop)
	}
	late, ended := h.Subscribe(nil)
	if _, err := late.Next(context.Background()); !ended || !errors.Is(err, stop) {
		t.Fatalf("subscription after End: ended %v, %v", ended, err)
	}
	a.Close()
	late.Close()
	if closed != 1 || len(h.subs) != 0 {
		t.Fatalf("onClose ran %d times, %d subscriptions left", closed, len(h.subs))
	}
}
