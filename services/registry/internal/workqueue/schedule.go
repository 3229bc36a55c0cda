package workqueue

import (
	"sync"
	"time"

	"sipreg.dev/services/registry/internal/nanotime"
)

// Schedule is a timer wheel of one: things due at a time, soonest first. Scheduling a
// thing again replaces its earlier time.
//
// It keeps no map: each thing carries its own Timer (its due time), which the Schedule
// finds through the function given to NewSchedule. The heap holds (thing, due time)
// items; rescheduling pushes a new item and leaves the old one stale, recognised when
// it comes to the top (its time is no longer the thing's), and dropped in bulk when
// stale items outnumber the live ones. At 100,000 trunks a map of due times by key
// cost 6-9 MB and a hash per schedule, pop and cancel; the heap's comparisons read
// only the heap (an indexed heap that moved things in place read two things per
// comparison, a cache miss each: it took 15 % of a start's CPU).
type Schedule[T any] struct {
	mu    sync.Mutex
	h     []item[T]
	live  int // things scheduled
	timer func(*T) *Timer
	wake  chan struct{}
}

// Timer is what a Schedule keeps in a thing it schedules (its zero value: not
// scheduled). It is the Schedule's, guarded by its lock: the thing's own lock does not
// cover it.
type Timer struct {
	at int64 // nanotime.Of; 0: not scheduled
}

type item[T any] struct {
	x  *T
	at int64
}

// NewSchedule returns an empty Schedule of things whose Timer timer answers.
func NewSchedule[T any](timer func(*T) *Timer) *Schedule[T] {
	return &Schedule[T]{timer: timer, wake: make(chan struct{}, 1)}
}

// Wake is signalled when a thing is scheduled before every other one: a loop waiting
// for the soonest due time must look again.
func (s *Schedule[T]) Wake() <-chan struct{} { return s.wake }

// At schedules x at t (replacing any earlier schedule of x).
func (s *Schedule[T]) At(x *T, t time.Time) {
	at := nanotime.Of(t)
	if at == 0 {
		at = 1 // the zero time: due at once (0 means not scheduled)
	}
	s.mu.Lock()
	tm := s.timer(x)
	if tm.at == 0 {
		s.live++
	}
	tm.at = at
	if len(s.h) >= 2*s.live+compactSlack {
		s.compact()
	}
	s.push(item[T]{x, at})
	first := s.h[0].x == x && s.h[0].at == at
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Cancel forgets x's schedule.
func (s *Schedule[T]) Cancel(x *T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tm := s.timer(x); tm.at != 0 {
		tm.at = 0
		s.live--
	}
}

// Pop appends to out the things due at now, in order of due time, and forgets their
// schedule; it returns out and when the next thing is due (zero when none).
func (s *Schedule[T]) Pop(now time.Time, out []*T) ([]*T, time.Time) {
	n := nanotime.Of(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 {
		top := s.h[0]
		tm := s.timer(top.x)
		if tm.at != top.at {
			s.pop() // stale: cancelled or rescheduled
			continue
		}
		if top.at > n {
			return out, nanotime.Time(top.at)
		}
		s.pop()
		tm.at = 0
		s.live--
		out = append(out, top.x)
	}
	return out, time.Time{}
}

// Next returns when x is due (zero when not scheduled).
func (s *Schedule[T]) Next(x *T) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nanotime.Time(s.timer(x).at)
}

// Len is how many things are scheduled.
func (s *Schedule[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// compactSlack is how many stale items the heap may hold beyond as many as the live
// ones before compact drops them.
const compactSlack = 1024

// compact rebuilds the heap from the live schedules, dropping the stale items (of
// things rescheduled or cancelled since): a thing rescheduled many times before its
// time comes would otherwise hold an item per schedule. Amortised over the pushes that
// made the stale items, it costs O(1) each.
func (s *Schedule[T]) compact() {
	h := s.h[:0]
	for _, it := range s.h {
		if s.timer(it.x).at == it.at {
			h = append(h, it)
		}
	}
	clear(s.h[len(h):])
	s.h = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
}

func (s *Schedule[T]) push(it item[T]) {
	s.h = append(s.h, it)
	for i := len(s.h) - 1; i > 0; {
		p := (i - 1) / 2
		if s.h[i].at >= s.h[p].at {
			return
		}
		s.h[i], s.h[p] = s.h[p], s.h[i]
		i = p
	}
}

// pop removes the soonest item.
func (s *Schedule[T]) pop() {
	n := len(s.h) - 1
	s.h[0] = s.h[n]
	s.h[n] = item[T]{}
	s.h = s.h[:n]
	s.down(0)
	if cap(s.h) > 4096 && len(s.h) < cap(s.h)/4 {
		// A start's 100,000 schedules drained: the array is made anew, smaller.
		s.h = append(make([]item[T], 0, 2*len(s.h)), s.h...)
	}
}

func (s *Schedule[T]) down(i int) {
	h := s.h
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
