package workqueue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestScheduleMatchesModel runs random At, Cancel and Pop against a plain map of due
// times: Pop returns exactly the keys the model says are due, soonest first, and Next
// agrees with the model throughout (rescheduling, cancelling and compaction included).
func TestScheduleMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newKeyed()
	model := map[string]time.Time{}
	base := time.Unix(1_700_000_000, 0)
	now := base
	for step := range 200_000 {
		key := fmt.Sprintf("k%d", rng.IntN(300))
		switch op := rng.IntN(10); {
		case op < 6:
			at := now.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
			s.At(key, at)
			model[key] = at
		case op < 7:
			s.Cancel(key)
			delete(model, key)
		default:
			now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
			got, next := s.Pop(now, nil)
			var want []string
			for k, at := range model {
				if !at.After(now) {
					want = append(want, k)
				}
			}
			slices.SortFunc(want, func(a, b string) int { return model[a].Compare(model[b]) })
			for i := range got {
				if i >= len(want) || model[got[i]] != model[want[i]] {
					t.Fatalf("step %d: Pop = %v, want %v (due times in order)", step, got, want)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: Pop = %d keys, want %d", step, len(got), len(want))
			}
			for _, k := range got {
				delete(model, k)
			}
			var soonest time.Time
			for _, at := range model {
				if soonest.IsZero() || at.Before(soonest) {
					soonest = at
				}
			}
			if !next.Equal(soonest) {
				t.Fatalf("step %d: next due %v, want %v", step, next, soonest)
			}
		}
		if got := s.Next(key); !got.Equal(model[key]) {
			t.Fatalf("step %d: Next(%s) = %v, want %v", step, key, got, model[key])
		}
		if got := s.s.Len(); got != len(model) {
			t.Fatalf("step %d: Len = %d, want %d", step, got, len(model))
		}
	}
}

// TestScheduleDropsStaleItems: a thing rescheduled again and again before its time
// comes does not leave an item per schedule behind, nor does one scheduled and
// cancelled again and again.
func TestScheduleDropsStaleItems(t *testing.T) {
	s := newKeyed()
	at := time.Unix(1_700_000_000, 0)
	for i := range 100_000 {
		s.At("k", at.Add(time.Duration(i)*time.Millisecond))
		s.At("gone", at)
		s.Cancel("gone")
	}
	if n := len(s.s.h); n > 2+compactSlack {
		t.Fatalf("heap holds %d items for one scheduled key", n)
	}
	if n := s.s.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	got, _ := s.Pop(at.Add(time.Hour), nil)
	if !slices.Equal(got, []string{"k"}) {
		t.Fatalf("Pop = %v, want [k]", got)
	}
}

// thing is a scheduled test item; keyed schedules things by key.
type thing struct {
	key string
	t   Timer
}

type keyed struct {
	s *Schedule[thing]
	m map[string]*thing
}

func newKeyed() *keyed {
	return &keyed{s: NewSchedule(func(x *thing) *Timer { return &x.t }), m: map[string]*thing{}}
}

func (k *keyed) get(key string) *thing {
	x := k.m[key]
	if x == nil {
		x = &thing{key: key}
		k.m[key] = x
	}
	return x
}

func (k *keyed) At(key string, at time.Time) { k.s.At(k.get(key), at) }
func (k *keyed) Cancel(key string)           { k.s.Cancel(k.get(key)) }
func (k *keyed) Next(key string) time.Time   { return k.s.Next(k.get(key)) }
func (k *keyed) Wake() <-chan struct{}       { return k.s.Wake() }
func (k *keyed) Pop(now time.Time, out []string) ([]string, time.Time) {
	things, next := k.s.Pop(now, nil)
	for _, x := range things {
		out = append(out, x.key)
	}
	return out, next
}

// Due times made from time.Now stay on the monotonic clock (a wall-clock step moves
// nothing), as time.Time values would.
func TestScheduleKeepsTheMonotonicClock(t *testing.T) {
	s := newKeyed()
	due := time.Now().Add(time.Minute)
	s.At("a", due)
	got := s.Next("a")
	if got.String() == got.Round(0).String() || !got.Equal(due) {
		t.Fatalf("due %v kept as %v (no monotonic reading, or another instant)", due, got)
	}
	if keys, next := s.Pop(due.Add(-time.Nanosecond), nil); len(keys) != 0 || !next.Equal(due) {
		t.Fatalf("a nanosecond early: popped %v, next %v", keys, next)
	}
	if keys, _ := s.Pop(due, nil); len(keys) != 1 {
		t.Fatalf("at the due time: popped %v", keys)
	}
}
