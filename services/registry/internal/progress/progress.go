// Package progress makes the registry's pace visible to a person: progress lines while
// many trunks wait for their first REGISTER, a warning when the global rate cap cannot
// carry the refresh load, and whether bindings are lapsing (for /healthz). The engine
// counts; this package decides what to say and when.
package progress

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// Every is how often the progress of first registrations is logged.
const Every = 5 * time.Second

// Min is how many trunks must be waiting for a progress line: small starts log their
// trunks one by one and need none.
const Min = 100

// Counts are the wanted, usable trunks by where their registration is.
type Counts struct {
	Total, Registered, Failing, Waiting int
}

// Reporter logs the progress of first registrations while at least Min trunks wait
// (registered / total, rate, failing, ETA), then one summary of that episode.
type Reporter struct {
	log   *slog.Logger
	prev  Counts
	since time.Time // start of the episode being reported (zero: none)
}

// NewReporter returns a Reporter logging to log.
func NewReporter(log *slog.Logger) *Reporter { return &Reporter{log: log} }

// Report logs one step, counted at now (called every Every), and returns whether a big
// start is under way (Min or more trunks waiting): while it is, the engine logs first
// registrations at debug rather than one by one at info.
func (p *Reporter) Report(cur Counts, now time.Time) bool {
	prev := p.prev
	p.prev = cur
	switch {
	case cur.Waiting >= Min:
		if p.since.IsZero() {
			p.since, prev = now.Add(-Every), Counts{}
		}
		rate := float64(cur.Registered-prev.Registered) / Every.Seconds()
		eta := "unknown"
		if rate > 0 {
			eta = time.Duration(float64(cur.Waiting) / rate * float64(time.Second)).Round(time.Second).String()
		}
		p.log.Info("registering", "registered", cur.Registered, "total", cur.Total, "rate_per_second", int(rate+0.5),
			"failing", cur.Failing, "waiting", cur.Waiting, "eta", eta)
		return true
	case !p.since.IsZero():
		p.log.Info("first registrations done", "registered", cur.Registered, "total", cur.Total, "failing", cur.Failing,
			"took", now.Sub(p.since).Round(time.Second).String())
		p.since = time.Time{}
	}
	return false
}

// Active reports whether an episode is being reported: its summary is still to come.
func (p *Reporter) Active() bool { return !p.since.IsZero() }

// CapacityEvery is how often the refresh load is compared with the caps.
const CapacityEvery = 10 * time.Second

// Capacity warns, once per episode, when the global rate cap (spec.registersPerSecond)
// cannot carry the refresh load: bindings would lapse before their refresh.
type Capacity struct {
	log   *slog.Logger
	limit float64 // registersPerSecond; 0: no cap, nothing to compare with
	over  bool
}

// NewCapacity returns a Capacity for the cap limit (0: none).
func NewCapacity(log *slog.Logger, limit float64) *Capacity {
	return &Capacity{log: log, limit: limit}
}

// Capped reports whether there is a cap to check (without one the engine need not sum
// the load).
func (c *Capacity) Capped() bool { return c.limit > 0 }

// Check compares need, the REGISTERs per second the registered bindings need, with the
// cap: it warns when the load goes over the cap, says so when it is back under 80 % of
// it, and returns whether it is over. With no cap it never warns.
func (c *Capacity) Check(need float64) bool {
	switch {
	case c.limit <= 0:
		c.over = false
	case !c.over && need > c.limit:
		c.log.Warn("the configured caps cannot carry the refresh load: bindings will lapse",
			"cap", "spec.registersPerSecond", "registers_per_second", c.limit, "needed_per_second", fmt.Sprintf("%.1f", need))
		c.over = true
	case c.over && need < 0.8*c.limit:
		c.log.Info("the refresh load is under the caps again", "registers_per_second", c.limit, "needed_per_second", fmt.Sprintf("%.1f", need))
		c.over = false
	}
	return c.over
}

// RefreshLoad is the rate of REGISTERs a binding granted rec.GrantedExpires needs, 0 for
// one not registered: it is refreshed once per 65 % of its grant on average (the middle
// of the 50-80 % window).
func RefreshLoad(rec registration.Record) float64 {
	if rec.State != registration.StateRegistered || rec.GrantedExpires <= 0 {
		return 0
	}
	every := registration.RefreshAfter(rec.GrantedExpires, 0.5)
	if every <= 0 {
		return 0
	}
	return float64(time.Second) / float64(every)
}

// LapseWindow is how long after the last lapse the registry reports itself lapsing.
const LapseWindow = time.Minute

// Lapses remembers when a binding last expired before its refresh started.
type Lapses struct {
	last atomic.Int64 // unix ns; 0: never
}

// Lapsed reports whether rec, about to be refreshed at now, already expired.
func Lapsed(rec registration.Record, now time.Time) bool {
	return rec.State == registration.StateRegistered && !rec.ExpiresAt.IsZero() && now.After(rec.ExpiresAt)
}

// Note records a lapse at now.
func (l *Lapses) Note(now time.Time) { l.last.Store(now.UnixNano()) }

// Lapsing reports whether a binding lapsed within LapseWindow before now, and a line
// saying why, naming the caps (registersPerSecond, 0: none; maxInFlight).
func (l *Lapses) Lapsing(now time.Time, registersPerSecond float64, maxInFlight int) (bool, string) {
	last := l.last.Load()
	if last == 0 {
		return false, ""
	}
	ago := now.Sub(time.Unix(0, last))
	if ago > LapseWindow {
		return false, ""
	}
	rateCap := "no registersPerSecond cap"
	if registersPerSecond > 0 {
		rateCap = fmt.Sprintf("registersPerSecond %g", registersPerSecond)
	}
	return true, fmt.Sprintf("bindings lapsing: a refresh started after its binding expired %s ago (%s, maxInFlight %d)",
		ago.Round(time.Second), rateCap, maxInFlight)
}
