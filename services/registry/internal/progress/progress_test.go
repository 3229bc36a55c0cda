package progress

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewReporter(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	steps := []Counts{
		{Total: 50, Waiting: 50},                                  // a small start: no line
		{Total: 1000, Waiting: 1000},                              // a big one begins
		{Total: 1000, Registered: 300, Waiting: 690, Failing: 10}, // 300 in 5 s
		{Total: 1000, Registered: 990, Failing: 10},               // done: one summary
		{Total: 1000, Registered: 990, Failing: 10},               // nothing more
	}
	var big []bool
	for i, cur := range steps {
		big = append(big, p.Report(cur, now.Add(time.Duration(i)*Every)))
	}
	if fmt.Sprint(big) != "[false true true false false]" {
		t.Errorf("Report said a big start was under way at steps %v, want [false true true false false]", big)
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

func TestCapacityWarningOncePerEpisode(t *testing.T) {
	var buf bytes.Buffer
	c := NewCapacity(slog.New(slog.NewTextHandler(&buf, nil)), 100)
	var over []bool
	for _, need := range []float64{50, 256, 300, 90, 79, 120} {
		over = append(over, c.Check(need))
	}
	if fmt.Sprint(over) != "[false true true true false true]" {
		t.Errorf("over the cap %v, want [false true true true false true]", over)
	}
	out := buf.String()
	if n := strings.Count(out, "cannot carry the refresh load"); n != 2 {
		t.Fatalf("%d warnings, want 2 (one per episode):\n%s", n, out)
	}
	if !strings.Contains(out, "cap=spec.registersPerSecond") || !strings.Contains(out, "needed_per_second=256.0") {
		t.Fatalf("the warning does not name the cap and the rate needed:\n%s", out)
	}
	if n := strings.Count(out, "under the caps again"); n != 1 {
		t.Fatalf("%d recoveries logged, want 1:\n%s", n, out)
	}
}

// TestCapacityNoWarningWithoutCap: with no rate cap there is no cap to name; the
// capacity check never warns, and Lapsing says there is no rate cap.
func TestCapacityNoWarningWithoutCap(t *testing.T) {
	var buf strings.Builder
	c := NewCapacity(slog.New(slog.NewTextHandler(&buf, nil)), 0)
	for _, need := range []float64{50, 1e6, 0, 1e9} {
		if c.Check(need) {
			t.Fatalf("over the cap at %g/s with no cap", need)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("logged with no cap:\n%s", buf.String())
	}
	var l Lapses
	now := time.Now()
	l.Note(now)
	if lapsing, why := l.Lapsing(now.Add(time.Second), 0, 8); !lapsing || !strings.Contains(why, "no registersPerSecond cap") {
		t.Errorf("Lapsing = %v %q, want it to say there is no rate cap", lapsing, why)
	}
}

// TestLapsingWindow: Lapsing holds for LapseWindow after the last lapse, names the caps,
// and is false before any lapse.
func TestLapsingWindow(t *testing.T) {
	var l Lapses
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if lapsing, _ := l.Lapsing(now, 100, 8); lapsing {
		t.Fatal("lapsing before any lapse")
	}
	l.Note(now)
	if lapsing, why := l.Lapsing(now.Add(LapseWindow), 100, 8); !lapsing ||
		!strings.Contains(why, "registersPerSecond 100") || !strings.Contains(why, "maxInFlight 8") || !strings.Contains(why, "1m0s ago") {
		t.Errorf("Lapsing at the window's end = %v %q, want true naming both caps", lapsing, why)
	}
	if lapsing, _ := l.Lapsing(now.Add(LapseWindow+time.Second), 100, 8); lapsing {
		t.Error("still lapsing after the window")
	}
}

// TestRefreshLoad: a registered binding granted 100 s needs one REGISTER per 65 s; one
// not registered, or granted nothing, needs none.
func TestRefreshLoad(t *testing.T) {
	rec := registration.Record{State: registration.StateRegistered, GrantedExpires: 100}
	if got, want := RefreshLoad(rec), 1/65.0; got < want*0.999 || got > want*1.001 {
		t.Errorf("RefreshLoad = %g, want %g", got, want)
	}
	rec.State = registration.StateRejected
	if got := RefreshLoad(rec); got != 0 {
		t.Errorf("RefreshLoad of a rejected binding = %g, want 0", got)
	}
	if got := RefreshLoad(registration.Record{State: registration.StateRegistered}); got != 0 {
		t.Errorf("RefreshLoad of a binding granted nothing = %g, want 0", got)
	}
}
