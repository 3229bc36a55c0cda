package reconcile

import "golang.org/x/time/rate"

// newLimiter caps the REGISTERs sent at rps per second. Its burst is a tenth of the rate
// (at least 1), so the cap holds over any one second: after an idle spell at most
// rps + rps/10 go out in the next second, never twice the cap as a full second of saved
// tokens would allow. rps 0 (the default) is no global cap: the limiter lets everything
// through at once, and each registrar's share of maxInFlight is what protects it.
func newLimiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(rps), limiterBurst(rps))
}

func limiterBurst(rps float64) int {
	return max(1, int(rps/10))
}
