package reconcile

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
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
