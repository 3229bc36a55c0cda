package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// flushLog records each write of a committer: its size and when it happened (fake time
// inside a synctest bubble).
type flushLog struct {
	mu     sync.Mutex
	sizes  []int
	at     []time.Time
	refuse map[string]bool
}

func (l *flushLog) write(_ context.Context, recs []registration.Record) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sizes = append(l.sizes, len(recs))
	l.at = append(l.at, time.Now())
	var refused []string
	for _, r := range recs {
		if l.refuse[r.TrunkRef] {
			refused = append(refused, r.TrunkRef)
		}
	}
	return refused, nil
}

func (l *flushLog) writes() ([]int, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.sizes...), append([]time.Time(nil), l.at...)
}

// runCommitter starts a committer over l; stop ends it and waits.
func runCommitter(l *flushLog) (c *Committer, stop func()) {
	c = New(l.write, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go c.Run(ctx)
	return c, func() { cancel(); <-c.stopped }
}

// putEvery puts records t0..t{n-1}, the i-th after i*step of fake time, each from its
// own goroutine, and waits until every put returned; any put's error fails the test.
func putEvery(t *testing.T, c *Committer, n int, step time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * step)
			_, err := c.Put(registration.Record{TrunkRef: fmt.Sprintf("t%d", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupsPutsWithinTheWindow: puts that arrive within Quiet of each
// other share one write, which goes out Quiet after the last of them.
func TestGroupsPutsWithinTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		const n = 40
		// One every 150 µs: the last at 5.85 ms, each within 3 ms of the one before.
		putEvery(t, c, n, 150*time.Microsecond)
		sizes, at := l.writes()
		if len(sizes) != 1 || sizes[0] != n {
			t.Fatalf("writes of %v records, want one of %d", sizes, n)
		}
		last := time.Duration(n-1) * 150 * time.Microsecond
		if got := at[0].Sub(t0); got != last+Quiet {
			t.Errorf("written %v after the first put, want %v (the last put + Quiet)", got, last+Quiet)
		}
	})
}

// TestWaitsAtMostTheWindow: a steady stream that is never quiet for
// Quiet is still written Window after the first put of a batch.
func TestWaitsAtMostTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		// At 0, 1.5, ..., 13.5 ms: 0-9 ms in the first batch, 10.5-13.5 ms in the next.
		putEvery(t, c, 10, 1500*time.Microsecond)
		sizes, at := l.writes()
		if len(sizes) != 2 || sizes[0] != 7 || sizes[1] != 3 {
			t.Fatalf("writes of %v records, want 7 then 3", sizes)
		}
		if got := at[0].Sub(t0); got != Window {
			t.Errorf("first write %v after the first put, want Window %v", got, Window)
		}
		if got, want := at[1].Sub(t0), 13500*time.Microsecond+Quiet; got != want {
			t.Errorf("second write at %v, want %v", got, want)
		}
	})
}

// TestSinglePutWaitsForQuiet: a lone put is written Quiet later.
func TestSinglePutWaitsForQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		if _, err := c.Put(registration.Record{TrunkRef: "t1"}); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(t0); got != Quiet {
			t.Errorf("put returned after %v, want Quiet %v", got, Quiet)
		}
		// A second, later put opens a batch of its own.
		time.Sleep(time.Second)
		if _, err := c.Put(registration.Record{TrunkRef: "t2"}); err != nil {
			t.Fatal(err)
		}
		if sizes, _ := l.writes(); len(sizes) != 2 {
			t.Errorf("writes of %v records, want two of one", sizes)
		}
	})
}

// TestFullBatchGoesAtOnce: a full batch does not wait for the window.
func TestFullBatchGoesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		putEvery(t, c, Batch, 0)
		sizes, at := l.writes()
		if len(sizes) != 1 || sizes[0] != Batch {
			t.Fatalf("writes of %v records, want one of %d", sizes, Batch)
		}
		if !at[0].Equal(t0) {
			t.Errorf("a full batch waited %v", at[0].Sub(t0))
		}
	})
}

// TestRefusedAndStop: a record the write refuses gets ErrRefused, the others
// nil; what is queued when the committer stops is still written.
func TestRefusedAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := flushLog{refuse: map[string]bool{"taken": true}}
		c := New(l.write, nil)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := map[string]error{}
		var mu sync.Mutex
		for _, ref := range []string{"mine", "taken"} {
			wg.Go(func() {
				_, err := c.Put(registration.Record{TrunkRef: ref})
				mu.Lock()
				errs[ref] = err
				mu.Unlock()
			})
		}
		synctest.Wait() // both queued, nothing running them yet
		cancel()
		go c.Run(ctx)
		wg.Wait()
		<-c.stopped
		if errs["mine"] != nil || !errors.Is(errs["taken"], ErrRefused) {
			t.Errorf("errors %v, want nil for mine and ErrRefused for taken", errs)
		}
		if sizes, _ := l.writes(); len(sizes) != 1 || sizes[0] != 2 {
			t.Errorf("writes of %v records, want one of 2 (drained at the stop)", sizes)
		}
		if _, err := c.Put(registration.Record{TrunkRef: "late"}); !errors.Is(err, ErrStopped) {
			t.Errorf("put after the stop: %v, want ErrStopped", err)
		}
	})
}

// TestEnqueueReportsEachOutcome: OnWritten hears each Enqueued record, in order, with
// ErrRefused for what the fenced write turned down; Sync returns once they are written
// (at once, not at the end of the window); after Run returned, Enqueue queues nothing.
func TestEnqueueReportsEachOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &flushLog{refuse: map[string]bool{"e2": true}}
		c := New(l.write, nil)
		var mu sync.Mutex
		var heard []string
		c.OnWritten = func(rec registration.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, fmt.Sprintf("%s:%v", rec.TrunkRef, err))
		}
		ctx, cancel := context.WithCancel(context.Background())
		go c.Run(ctx)
		for i := range 3 {
			if !c.Enqueue(registration.Record{TrunkRef: fmt.Sprintf("e%d", i)}) {
				t.Fatal("Enqueue refused while Run runs")
			}
		}
		c.Sync()
		mu.Lock()
		n := len(heard)
		mu.Unlock()
		if n != 3 {
			t.Fatalf("Sync returned with %d of 3 Enqueued records reported", n)
		}
		if _, err := c.Put(registration.Record{TrunkRef: "p"}); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-c.stopped
		if c.Enqueue(registration.Record{TrunkRef: "late"}) {
			t.Fatal("Enqueue queued a record after Run returned")
		}
		want := fmt.Sprintf("[e0:<nil> e1:<nil> e2:%v]", ErrRefused)
		if got := fmt.Sprint(heard); got != want {
			t.Fatalf("OnWritten heard %s, want %s", got, want)
		}
		if sizes, _ := l.writes(); len(sizes) != 2 || sizes[0] != 3 || sizes[1] != 1 {
			t.Fatalf("writes %v, want the 3 Enqueued at the Sync, then the Put", sizes)
		}
	})
}

// TestEnqueueAtStopLosesNothing: Enqueues racing the stop either are refused or are
// written and reported: none is taken and then dropped.
func TestEnqueueAtStopLosesNothing(t *testing.T) {
	for range 20 {
		l := &flushLog{}
		c := New(l.write, nil)
		var reported sync.Map
		c.OnWritten = func(rec registration.Record, err error) { reported.Store(rec.TrunkRef, err) }
		ctx, cancel := context.WithCancel(context.Background())
		go c.Run(ctx)
		var wg sync.WaitGroup
		var taken sync.Map
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					ref := fmt.Sprintf("g%d-%d", g, i)
					if c.Enqueue(registration.Record{TrunkRef: ref}) {
						taken.Store(ref, true)
					}
				}
			})
		}
		cancel()
		wg.Wait()
		<-c.stopped
		taken.Range(func(k, _ any) bool {
			if _, ok := reported.Load(k); !ok {
				t.Fatalf("%v was taken by Enqueue but never written", k)
			}
			return true
		})
	}
}
