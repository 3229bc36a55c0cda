package registration_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// almostOne stands for r → 1 (r is in [0, 1)).
const almostOne = 0.999999999

func TestRefreshAfter(t *testing.T) {
	tests := []struct {
		name    string
		granted int
		r       float64
		want    time.Duration
	}{
		{"600 s, earliest (50%)", 600, 0, 300 * time.Second},
		{"600 s, middle", 600, 0.5, 390 * time.Second},
		{"600 s, latest (80%)", 600, 1, 480 * time.Second},
		{"3600 s, earliest", 3600, 0, 1800 * time.Second},
		{"3600 s, latest", 3600, 1, 2880 * time.Second},
		{"50 s, latest is also 10 s before", 50, 1, 40 * time.Second},
		{"30 s, 80% capped at 10 s before", 30, 1, 20 * time.Second},
		{"20 s, earliest", 20, 0, 10 * time.Second},
		{"20 s, latest capped at 10 s before", 20, 1, 10 * time.Second},
		{"10 s: half-way", 10, 0.7, 5 * time.Second},
		{"5 s: half-way", 5, 0, 2500 * time.Millisecond},
		{"5 s: half-way whatever r", 5, almostOne, 2500 * time.Millisecond},
		{"1 s: half-way", 1, 0.3, 500 * time.Millisecond},
		{"0: now", 0, 0.5, 0},
		{"negative: now", -30, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registration.RefreshAfter(tt.granted, tt.r); got != tt.want {
				t.Errorf("RefreshAfter(%d, %v) = %v, want %v", tt.granted, tt.r, got, tt.want)
			}
		})
	}
}

// Over the whole range of lifetimes: the refresh comes before expiry, never later than
// 10 s before it when the lifetime allows, and inside the 50-80% window when the lifetime
// is long enough for the window to lie entirely 10 s before expiry.
func TestRefreshAfterBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for granted := 1; granted <= 7200; granted++ {
		life := time.Duration(granted) * time.Second
		prev := time.Duration(-1)
		for _, r := range []float64{0, 0.25, 0.5, 0.75, almostOne, rng.Float64()} {
			d := registration.RefreshAfter(granted, r)
			if d <= 0 || d >= life {
				t.Fatalf("RefreshAfter(%d, %v) = %v, outside (0, %v)", granted, r, d, life)
			}
			if granted > 10 && d > life-registration.RefreshMargin {
				t.Fatalf("RefreshAfter(%d, %v) = %v, later than 10 s before expiry", granted, r, d)
			}
			if granted >= 50 && (d < life/2 || d > life*8/10) {
				t.Fatalf("RefreshAfter(%d, %v) = %v, outside [50%%, 80%%]", granted, r, d)
			}
			if granted >= 20 && d < life/2 {
				t.Fatalf("RefreshAfter(%d, %v) = %v, earlier than half-way", granted, r, d)
			}
			if r != 0.25 && r != 0.5 && r != 0.75 && r != 0 && r != almostOne {
				continue
			}
			if d < prev {
				t.Fatalf("RefreshAfter(%d, ·) decreases with r: %v after %v", granted, d, prev)
			}
			prev = d
		}
	}
}

// The backoff doubles with each failure up to max, and the wait is a uniform point in
// [W/2, W]: r = 0 gives W/2, r → 1 gives W.
func TestBackoffDoublesAndCaps(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
	}{
		{"RFC 5626 all-failed", 30 * time.Second, 30 * time.Minute},
		{"RFC 5626 some ok", 90 * time.Second, 30 * time.Minute},
		{"small", time.Second, time.Minute},
		{"base equals max", time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prevW := time.Duration(0)
			capped := false
			for n := 1; n <= 40; n++ {
				w := registration.Backoff(n, tt.base, tt.max, almostOne)
				lo := registration.Backoff(n, tt.base, tt.max, 0)
				if diff := w - 2*lo; diff < -time.Millisecond || diff > time.Millisecond {
					t.Fatalf("failures %d: r=0 gives %v, r→1 gives %v; want W/2 and W", n, lo, w)
				}
				if w > tt.max || lo < tt.base/2 {
					t.Fatalf("failures %d: [%v, %v] outside [base/2, max]", n, lo, w)
				}
				if n > 1 {
					want := min(2*prevW, tt.max)
					if diff := w - want; diff < -time.Millisecond || diff > time.Millisecond {
						t.Fatalf("failures %d: W = %v, want min(2*%v, max) = %v", n, w, prevW, want)
					}
				}
				if capped && w < tt.max-time.Millisecond {
					t.Fatalf("failures %d: W = %v fell below max after reaching it", n, w)
				}
				capped = capped || w >= tt.max-time.Millisecond
				prevW = w
				for range 50 {
					r := rand.Float64()
					if d := registration.Backoff(n, tt.base, tt.max, r); d < lo || d > w {
						t.Fatalf("failures %d, r %v: %v outside [%v, %v]", n, r, d, lo, w)
					}
				}
			}
			if !capped {
				t.Error("never reached max")
			}
		})
	}
}

// RFC 5626 §4.5 (README, "States"): W = min(max-time, base-time * 2^consecutive-failures),
// wait = uniform in [W/2, W]; the RFC's own example: base 30 s, three failures, W = 240 s,
// lower bound 120 s.
func TestBackoffRFC5626(t *testing.T) {
	base, maxW := 30*time.Second, 1800*time.Second
	tests := []struct {
		failures int
		w        time.Duration
	}{
		{1, 60 * time.Second},
		{2, 120 * time.Second},
		{3, 240 * time.Second}, // the RFC's example
		{4, 480 * time.Second},
		{5, 960 * time.Second},
		{6, 1800 * time.Second}, // 1920 s capped
		{100, 1800 * time.Second},
		{1 << 20, 1800 * time.Second},
	}
	for _, tt := range tests {
		lo := registration.Backoff(tt.failures, base, maxW, 0)
		hi := registration.Backoff(tt.failures, base, maxW, almostOne)
		if lo != tt.w/2 || hi < tt.w-time.Millisecond || hi > tt.w {
			t.Errorf("Backoff(%d failures, 30s, 1800s) in [%v, %v], want [%v, %v]", tt.failures, lo, hi, tt.w/2, tt.w)
		}
	}
}

func TestBackoffEdges(t *testing.T) {
	base, maxW := 30*time.Second, 30*time.Minute
	first := registration.Backoff(1, base, maxW, 0)
	for _, n := range []int{0, -1, -100} {
		if got := registration.Backoff(n, base, maxW, 0); got != first {
			t.Errorf("Backoff(%d) = %v, want the first failure's %v", n, got, first)
		}
	}
	if got := registration.Backoff(3, 10*time.Minute, time.Minute, almostOne); got > time.Minute {
		t.Errorf("base above max: %v, want at most max", got)
	}
	for _, n := range []int{63, 64, 1000, 1 << 30} {
		if got := registration.Backoff(n, base, maxW, almostOne); got <= 0 || got > maxW {
			t.Errorf("Backoff(%d) = %v, want (0, max]", n, got)
		}
	}
}
