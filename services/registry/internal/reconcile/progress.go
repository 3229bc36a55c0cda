package reconcile

import (
	"context"
	"time"

	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/registration"
)

// Falling behind is visible (package progress says what and when): a binding whose
// refresh starts after it expired has lapsed at the provider (counted,
// Observer.Lapsed); while that happens /healthz says so (Lapsing); a warning names the
// cap that cannot carry the refresh load; and a big start logs progress lines.

// noteLapse records that rec's binding expired before its refresh started (called by
// the worker that starts the refresh).
func (r *Reconciler) noteLapse(rec registration.Record, now time.Time) {
	r.lapses.Note(now)
	r.obs.Lapsed()
	r.log.Debug("binding lapsed before its refresh", "trunk", rec.TrunkRef, "late", now.Sub(rec.ExpiresAt).Round(time.Millisecond).String())
}

// Lapsing reports whether a binding lapsed within the last minute because its refresh
// started late, and a line saying why (for /healthz).
func (r *Reconciler) Lapsing() (bool, string) {
	return r.lapses.Lapsing(r.clock(), r.spec.RegistersPerSecond, r.spec.MaxInFlight)
}

// capacityLoop sums the refresh load every progress.CapacityEvery for the capacity
// warning. Without a rate cap (the default) there is nothing to compare with, and the
// load is not summed.
func (r *Reconciler) capacityLoop(ctx context.Context) {
	c := progress.NewCapacity(r.log, r.spec.RegistersPerSecond)
	if !c.Capped() {
		return
	}
	every(ctx, progress.CapacityEvery, func() {
		var need float64
		r.mu.Lock()
		for _, e := range r.entries {
			need += progress.RefreshLoad(e.record())
		}
		r.mu.Unlock()
		c.Check(need)
	})
}

// progressLoop reports the progress of first registrations every progress.Every; once
// fewer than progress.Min trunks wait, first registrations are logged one by one again.
//
// Counting walks every entry under r.mu (about 10 ms at 100,000 trunks, the workers
// waiting meanwhile), so it is done only while there can be something to report: a pass
// queued progress.Min trunks or more at once (progressDue, quietFirst), or an episode
// is being reported and its summary is still to come. Fewer than progress.Min trunks
// waiting is never reported, and only a pass of that many can make that many wait; an
// idle registry does not count at all.
func (r *Reconciler) progressLoop(ctx context.Context) {
	p := progress.NewReporter(r.log)
	every(ctx, progress.Every, func() {
		if !r.progressDue.Swap(false) && !r.quietFirst.Load() && !p.Active() {
			return
		}
		if !p.Report(r.progressNow(), r.clock()) {
			r.quietFirst.Store(false)
		}
	})
}

// progressNow counts the wanted, usable trunks (r.mu taken).
func (r *Reconciler) progressNow() progress.Counts {
	r.progressWalks.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	var p progress.Counts
	for _, e := range r.entries {
		if !e.wanted || !e.valid {
			continue
		}
		p.Total++
		switch e.rec.State() {
		case registration.StateRegistered:
			p.Registered++
		case registration.StatePending, registration.StateRegistering, "":
			p.Waiting++
		default:
			p.Failing++
		}
	}
	return p
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
