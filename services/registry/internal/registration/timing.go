package registration

import "time"

// Refresh window (RFC 3261 §10.2.4 leaves the choice to the client): a random point
// between RefreshMin and RefreshMax of the granted lifetime, and never later than
// RefreshMargin before expiry.
const (
	RefreshMin    = 0.5
	RefreshMax    = 0.8
	RefreshMargin = 10 * time.Second
)

// RefreshAfter is how long after a grant of granted seconds the binding is refreshed;
// r is a uniform random number in [0, 1).
func RefreshAfter(granted int, r float64) time.Duration {
	life := time.Duration(granted) * time.Second
	if life <= 0 {
		return 0
	}
	d := time.Duration(float64(life) * (RefreshMin + (RefreshMax-RefreshMin)*r))
	if latest := life - RefreshMargin; d > latest {
		d = latest
	}
	if d <= 0 {
		// Lifetimes of 10 s or less: refresh half-way.
		d = life / 2
	}
	return d
}

// Backoff is the RFC 5626 §4.5 wait after failures consecutive failures (1 for the
// first): W = min(max, base * 2^failures), and the wait is a uniform random point in
// [W/2, W]; r is a uniform random number in [0, 1).
func Backoff(failures int, base, max time.Duration, r float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	w := base
	for i := 0; i < failures && w < max; i++ {
		w *= 2
	}
	if w > max {
		w = max
	}
	return time.Duration(float64(w) * (0.5 + 0.5*r))
}
