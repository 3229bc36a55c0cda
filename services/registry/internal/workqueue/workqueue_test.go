package workqueue

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestQueueDeduplicates: a key added twice while waiting is handed out once, in FIFO
// order of first addition.
func TestQueueDeduplicates(t *testing.T) {
	q := New()
	for _, k := range []string{"a", "b", "a", "c", "b"} {
		q.Add(k)
	}
	var got []string
	for range 3 {
		k, ok := q.Get()
		if !ok {
			t.Fatal("Get failed on a live queue")
		}
		got = append(got, k)
		q.Done(k)
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v, want a, b, c once each", got)
	}
}

// TestQueueNeverTwoWorkers: a key added while a worker has it is handed out again only
// after Done, and once however often it was added meanwhile.
func TestQueueNeverTwoWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New()
		q.Add("a")
		k, _ := q.Get()
		q.Add("a")
		q.Add("a")
		second := make(chan string, 2)
		go func() {
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				second <- k
			}
		}()
		synctest.Wait()
		if len(second) != 0 {
			t.Fatal("a key held by a worker was handed to another")
		}
		q.Done(k)
		synctest.Wait()
		if len(second) != 1 || <-second != "a" {
			t.Fatal("the key added while held was not handed out once after Done")
		}
		q.Close()
		synctest.Wait()
	})
}

// TestQueueClose: Close wakes every waiting Get with false, and Add does nothing after.
func TestQueueClose(t *testing.T) {
	q := New()
	var wg sync.WaitGroup
	results := make(chan bool, 3)
	for range 3 {
		wg.Go(func() {
			_, ok := q.Get()
			results <- ok
		})
	}
	q.Close()
	wg.Wait()
	close(results)
	for ok := range results {
		if ok {
			t.Fatal("Get answered a key after Close")
		}
	}
	q.Add("a")
	if len(q.items) != 0 || q.state["a"] != 0 {
		t.Fatal("Add after Close queued a key")
	}
}

// TestSchedule: keys come out in due order; a later At replaces the earlier time, Cancel
// forgets a key, and Pop says when the next key is due.
func TestSchedule(t *testing.T) {
	s := newKeyed()
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	s.At("a", t0.Add(3*time.Second))
	s.At("b", t0.Add(1*time.Second))
	s.At("c", t0.Add(2*time.Second))
	s.At("a", t0.Add(500*time.Millisecond)) // replaces a's 3 s
	s.At("d", t0.Add(4*time.Second))
	s.Cancel("c")
	if got := s.Next("b"); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("Next(b) = %v", got)
	}
	due, next := s.Pop(t0.Add(time.Second), nil)
	if !slices.Equal(due, []string{"a", "b"}) || !next.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("Pop at 1 s = %v, next %v; want a, b, next at 4 s (c cancelled, a's 3 s replaced)", due, next)
	}
	if !s.Next("a").IsZero() {
		t.Fatal("a popped key is still scheduled")
	}
	due, next = s.Pop(t0.Add(10*time.Second), nil)
	if !slices.Equal(due, []string{"d"}) || !next.IsZero() {
		t.Fatalf("Pop at 10 s = %v, next %v; want d and nothing left", due, next)
	}
}

// TestScheduleWake: scheduling a key before every other one signals Wake; a later one
// does not.
func TestScheduleWake(t *testing.T) {
	s := newKeyed()
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	s.At("a", t0.Add(time.Minute))
	select {
	case <-s.Wake():
	default:
		t.Fatal("the first key did not wake the loop")
	}
	s.At("b", t0.Add(2*time.Minute))
	select {
	case <-s.Wake():
		t.Fatal("a key due after the soonest woke the loop")
	default:
	}
	s.At("c", t0)
	select {
	case <-s.Wake():
	default:
		t.Fatal("a key due before every other one did not wake the loop")
	}
}

// A queue that held a start's keys does not keep their map once drained (Go maps never
// shrink), and works on as before.
func TestQueueDrainedAfterABigStartLetsItsMapGo(t *testing.T) {
	q := New()
	n := shrinkAbove + 10
	for i := range n {
		q.Add(fmt.Sprint(i))
	}
	for range n {
		k, ok := q.Get()
		if !ok {
			t.Fatal("closed")
		}
		q.Done(k)
	}
	if q.peak != 0 || q.items != nil || len(q.state) != 0 {
		t.Fatalf("drained queue keeps peak %d, items cap %d", q.peak, cap(q.items))
	}
	q.Add("a")
	q.Add("a")
	if k, _ := q.Get(); k != "a" || len(q.items) != 0 {
		t.Fatalf("after the drain: got %q, %d left; want a, 0", k, len(q.items))
	}
}

// queueModel is the queue's contract in plain sets: a FIFO of waiting keys, the keys
// handed out, and those added again while handed out.
type queueModel struct {
	items                  []string
	waiting, active, again map[string]bool
}

func (m *queueModel) add(k string) {
	switch {
	case m.waiting[k]:
	case m.active[k]:
		m.again[k] = true
	default:
		m.items = append(m.items, k)
		m.waiting[k] = true
	}
}

func (m *queueModel) get() string {
	k := m.items[0]
	m.items = m.items[1:]
	delete(m.waiting, k)
	m.active[k] = true
	return k
}

func (m *queueModel) done(k string) {
	delete(m.active, k)
	if m.again[k] {
		delete(m.again, k)
		m.items = append(m.items, k)
		m.waiting[k] = true
	}
}

// TestQueueMatchesModel runs random Add, AddAll, Get and Done against queueModel: the same keys
// come out in the same order, and the queue's map holds exactly the keys the model
// knows of. Big runs cross shrinkAbove, so the drained map is made anew meanwhile.
func TestQueueMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 30 {
		q := New()
		m := &queueModel{waiting: map[string]bool{}, active: map[string]bool{}, again: map[string]bool{}}
		keys := 3 + run*run*16 // up to about 13,500 keys: past shrinkAbove
		var held []string
		drained, peak := false, 0
		for step := range 6 * keys {
			// Adds first, then mostly Gets: the queue fills and drains.
			adds, gets := 6, 8
			if step >= 3*keys {
				adds, gets = 1, 7
			}
			switch op := rng.IntN(10); {
			case op < adds && rng.IntN(3) == 0:
				// AddAll of a few keys (a repeat included at times): Add of each.
				batch := make([]string, 1+rng.IntN(4))
				for i := range batch {
					batch[i] = fmt.Sprint(rng.IntN(keys))
				}
				q.AddAll(batch)
				for _, k := range batch {
					m.add(k)
				}
			case op < adds:
				k := fmt.Sprint(rng.IntN(keys))
				q.Add(k)
				m.add(k)
			case op < gets && len(m.items) > 0:
				k, ok := q.Get()
				if want := m.get(); !ok || k != want {
					t.Fatalf("run %d step %d: Get = %q %v, model %q", run, step, k, ok, want)
				}
				held = append(held, k)
			case len(held) > 0:
				i := rng.IntN(len(held))
				k := held[i]
				held = slices.Delete(held, i, i+1)
				q.Done(k)
				m.done(k)
			}
			if len(q.items) != len(m.items) {
				t.Fatalf("run %d step %d: %d keys waiting, model %d", run, step, len(q.items), len(m.items))
			}
			peak = max(peak, len(m.items))
			drained = drained || peak > shrinkAbove && len(m.items) == 0
		}
		if run == 29 && !drained {
			t.Fatalf("run %d: %d keys, at most %d waiting, never drained past shrinkAbove: the test misses the map made anew", run, keys, peak)
		}
		known := maps.Clone(m.waiting)
		for k := range m.active {
			known[k] = true
		}
		if len(q.state) != len(known) {
			t.Fatalf("run %d: the queue's map holds %d keys, the model knows %d", run, len(q.state), len(known))
		}
		for k := range known {
			if q.state[k] == 0 {
				t.Fatalf("run %d: key %q missing from the queue's map", run, k)
			}
		}
	}
}
