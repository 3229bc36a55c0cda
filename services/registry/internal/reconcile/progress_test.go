package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	r := New(Options{Spec: testSpec(), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	steps := []progress{
		{total: 50, waiting: 50},                                  // a small start: no line
		{total: 1000, waiting: 1000},                              // a big one begins
		{total: 1000, registered: 300, waiting: 690, failing: 10}, // 300 in 5 s
		{total: 1000, registered: 990, failing: 10},               // done: one summary
		{total: 1000, registered: 990, failing: 10},               // nothing more
	}
	var prev progress
	var since time.Time
	for i, cur := range steps {
		since = r.reportProgress(prev, cur, since, now.Add(time.Duration(i)*progressEvery))
		prev = cur
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 2 progress lines and 1 summary:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"registered=300", "total=1000", "rate_per_second=60", "failing=10", "eta=12s"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("progress line %q lacks %s", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "first registrations done") || !strings.Contains(lines[2], "registered=990") ||
		!strings.Contains(lines[2], "took=15s") {
		t.Errorf("summary %q", lines[2])
	}
}

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

// TestBigStartLogsFirstRegistrationsAtDebug: a start of progressMin trunks or more
// logs each trunk's first "registered" at debug (the progress lines report it); a small
// start logs them at info, and so does a trunk added one at a time after a big start.
func TestBigStartLogsFirstRegistrationsAtDebug(t *testing.T) {
	for _, n := range []int{3, progressMin} {
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
				if want := map[bool][2]int{false: {n, 0}, true: {0, n}}[n >= progressMin]; info != want[0] || debug != want[1] {
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
