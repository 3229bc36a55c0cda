package reconcile

import (
	"context"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// A person can watch a big start: while many trunks wait for their first REGISTER, a
// line at info every progressEvery (registered / total, rate, failing, ETA), then one
// summary when none waits any more.

// progressEvery is how often the progress of first registrations is logged.
const progressEvery = 5 * time.Second

// progressMin is how many trunks must be waiting for a progress line: small starts
// log their trunks one by one and need none.
const progressMin = 100

// progress counts the wanted trunks by where their registration is.
type progress struct {
	total, registered, failing, waiting int
}

// progressNow counts the wanted, usable trunks (r.mu taken).
func (r *Reconciler) progressNow() progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p progress
	for _, e := range r.entries {
		if !e.wanted || !e.valid {
			continue
		}
		p.total++
		switch e.rec.State {
		case registration.StateRegistered:
			p.registered++
		case registration.StatePending, registration.StateRegistering, "":
			p.waiting++
		default:
			p.failing++
		}
	}
	return p
}

// progressLoop logs the progress of first registrations while at least progressMin
// trunks wait, then a summary of that episode.
func (r *Reconciler) progressLoop(ctx context.Context) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	var prev progress
	var since time.Time // start of the episode being reported (zero: none)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := r.progressNow()
		since = r.reportProgress(prev, cur, since, r.clock())
		prev = cur
	}
}

// reportProgress logs one step of an episode and returns its (new) start. Once fewer
// than progressMin trunks wait, first registrations are logged one by one again.
func (r *Reconciler) reportProgress(prev, cur progress, since, now time.Time) time.Time {
	if cur.waiting < progressMin {
		r.quietFirst.Store(false)
	}
	switch {
	case cur.waiting >= progressMin:
		if since.IsZero() {
			since, prev = now.Add(-progressEvery), progress{}
		}
		rate := float64(cur.registered-prev.registered) / progressEvery.Seconds()
		eta := "unknown"
		if rate > 0 {
			eta = time.Duration(float64(cur.waiting) / rate * float64(time.Second)).Round(time.Second).String()
		}
		r.log.Info("registering", "registered", cur.registered, "total", cur.total, "rate_per_second", int(rate+0.5),
			"failing", cur.failing, "waiting", cur.waiting, "eta", eta)
		return since
	case !since.IsZero():
		r.log.Info("first registrations done", "registered", cur.registered, "total", cur.total, "failing", cur.failing,
			"took", now.Sub(since).Round(time.Second).String())
	}
	return time.Time{}
}
