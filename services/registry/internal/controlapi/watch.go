package controlapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

// streamLimit counts open streams up to max. Safe for concurrent use.
type streamLimit struct {
	max  int64
	open atomic.Int64
}

// acquire takes a slot; false when all max are taken.
func (l *streamLimit) acquire() bool {
	for {
		n := l.open.Load()
		if n >= l.max {
			return false
		}
		if l.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a slot taken by acquire.
func (l *streamLimit) release() { l.open.Add(-1) }

// WatchRegistrations subscribes first, then flushes the response headers, sends the
// snapshot of every matching registration (ordered by trunk_ref) and then each change as
// it happens. A change racing with the snapshot may follow it although the snapshot
// already shows it (the last message per trunk is always current); none is lost. A
// client that has seen the response headers knows the subscription is live. The states
// filter applies to changes into a state; removals of a matching trunk are always sent.
//
// At most Options.MaxWatchStreams streams are open at once: one more fails at once with
// ResourceExhausted. A watcher that falls more than the engine's backlog behind is
// dropped with ResourceExhausted (the engine never waits for it, and never skips a
// change silently): the client reconnects and gets a fresh snapshot. The stream ends
// with the caller's own cancellation or deadline when it goes away, and with
// Unavailable when the registry stops.
func (s *service) WatchRegistrations(ctx context.Context, req *connect.Request[registryv1.WatchRegistrationsRequest], stream *connect.ServerStream[registryv1.WatchRegistrationsResponse]) error {
	states, err := parseStates("states", req.Msg.GetStates())
	if err != nil {
		return err
	}
	if !s.watchers.acquire() {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"too many WatchRegistrations streams (%d); close one, or try again later (spec.maxWatchStreams)", s.watchers.max))
	}
	s.obs.WatchStreams(1)
	defer func() {
		s.watchers.release()
		s.obs.WatchStreams(-1)
	}()
	ref := req.Msg.GetTrunkRef()
	sub := s.engine.Subscribe()
	defer sub.Close()
	defer resetWhenStalled(ctx, sub, s.dropGrace)()
	if err := stream.Send(nil); err != nil {
		return err
	}

	var snapshot []registration.Record
	if ref != "" {
		if rec, ok := s.engine.Record(ref); ok {
			snapshot = append(snapshot, rec)
		}
	} else {
		snapshot = s.engine.Records()
		sortByRef(snapshot)
	}
	for _, rec := range snapshot {
		if !states.match(rec.State) {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{Registration: toProto(rec)}); err != nil {
			return err
		}
	}
	snapshot = nil

	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return watchEnd(ctx, err)
		}
		if ref != "" && ev.Record.TrunkRef != ref {
			continue
		}
		if !ev.Removed && !states.match(ev.Record.State) {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{
			Registration: toProto(ev.Record), Removed: ev.Removed,
		}); err != nil {
			return err
		}
	}
}

// responseWriterKey is the context key of the http.ResponseWriter of a
// RegistrationService call (withResponseWriter).
type responseWriterKey struct{}

// withResponseWriter serves h with the call's http.ResponseWriter in its context, so that
// a WatchRegistrations handler can set a write deadline on its stream.
func withResponseWriter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), responseWriterKey{}, w)))
	})
}

// resetWhenStalled watches sub for as long as the handler runs (until the function it
// returns is called): once sub is dropped as too slow, the stream gets a write deadline
// grace from then. A client that reads again within it finds what was sent before, then
// ResourceExhausted; one that stopped reading altogether is reset at the deadline, when
// the handler's blocked Send fails, so that it holds no goroutine or stream slot (flow
// control would otherwise block that Send for as long as the connection lives).
func resetWhenStalled(ctx context.Context, sub *watch.Subscription, grace time.Duration) (stop func()) {
	w, ok := ctx.Value(responseWriterKey{}).(http.ResponseWriter)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sub.Dropped():
			// Not past the handler's end: stop waits for this goroutine first.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(grace))
		case <-done:
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// watchEnd is how a WatchRegistrations stream ends when its subscription does.
func watchEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		// The caller's deadline or cancellation ends the stream with that status
		// (DEADLINE_EXCEEDED or CANCELED), never as a clean end: a client must not read
		// a cut stream as "nothing more will change".
		return ctx.Err()
	case errors.Is(err, watch.ErrWatcherTooSlow):
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"this stream fell too far behind the changes and was dropped (%w); reconnect: a new stream starts with a fresh snapshot", err))
	case errors.Is(err, reconcile.ErrStopping):
		return connect.NewError(connect.CodeUnavailable, errors.New("registry is shutting down; watch again"))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("the change stream ended (%w); watch again", err))
}
