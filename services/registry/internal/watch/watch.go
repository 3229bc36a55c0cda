// Package watch is the change stream of registrations: a Subscription holds the events
// one watcher has not read yet, bounded, so that the engine never waits for a reader.
package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sipreg.dev/services/registry/internal/registration"
)

// Event is a change of one trunk's registration.
type Event struct {
	Record  registration.Record
	Removed bool
}

// DefaultWatchBacklog is how many unread events one subscription may hold before it is
// dropped as too slow (reconcile.Options.WatchBacklog).
const DefaultWatchBacklog = 1024

// ErrWatcherTooSlow ends a subscription whose reader fell more than its backlog behind:
// the engine never waits for a watcher, and never holds memory for it without bound.
var ErrWatcherTooSlow = errors.New("watcher too slow")

// Subscription is one stream of changes (see reconcile.Reconciler.Subscribe). Its queue grows
// only as events wait unread (nothing is allocated up front), up to a backlog; a reader
// that falls further behind is dropped with ErrWatcherTooSlow. Safe for concurrent use.
type Subscription struct {
	backlog int
	onClose func()
	ready   chan struct{} // a token when events or the end wait
	dropped chan struct{} // closed when the reader fell too far behind

	mu     sync.Mutex
	q      []Event
	head   int
	end    error // set once: why the stream ends after the queued events
	closed bool
}

// NewSubscription returns a subscription that holds at most backlog unread events
// (DefaultWatchBacklog when backlog < 1); onClose, if set, runs once on Close.
func NewSubscription(backlog int, onClose func()) *Subscription {
	if backlog < 1 {
		backlog = DefaultWatchBacklog
	}
	return &Subscription{backlog: backlog, onClose: onClose, ready: make(chan struct{}, 1), dropped: make(chan struct{})}
}

// Push queues ev without blocking. Past the backlog the queue is freed and the
// subscription ends with ErrWatcherTooSlow.
func (s *Subscription) Push(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil || s.closed {
		return
	}
	if len(s.q)-s.head >= s.backlog {
		s.q, s.head = nil, 0
		s.end = fmt.Errorf("%w: more than %d changes unread", ErrWatcherTooSlow, s.backlog)
		close(s.dropped)
	} else {
		s.q = append(s.q, ev)
	}
	s.signal()
}

// Dropped is closed when the subscription ends with ErrWatcherTooSlow, while its reader
// may still be busy (blocked sending what it read before, to a client that stopped).
func (s *Subscription) Dropped() <-chan struct{} { return s.dropped }

// End makes the subscription end with err once the events already queued are read.
func (s *Subscription) End(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == nil {
		s.end = err
	}
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one. It fails with the error the
// subscription ended with (ErrWatcherTooSlow, ErrStopping), or ctx's error.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Event{}, errSubscriptionClosed
		}
		if s.head < len(s.q) {
			ev := s.q[s.head]
			s.q[s.head] = Event{}
			s.head++
			if s.head == len(s.q) {
				// Drained: the backing array is reused, or freed when it grew large.
				s.head = 0
				if cap(s.q) > 64 {
					s.q = nil
				} else {
					s.q = s.q[:0]
				}
			}
			s.mu.Unlock()
			return ev, nil
		}
		if s.end != nil {
			err := s.end
			s.mu.Unlock()
			return Event{}, err
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-s.ready:
		}
	}
}

var errSubscriptionClosed = errors.New("subscription closed")

// Close stops the subscription and frees its queue; Next then fails. Safe to call
// more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.q, s.head = nil, 0
	s.signal()
	s.mu.Unlock()
	if s.onClose != nil {
		s.onClose()
	}
}

// Len is the number of unread events.
func (s *Subscription) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) - s.head
}
