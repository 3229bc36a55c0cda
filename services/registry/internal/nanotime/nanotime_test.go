package nanotime

import (
	"math"
	"testing"
	"time"
)

func TestUnixOfAndUnix(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		in   time.Time
		n    int64
		out  time.Time
	}{
		{"zero", time.Time{}, 0, time.Time{}},
		{"now", now, now.UnixNano(), now},
		{"epoch", time.Unix(0, 0), 1, time.Unix(0, 1)},
		{"before 1678", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64, time.Unix(0, math.MinInt64)},
		{"after 2261", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64, time.Unix(0, math.MaxInt64)},
		{"before the epoch", time.Unix(-5, 3), -5*1e9 + 3, time.Unix(-5, 3)},
	} {
		n := UnixOf(c.in)
		if n != c.n {
			t.Errorf("%s: UnixOf = %d, want %d", c.name, n, c.n)
		}
		if got := Unix(n); !got.Equal(c.out) || got.IsZero() != c.out.IsZero() {
			t.Errorf("%s: Unix = %v, want %v", c.name, got, c.out)
		}
	}
	// The wall clock exactly, without a monotonic reading.
	if got := Unix(UnixOf(now)); got != now.Round(0).Local() && !got.Equal(now.Round(0)) {
		t.Errorf("now came back as %v", got)
	}
}

func TestOfAndTime(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		in   time.Time
		out  time.Time
	}{
		{"zero", time.Time{}, time.Time{}},
		{"now", now, now},
		{"the Unix epoch", time.Unix(0, 0), time.Unix(0, 0)},
		{"a stored time", time.Date(2026, 12, 6, 10, 0, 0, 5, time.UTC), time.Date(2026, 12, 6, 10, 0, 0, 5, time.UTC)},
		{"the base", base, base.Add(1)},
		{"year 1000", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(math.MinInt64)},
		{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(math.MaxInt64)},
	} {
		n := Of(c.in)
		if got := Time(n); !got.Equal(c.out) || got.IsZero() != c.out.IsZero() {
			t.Errorf("%s: Time(Of) = %v, want %v", c.name, got, c.out)
		}
	}
	if Of(time.Time{}) != 0 {
		t.Error("the zero time is not 0")
	}
}

// A time made from time.Now comes back with a monotonic reading: the schedule keeps
// the monotonic clock (a wall-clock step moves nothing).
func TestKeepsTheMonotonicClock(t *testing.T) {
	due := time.Now().Add(time.Minute)
	back := Time(Of(due))
	if back.String() == back.Round(0).String() {
		t.Fatalf("%v has no monotonic clock reading", back)
	}
	// The same instant by the monotonic clock; the wall readings may differ by how far
	// the two clocks moved apart since the base (here: nanoseconds).
	if d := back.Round(0).Sub(due.Round(0)); !back.Equal(due) || d > time.Millisecond || d < -time.Millisecond {
		t.Fatalf("%v came back as %v", due, back)
	}
}

func FuzzUnixRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(0))
	f.Add(int64(0), int64(0))
	f.Add(int64(1_700_000_000), int64(999_999_999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		in := time.Unix(sec, nsec)
		n := UnixOf(in)
		out := Unix(n)
		switch {
		case in.IsZero():
			if n != 0 || !out.IsZero() {
				t.Fatalf("zero time: %d, %v", n, out)
			}
		case in.Before(minUnix) || in.After(maxUnix):
			if n != math.MinInt64 && n != math.MaxInt64 {
				t.Fatalf("%v out of range kept as %d", in, n)
			}
		case n == 1:
			if !in.Equal(time.Unix(0, 0)) && !in.Equal(time.Unix(0, 1)) {
				t.Fatalf("%v kept as 1", in)
			}
		default:
			if !out.Equal(in) || out.IsZero() {
				t.Fatalf("%v came back as %v", in, out)
			}
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(0))
	f.Add(int64(-62135596800), int64(0)) // the zero time's second
	f.Add(int64(1_700_000_000), int64(999_999_999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		in := time.Unix(sec, nsec)
		n := Of(in)
		out := Time(n)
		switch d := in.Sub(base); {
		case in.IsZero():
			if n != 0 || !out.IsZero() {
				t.Fatalf("zero time: %d, %v", n, out)
			}
		case d == math.MinInt64 || d == math.MaxInt64:
			if n != int64(d) {
				t.Fatalf("%v out of range kept as %d", in, n)
			}
		case d == 0:
			if n != 1 {
				t.Fatalf("the base kept as %d", n)
			}
		default:
			if !out.Equal(in) || out.IsZero() {
				t.Fatalf("%v came back as %v", in, out)
			}
		}
	})
}
