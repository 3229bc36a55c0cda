package reconcile

import (
	"context"
	"fmt"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// Falling behind is visible: a binding whose refresh starts after it expired has
// lapsed at the provider (counted, Observer.Lapsed); while that happens /healthz says so
// (Lapsing); and a warning names the cap that cannot carry the refresh load.

// lapseWindow is how long after the last lapse the registry reports itself lapsing.
const lapseWindow = time.Minute

// capacityEvery is how often the refresh load is compared with the caps.
const capacityEvery = 10 * time.Second

// noteLapse records that rec's binding expired before its refresh started (called by
// the worker that starts the refresh).
func (r *Reconciler) noteLapse(rec registration.Record, now time.Time) {
	late := now.Sub(rec.ExpiresAt)
	r.lastLapse.Store(now.UnixNano())
	r.obs.Lapsed()
	r.log.Debug("binding lapsed before its refresh", "trunk", rec.TrunkRef, "late", late.Round(time.Millisecond).String())
}

// lapsedBefore reports whether rec, about to be refreshed at now, already expired.
func lapsedBefore(rec registration.Record, now time.Time) bool {
	return rec.State == registration.StateRegistered && !rec.ExpiresAt.IsZero() && now.After(rec.ExpiresAt)
}

// Lapsing reports whether a binding lapsed within the last minute because its refresh
// started late, and a line saying why (for /healthz).
func (r *Reconciler) Lapsing() (bool, string) {
	last := r.lastLapse.Load()
	if last == 0 {
		return false, ""
	}
	ago := r.clock().Sub(time.Unix(0, last))
	if ago > lapseWindow {
		return false, ""
	}
	rateCap := "no registersPerSecond cap"
	if r.spec.RegistersPerSecond > 0 {
		rateCap = fmt.Sprintf("registersPerSecond %g", r.spec.RegistersPerSecond)
	}
	return true, fmt.Sprintf("bindings lapsing: a refresh started after its binding expired %s ago (%s, maxInFlight %d)",
		ago.Round(time.Second), rateCap, r.spec.MaxInFlight)
}

// refreshLoadLocked is the rate of REGISTERs the registered bindings need (r.mu held): each is
// refreshed once per 65 % of its grant on average (the middle of the 50-80 % window).
func (r *Reconciler) refreshLoadLocked() float64 {
	var need float64
	for _, e := range r.entries {
		if e.rec.State == registration.StateRegistered && e.rec.GrantedExpires > 0 {
			every := registration.RefreshAfter(e.rec.GrantedExpires, 0.5)
			if every > 0 {
				need += float64(time.Second) / float64(every)
			}
		}
	}
	return need
}

// capacityLoop warns, once per episode, when the global rate cap cannot carry the
// refresh load: bindings would lapse before their refresh. Without a cap (the default)
// there is nothing to compare with, and the load is not summed.
func (r *Reconciler) capacityLoop(ctx context.Context) {
	if r.spec.RegistersPerSecond <= 0 {
		return
	}
	t := time.NewTicker(capacityEvery)
	defer t.Stop()
	over := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		need := r.refreshLoadLocked()
		r.mu.Unlock()
		over = r.checkCapacity(need, over)
	}
}

// checkCapacity compares the refresh load with registersPerSecond; it warns when the
// load goes over the cap, says so when it is back under 80 % of it, and returns whether
// it is over. With no cap (0) it never warns.
func (r *Reconciler) checkCapacity(need float64, over bool) bool {
	limit := r.spec.RegistersPerSecond
	switch {
	case limit <= 0:
		return false
	case !over && need > limit:
		r.log.Warn("the configured caps cannot carry the refresh load: bindings will lapse",
			"cap", "spec.registersPerSecond", "registers_per_second", limit, "needed_per_second", fmt.Sprintf("%.1f", need))
		return true
	case over && need < 0.8*limit:
		r.log.Info("the refresh load is under the caps again", "registers_per_second", limit, "needed_per_second", fmt.Sprintf("%.1f", need))
		return false
	}
	return over
}
