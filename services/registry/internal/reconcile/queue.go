package reconcile

import (
	"container/heap"
	"sync"
	"time"
)

// queue is a keyed, de-duplicating FIFO work queue (as in sample-controller): a key
// queued twice is processed once, and a key being processed is never handed to a
// second worker.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	items    []string
	queued   map[string]bool
	active   map[string]bool
	again    map[string]bool // queued while active: re-queue when done
	shutdown bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, active: map[string]bool{}, again: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues key unless it is already waiting.
func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown || q.queued[key] {
		return
	}
	if q.active[key] {
		q.again[key] = true
		return
	}
	q.queued[key] = true
	q.items = append(q.items, key)
	q.cond.Signal()
}

// get blocks until a key is available or the queue is shut down.
func (q *queue) get() (string, bool) {
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
	delete(q.queued, key)
	q.active[key] = true
	return key, true
}

// done marks key processed; a key added meanwhile is queued again.
func (q *queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	if q.again[key] {
		delete(q.again, key)
		if !q.shutdown && !q.queued[key] {
			q.queued[key] = true
			q.items = append(q.items, key)
			q.cond.Signal()
		}
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.shutdown = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// schedule is a timer wheel of one: keys due at a time, soonest first. Rescheduling a
// key replaces its earlier time.
type schedule struct {
	mu    sync.Mutex
	h     timeHeap
	due   map[string]time.Time
	wake  chan struct{}
	clock func() time.Time
}

func newSchedule(clock func() time.Time) *schedule {
	return &schedule{due: map[string]time.Time{}, wake: make(chan struct{}, 1), clock: clock}
}

// at schedules key at t (replacing any earlier schedule of key).
func (s *schedule) at(key string, t time.Time) {
	s.mu.Lock()
	s.due[key] = t
	heap.Push(&s.h, item{key: key, at: t})
	first := s.h[0].key == key && s.h[0].at.Equal(t)
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// cancel forgets key's schedule.
func (s *schedule) cancel(key string) {
	s.mu.Lock()
	delete(s.due, key)
	s.mu.Unlock()
}

// pop returns the keys due at now, and when the next one is due (zero when none).
func (s *schedule) pop(now time.Time, out []string) ([]string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 {
		top := s.h[0]
		if want, ok := s.due[top.key]; !ok || !want.Equal(top.at) {
			heap.Pop(&s.h) // stale: cancelled or rescheduled
			continue
		}
		if top.at.After(now) {
			return out, top.at
		}
		heap.Pop(&s.h)
		delete(s.due, top.key)
		out = append(out, top.key)
	}
	return out, time.Time{}
}

// next returns when key is due (zero when not scheduled).
func (s *schedule) next(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due[key]
}

type item struct {
	key string
	at  time.Time
}

type timeHeap []item

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *timeHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	*h = old[:n-1]
	return x
}
