package nanotime

import (
	"math"
	"testing"
	"time"
)

func TestOfAndTime(t *testing.T) {
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
		n := Of(c.in)
		if n != c.n {
			t.Errorf("%s: Of = %d, want %d", c.name, n, c.n)
		}
		if got := Time(n); !got.Equal(c.out) || got.IsZero() != c.out.IsZero() {
			t.Errorf("%s: Time = %v, want %v", c.name, got, c.out)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(0))
	f.Add(int64(-62135596800), int64(0)) // the zero time's second
	f.Add(int64(1_700_000_000), int64(999_999_999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		in := time.Unix(sec, nsec)
		n := Of(in)
		out := Time(n)
		switch {
		case in.IsZero():
			if n != 0 || !out.IsZero() {
				t.Fatalf("zero time: %d, %v", n, out)
			}
		case in.Before(minTime) || in.After(maxTime):
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
