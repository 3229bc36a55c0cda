package watch

import "sync"

// Hub fans events out to its subscriptions; Publish never waits for a reader. A caller
// that needs events in the order of its own state changes publishes under its own lock:
// the hub's lock is a leaf, taken inside it. Safe for concurrent use.
type Hub struct {
	backlog int

	mu    sync.Mutex
	subs  map[int]*Subscription
	next  int
	ended error
}

// NewHub returns a hub whose subscriptions hold at most backlog unread events
// (DefaultWatchBacklog when backlog < 1).
func NewHub(backlog int) *Hub {
	return &Hub{backlog: backlog, subs: map[int]*Subscription{}}
}

// Subscribe adds a subscription; onClose, if set, runs once when it is closed. After
// End the subscription is returned already ended, and ended is true.
func (h *Hub) Subscribe(onClose func()) (sub *Subscription, ended bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.next
	h.next++
	sub = NewSubscription(h.backlog, func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
		if onClose != nil {
			onClose()
		}
	})
	if h.ended != nil {
		sub.End(h.ended)
		return sub, true
	}
	h.subs[id] = sub
	return sub, false
}

// Publish queues ev on every subscription.
func (h *Hub) Publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range h.subs {
		sub.Push(ev)
	}
}

// End ends every subscription, and every later one, with err after their queued
// events.
func (h *Hub) End(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = err
	for _, sub := range h.subs {
		sub.End(err)
	}
}
