package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/registration"
)

// lineCounter counts log records by level and message.
type lineCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *lineCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *lineCounter) WithGroup(string) slog.Handler            { return c }
func (c *lineCounter) Handle(_ context.Context, rec slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[rec.Level.String()+" "+rec.Message]++
	return nil
}

func (c *lineCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// TestBigStartLogsFirstRegistrationsAtDebug: a start of progress.Min trunks or more
// logs each trunk's first "registered" at debug (the progress lines report it); a small
// start logs them at info, and so does a trunk added one at a time after a big start.
func TestBigStartLogsFirstRegistrationsAtDebug(t *testing.T) {
	for _, n := range []int{3, progress.Min} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lines := &lineCounter{n: map[string]int{}}
				api := &fakeAPI{}
				var trunks []*trunksv2beta1.Trunk
				for i := range n {
					trunks = append(trunks, mkTrunk(fmt.Sprintf("t%03d", i), "sip.example.net", fmt.Sprintf("u%03d", i), ""))
				}
				api.set(trunks, nil)
				req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
					return ok(600), nil
				}}
				spec := testSpec()
				spec.RegisterInterval = time.Minute
				r := New(Options{Spec: spec, Trunks: api, Requester: req, Logger: slog.New(lines)})
				runBackground(t, r)

				time.Sleep(10 * time.Second)
				synctest.Wait()
				info, debug := lines.count("INFO registered"), lines.count("DEBUG registered")
				if want := map[bool][2]int{false: {n, 0}, true: {0, n}}[n >= progress.Min]; info != want[0] || debug != want[1] {
					t.Fatalf("%d trunks: %d registered lines at info, %d at debug; want %d and %d", n, info, debug, want[0], want[1])
				}
				// One more trunk, once the start is over: at info.
				api.set(append(trunks, mkTrunk("late", "sip.example.net", "late", "")), nil)
				time.Sleep(spec.RegisterInterval)
				synctest.Wait()
				if got := lines.count("INFO registered"); got != info+1 {
					t.Fatalf("a trunk added after the start: %d registered lines at info, want %d", got, info+1)
				}
			})
		})
	}
}

// TestProgressIdleDoesNotCount: the progress loop counts the entries (a walk of them
// all under the engine's lock) only while a pass has queued progress.Min trunks or more:
// after a big start, minutes of discovery ticks and refreshes count nothing, and a big
// change or addition is counted again.
func TestProgressIdleDoesNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{}
		var trunks []*trunksv2beta1.Trunk
		for i := range progress.Min {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("t%03d", i), "sip.example.net", fmt.Sprintf("u%03d", i), ""))
		}
		api.set(trunks, nil)
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(60), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 10 * time.Second
		r := New(Options{Spec: spec, Trunks: api, Requester: req, Logger: slog.New(slog.DiscardHandler)})
		runBackground(t, r)

		time.Sleep(3 * progress.Every)
		synctest.Wait()
		if n := r.progressWalks.Load(); n == 0 {
			t.Fatal("a start of progress.Min trunks was never counted")
		}
		for _, rec := range r.Records() {
			if rec.State != registration.StateRegistered {
				t.Fatalf("after the start: trunk %s is %s, want registered", rec.TrunkRef, rec.State)
			}
		}
		idle := r.progressWalks.Load()
		// Five minutes: 30 discovery ticks with the same answer and every binding
		// (granted 60 s) refreshed several times.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := r.progressWalks.Load(); n != idle {
			t.Fatalf("an idle registry counted its entries %d times in 5 minutes, want 0", n-idle)
		}
		if calls := len(req.requests()); calls < 4*progress.Min {
			t.Fatalf("%d REGISTERs in all: the bindings were not refreshed meanwhile", calls)
		}
		// Every trunk changed at once (a new registrar host): counted again.
		for i := range trunks {
			trunks[i] = mkTrunk(fmt.Sprintf("t%03d", i), "sip2.example.net", fmt.Sprintf("u%03d", i), "")
		}
		api.set(trunks, nil)
		time.Sleep(spec.RegisterInterval + progress.Every)
		synctest.Wait()
		if n := r.progressWalks.Load(); n == idle {
			t.Fatal("progress.Min trunks changed at once were not counted")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		idle = r.progressWalks.Load()
		// As many trunks added at once: counted again.
		for i := range progress.Min {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("n%03d", i), "sip.example.net", fmt.Sprintf("n%03d", i), ""))
		}
		api.set(trunks, nil)
		time.Sleep(spec.RegisterInterval + progress.Every)
		synctest.Wait()
		if n := r.progressWalks.Load(); n == idle {
			t.Fatal("progress.Min trunks added at once were not counted")
		}
	})
}
