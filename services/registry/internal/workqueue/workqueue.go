// Package workqueue is the engine's work queue and schedule, in the manner of
// client-go's workqueue (as sample-controller uses it): a keyed, de-duplicating FIFO
// that never hands one key to two workers, and a schedule of keys due at a time.
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
	"time"

	"sipreg.dev/services/registry/internal/nanotime"
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

// Schedule is a timer wheel of one: keys due at a time, soonest first. Rescheduling a
// key replaces its earlier time.
type Schedule struct {
	mu   sync.Mutex
	h    timeHeap
	due  map[string]int64 // nanotime.Of
	wake chan struct{}
}

// Wake is signalled when a key is scheduled before every other one: a loop waiting
// for the soonest due time must look again.
func (s *Schedule) Wake() <-chan struct{} { return s.wake }

// NewSchedule returns an empty Schedule.
func NewSchedule() *Schedule {
	return &Schedule{due: map[string]int64{}, wake: make(chan struct{}, 1)}
}

// At schedules key at t (replacing any earlier schedule of key).
func (s *Schedule) At(key string, t time.Time) {
	at := nanotime.Of(t)
	s.mu.Lock()
	s.due[key] = at
	if len(s.h) >= 2*len(s.due)+compactSlack {
		s.compact()
	}
	s.h.push(item{key: key, at: at})
	first := s.h[0].key == key && s.h[0].at == at
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Cancel forgets key's schedule.
func (s *Schedule) Cancel(key string) {
	s.mu.Lock()
	delete(s.due, key)
	s.mu.Unlock()
}

// Pop appends to out the keys due at now, in order of due time, and forgets their
// schedule; it returns out and when the next key is due (zero when none).
func (s *Schedule) Pop(now time.Time, out []string) ([]string, time.Time) {
	n := nanotime.Of(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 {
		top := s.h[0]
		if want, ok := s.due[top.key]; !ok || want != top.at {
			s.h.pop() // stale: cancelled or rescheduled
			continue
		}
		if top.at > n {
			return out, nanotime.Time(top.at)
		}
		s.h.pop()
		delete(s.due, top.key)
		out = append(out, top.key)
	}
	return out, time.Time{}
}

// Next returns when key is due (zero when not scheduled).
func (s *Schedule) Next(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nanotime.Time(s.due[key])
}

// compactSlack is how many stale items the heap may hold beyond as many as the live
// ones before compact drops them.
const compactSlack = 1024

// compact rebuilds the heap from the live schedules, dropping the stale items (of
// keys rescheduled or cancelled since): a key rescheduled many times before its time
// comes would otherwise hold an item per schedule. Amortised over the pushes that
// made the stale items, it costs O(1) each.
func (s *Schedule) compact() {
	h := s.h[:0]
	for _, it := range s.h {
		if want, ok := s.due[it.key]; ok && want == it.at {
			h = append(h, it)
		}
	}
	clear(s.h[len(h):])
	s.h = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

type item struct {
	key string
	at  int64 // nanotime.Of
}

// timeHeap is a binary min-heap of items by time. It is written out rather than
// container/heap, whose interface boxes every item pushed and popped (an allocation
// per schedule, at 100,000 trunks a measurable part of the start's garbage).
type timeHeap []item

func (h *timeHeap) push(it item) {
	*h = append(*h, it)
	h.up(len(*h) - 1)
}

// pop removes the soonest item.
func (h *timeHeap) pop() item {
	old := *h
	n := len(old) - 1
	old[0], old[n] = old[n], old[0]
	it := old[n]
	old[n] = item{}
	*h = old[:n]
	h.down(0)
	return it
}

func (h timeHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[i].at >= h[p].at {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h timeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			m = r
		}
		if h[m].at >= h[i].at {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
