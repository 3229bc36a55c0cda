// Package workqueue is the engine's work queue and schedule, in the manner of
// client-go's workqueue (as sample-controller uses it): a keyed, de-duplicating FIFO
// that never hands one key to two workers, and a schedule of things due at a time
// (Schedule, in schedule.go).
//
// They are written here rather than taken from client-go because the engine needs
// what that package does not give without its Kubernetes dependencies: a due time
// per key that a later one replaces (a refresh rescheduled, a retry cancelled) and a
// Next to show when a key is due; and nothing of its rate limiting (the engine paces
// REGISTERs itself, per registrar and overall).
package workqueue

import (
	"maps"
	"sync"
)

// Queue is a keyed, de-duplicating FIFO work queue (as in sample-controller): a key
// queued twice is processed once, and a key being processed is never handed to a
// second worker.
type Queue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []string
	// state holds each key's flags (waiting, being processed, queued again meanwhile):
	// one map, so that a key's every step touches one slot (at 100,000 trunks each
	// lookup in a map of that size is a cache miss).
	state map[string]keyState
	// peak is the most keys queued since the queue was last empty: a Go map never
	// shrinks, so one that held a start's 100,000 keys is made anew once drained.
	peak     int
	shutdown bool
}

// keyState is a key's flags in a Queue; a key with none is not in the map. queued and
// active never go together: a key added while active is marked again, and queued at
// Done.
type keyState uint8

const (
	queued keyState = 1 << iota // waiting in items
	active                      // handed to a worker
	again                       // added while active: queue it when done
)

// shrinkAbove is the peak beyond which a drained queue's map and slice are made anew.
const shrinkAbove = 4096

// New returns an empty Queue.
func New() *Queue {
	q := &Queue{state: map[string]keyState{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key unless it is already waiting.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

// AddAll is Add of each of keys, in order, under one lock (the schedule hands over
// every key due at once: at a big start, thousands).
func (q *Queue) AddAll(keys []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, key := range keys {
		q.addLocked(key)
	}
}

// addLocked is Add with q.mu held.
func (q *Queue) addLocked(key string) {
	if q.shutdown {
		return
	}
	switch st := q.state[key]; {
	case st&queued != 0:
		return
	case st&active != 0:
		q.state[key] = st | again
		return
	}
	q.state[key] = queued
	q.items = append(q.items, key)
	q.peak = max(q.peak, len(q.items))
	q.cond.Signal()
}

// Get blocks until a key is available or the queue is shut down.
func (q *Queue) Get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key := q.items[0]
	q.items[0] = ""
	q.items = q.items[1:]
	q.state[key] = active
	if len(q.items) == 0 && q.peak > shrinkAbove {
		// Nothing waits: what the map holds is the keys being processed.
		state := make(map[string]keyState, len(q.state))
		maps.Copy(state, q.state)
		q.items, q.state, q.peak = nil, state, 0
	}
	return key, true
}

// Done marks key processed; a key added meanwhile is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state[key]&again == 0 || q.shutdown {
		delete(q.state, key)
		return
	}
	q.state[key] = queued
	q.items = append(q.items, key)
	q.cond.Signal()
}

// Close shuts the queue down: Get returns false from now on, and Add does nothing.
func (q *Queue) Close() {
	q.mu.Lock()
	q.shutdown = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
