package reconcile

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
func runCommitter(l *flushLog) (c *committer, stop func()) {
	c = newCommitter(l.write)
	ctx, cancel := context.WithCancel(context.Background())
	go c.run(ctx)
	return c, func() { cancel(); <-c.stopped }
}

// putEvery puts records t0..t{n-1}, the i-th after i*step of fake time, each from its
// own goroutine, and waits until every put returned; any put's error fails the test.
func putEvery(t *testing.T, c *committer, n int, step time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * step)
			_, err := c.put(registration.Record{TrunkRef: fmt.Sprintf("t%d", i)})
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

// TestCommitterGroupsPutsWithinTheWindow: puts that arrive within commitQuiet of each
// other share one write, which goes out commitQuiet after the last of them.
func TestCommitterGroupsPutsWithinTheWindow(t *testing.T) {
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
		if got := at[0].Sub(t0); got != last+commitQuiet {
			t.Errorf("written %v after the first put, want %v (the last put + commitQuiet)", got, last+commitQuiet)
		}
	})
}

// TestCommitterWaitsAtMostTheWindow: a steady stream that is never quiet for
// commitQuiet is still written commitWindow after the first put of a batch.
func TestCommitterWaitsAtMostTheWindow(t *testing.T) {
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
		if got := at[0].Sub(t0); got != commitWindow {
			t.Errorf("first write %v after the first put, want commitWindow %v", got, commitWindow)
		}
		if got, want := at[1].Sub(t0), 13500*time.Microsecond+commitQuiet; got != want {
			t.Errorf("second write at %v, want %v", got, want)
		}
	})
}

// TestCommitterSinglePutWaitsForQuiet: a lone put is written commitQuiet later.
func TestCommitterSinglePutWaitsForQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		if _, err := c.put(registration.Record{TrunkRef: "t1"}); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(t0); got != commitQuiet {
			t.Errorf("put returned after %v, want commitQuiet %v", got, commitQuiet)
		}
		// A second, later put opens a batch of its own.
		time.Sleep(time.Second)
		if _, err := c.put(registration.Record{TrunkRef: "t2"}); err != nil {
			t.Fatal(err)
		}
		if sizes, _ := l.writes(); len(sizes) != 2 {
			t.Errorf("writes of %v records, want two of one", sizes)
		}
	})
}

// TestCommitterFullBatchGoesAtOnce: a full batch does not wait for the window.
func TestCommitterFullBatchGoesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l flushLog
		c, stop := runCommitter(&l)
		defer stop()
		t0 := time.Now()
		putEvery(t, c, commitBatch, 0)
		sizes, at := l.writes()
		if len(sizes) != 1 || sizes[0] != commitBatch {
			t.Fatalf("writes of %v records, want one of %d", sizes, commitBatch)
		}
		if !at[0].Equal(t0) {
			t.Errorf("a full batch waited %v", at[0].Sub(t0))
		}
	})
}

// TestCommitterRefusedAndStop: a record the write refuses gets errRefused, the others
// nil; what is queued when the committer stops is still written.
func TestCommitterRefusedAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := flushLog{refuse: map[string]bool{"taken": true}}
		c := newCommitter(l.write)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := map[string]error{}
		var mu sync.Mutex
		for _, ref := range []string{"mine", "taken"} {
			wg.Go(func() {
				_, err := c.put(registration.Record{TrunkRef: ref})
				mu.Lock()
				errs[ref] = err
				mu.Unlock()
			})
		}
		synctest.Wait() // both queued, nothing running them yet
		cancel()
		go c.run(ctx)
		wg.Wait()
		<-c.stopped
		if errs["mine"] != nil || !errors.Is(errs["taken"], errRefused) {
			t.Errorf("errors %v, want nil for mine and errRefused for taken", errs)
		}
		if sizes, _ := l.writes(); len(sizes) != 1 || sizes[0] != 2 {
			t.Errorf("writes of %v records, want one of 2 (drained at the stop)", sizes)
		}
		if _, err := c.put(registration.Record{TrunkRef: "late"}); !errors.Is(err, errCommitterStopped) {
			t.Errorf("put after the stop: %v, want errCommitterStopped", err)
		}
	})
}
