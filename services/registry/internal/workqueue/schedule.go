package workqueue

import (
	"sync"
	"time"

	"sipreg.dev/services/registry/internal/nanotime"
)

// Schedule is a timer wheel of one: things due at a time, soonest first. Scheduling a
// thing again replaces its earlier time.
//
// It keeps no map: each thing carries its own Timer (its due time and its place in the
// heap), which the Schedule finds through the function given to NewSchedule. At 100,000
// trunks a map of due times by key cost 6-9 MB and a hash per schedule, pop and cancel;
// here a reschedule moves the thing within the heap, and a cancel takes it out.
type Schedule[T any] struct {
	mu    sync.Mutex
	h     []*T
	timer func(*T) *Timer
	wake  chan struct{}
}

// Timer is what a Schedule keeps in a thing it schedules (its zero value: not
// scheduled). Its fields are the Schedule's, guarded by its lock: the thing's own lock
// does not cover them.
type Timer struct {
	at  int64 // nanotime.Of
	pos int32 // place in the heap + 1; 0: not scheduled
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
	s.mu.Lock()
	tm := s.timer(x)
	tm.at = at
	if tm.pos == 0 {
		s.h = append(s.h, x)
		tm.pos = int32(len(s.h))
	}
	s.fix(int(tm.pos - 1))
	first := s.h[0] == x
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
	if tm := s.timer(x); tm.pos != 0 {
		s.remove(int(tm.pos - 1))
	}
}

// Pop appends to out the things due at now, in order of due time, and forgets their
// schedule; it returns out and when the next thing is due (zero when none).
func (s *Schedule[T]) Pop(now time.Time, out []*T) ([]*T, time.Time) {
	n := nanotime.Of(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 {
		top := s.timer(s.h[0])
		if top.at > n {
			return out, nanotime.Time(top.at)
		}
		out = append(out, s.h[0])
		s.remove(0)
	}
	return out, time.Time{}
}

// Next returns when x is due (zero when not scheduled).
func (s *Schedule[T]) Next(x *T) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tm := s.timer(x); tm.pos != 0 {
		return nanotime.Time(tm.at)
	}
	return time.Time{}
}

// Len is how many things are scheduled.
func (s *Schedule[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// remove takes the i-th thing out of the heap.
func (s *Schedule[T]) remove(i int) {
	last := len(s.h) - 1
	s.timer(s.h[i]).pos = 0
	if i != last {
		s.h[i] = s.h[last]
		s.timer(s.h[i]).pos = int32(i + 1)
	}
	s.h[last] = nil
	s.h = s.h[:last]
	if i != last {
		s.fix(i)
	}
	if cap(s.h) > 4096 && len(s.h) < cap(s.h)/4 {
		// A start's 100,000 schedules drained: the array is made anew, smaller.
		s.h = append(make([]*T, 0, 2*len(s.h)), s.h...)
	}
}

// fix moves the i-th thing up or down to its place.
func (s *Schedule[T]) fix(i int) {
	if !s.up(i) {
		s.down(i)
	}
}

func (s *Schedule[T]) less(i, j int) bool { return s.timer(s.h[i]).at < s.timer(s.h[j]).at }

func (s *Schedule[T]) swap(i, j int) {
	s.h[i], s.h[j] = s.h[j], s.h[i]
	s.timer(s.h[i]).pos = int32(i + 1)
	s.timer(s.h[j]).pos = int32(j + 1)
}

// up moves the i-th thing towards the root; it reports whether it moved.
func (s *Schedule[T]) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s.swap(i, p)
		i, moved = p, true
	}
	return moved
}

func (s *Schedule[T]) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(s.h) {
			return
		}
		m := l
		if r := l + 1; r < len(s.h) && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.swap(i, m)
		i = m
	}
}
