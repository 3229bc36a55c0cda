package watch

import (
	"context"
	"errors"
	"testing"

	"sipreg.dev/services/registry/internal/registration"
)

func TestSubscriptionQueue(t *testing.T) {
	ev := func(ref string) Event { return Event{Record: registration.Record{TrunkRef: ref}} }
	ctx := context.Background()

	t.Run("nothing allocated until an event waits", func(t *testing.T) {
		s := NewSubscription(4, nil)
		if s.q != nil {
			t.Fatalf("queue allocated up front: cap %d", cap(s.q))
		}
	})
	t.Run("events in order, then the end after the queued ones", func(t *testing.T) {
		s := NewSubscription(4, nil)
		s.Push(ev("a"))
		s.Push(ev("b"))
		s.End(errEnd)
		s.Push(ev("late")) // after the end: dropped
		select {
		case <-s.Dropped():
			t.Fatal("Dropped closed by an end that is not a drop")
		default:
		}
		for _, want := range []string{"a", "b"} {
			got, err := s.Next(ctx)
			if err != nil || got.Record.TrunkRef != want {
				t.Fatalf("Next = %q, %v; want %q", got.Record.TrunkRef, err, want)
			}
		}
		if _, err := s.Next(ctx); !errors.Is(err, errEnd) {
			t.Fatalf("Next after the queued events = %v, want errEnd", err)
		}
	})
	t.Run("a reader past the backlog is dropped and its memory freed", func(t *testing.T) {
		s := NewSubscription(3, nil)
		for _, r := range []string{"a", "b", "c"} {
			s.Push(ev(r))
		}
		select {
		case <-s.Dropped():
			t.Fatal("Dropped closed at the backlog, before it was passed")
		default:
		}
		s.Push(ev("d"))
		s.Push(ev("e")) // after the drop: ignored (Dropped closes once)
		select {
		case <-s.Dropped():
		default:
			t.Fatal("Dropped still open past the backlog")
		}
		if n := s.Len(); n != 0 {
			t.Fatalf("pending after overflow = %d, want the queue freed", n)
		}
		if _, err := s.Next(ctx); !errors.Is(err, ErrWatcherTooSlow) {
			t.Fatalf("Next = %v, want ErrWatcherTooSlow", err)
		}
	})
	t.Run("a reader that keeps up is never dropped", func(t *testing.T) {
		s := NewSubscription(2, nil)
		for i := range 1000 {
			s.Push(ev("x"))
			s.Push(ev("y"))
			if _, err := s.Next(ctx); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if _, err := s.Next(ctx); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
	})
	t.Run("Next waits for a push; ctx ends the wait", func(t *testing.T) {
		s := NewSubscription(4, nil)
		got := make(chan string, 1)
		go func() {
			e, _ := s.Next(ctx)
			got <- e.Record.TrunkRef
		}()
		s.Push(ev("z"))
		if r := <-got; r != "z" {
			t.Fatalf("Next = %q, want z", r)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Next(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next with a cancelled ctx = %v", err)
		}
	})
	t.Run("Close runs onClose once and ends Next", func(t *testing.T) {
		n := 0
		s := NewSubscription(4, func() { n++ })
		s.Push(ev("a"))
		s.Close()
		s.Close()
		if n != 1 {
			t.Fatalf("onClose ran %d times", n)
		}
		if _, err := s.Next(ctx); err == nil {
			t.Fatal("Next after Close succeeded")
		}
	})
}

// errEnd stands for the engine's reason to end every stream.
var errEnd = errors.New("stopping")
