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
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { _ = r.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()

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
