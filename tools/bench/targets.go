package bench

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// The targets of the registry at scale, on its shipped defaults (the bench's config
// sets addresses, listeners and expires only), all at TargetTrunks: the time, CPU and
// RSS targets are the memory cache's; the Redis row is held to TargetRedisRatio times
// the memory row's; the idle tick target applies to both caches. Every Redis row is
// held to the round-trip and Redis memory targets. Smaller rows show how the figures
// scale (a 1,000-trunk start is mostly fixed costs, its CPU counted in 10 ms ticks)
// and are judged on their runs and those two only. Every verdict is on the median of a
// row's runs.
const (
	// TargetTrunks is the size the time, memory and idle targets are set for.
	TargetTrunks = 100_000
	// TargetRegisterTime: with the memory cache, every trunk registered within this
	// time of the first FindBy.
	TargetRegisterTime = 6 * time.Second
	// TargetCPUPer1000: at most this many CPU seconds per 1,000 registrations.
	TargetCPUPer1000 = 0.04
	// TargetPeakRSS: peak RSS at most this many bytes, without a memoryLimit.
	TargetPeakRSS = 150 << 20
	// TargetIdleTickCPU: one idle discovery tick at most this many CPU seconds.
	TargetIdleTickCPU = 0.05
	// TargetRedisRatio: with the Redis cache, time, CPU per 1,000 and peak RSS at
	// most this many times the memory cache's of the same size.
	TargetRedisRatio = 1.2
	// TargetRedisRoundTrips: at most this many Redis round trips per registration
	// (2 per 100).
	TargetRedisRoundTrips = 0.02
	// TargetRedisBytesPerTrunk: Redis memory per trunk, at most this many bytes.
	TargetRedisBytesPerTrunk = 400
)

// RunResult is one run of a row: a measured Result, or the error that ended it
// (ErrIncomplete when not every trunk was registered within the timeout).
type RunResult struct {
	Result Result
	Err    error
}

// Row is one line of the table: every run of one (size, cache).
type Row struct {
	Trunks int
	Cache  string
	Runs   []RunResult
}

// completed returns the Results of the runs that measured everything.
func (row Row) completed() []Result {
	var out []Result
	for _, r := range row.Runs {
		if r.Err == nil {
			out = append(out, r.Result)
		}
	}
	return out
}

// figure is one measured quantity of a Result.
type figure struct {
	name   string // in the verdict column and the checks table
	unit   string // after the numbers in the checks table ("" for none)
	format string // of one number
	value  func(Result) float64
	// timedOut is the value of a run that ended with ErrIncomplete (NaN: the run
	// does not count). Only the registration time has one: +Inf.
	timedOut float64
}

var (
	figTime = figure{name: "time", unit: "s", format: "%.2f", timedOut: math.Inf(1),
		value: func(r Result) float64 { return r.RegisterTime.Seconds() }}
	figRate = figure{name: "REGISTERs/s", format: "%.0f", timedOut: math.NaN(),
		value: func(r Result) float64 { return r.RegistersPerSecond }}
	figCPU = figure{name: "CPU", unit: "CPU s / 1,000", format: "%.3f", timedOut: math.NaN(),
		value: Result.CPUPer1000}
	figRSS = figure{name: "RSS", unit: "MiB", format: "%.1f", timedOut: math.NaN(),
		value: func(r Result) float64 { return mib(r.PeakRSS) }}
	figRSSPerTrunk = figure{name: "RSS/trunk", unit: "KiB", format: "%.2f", timedOut: math.NaN(),
		value: func(r Result) float64 { return r.RSSPerTrunk() / 1024 }}
	figIdle = figure{name: "idle tick", unit: "CPU s", format: "%.3f", timedOut: math.NaN(),
		value: func(r Result) float64 { return r.IdleTickCPU }}
	figCommands = figure{name: "Redis cmds", format: "%.2f", timedOut: math.NaN(),
		value: Result.RedisPerRegistration}
	figTrips = figure{name: "Redis round trips", unit: "per registration", format: "%.3f", timedOut: math.NaN(),
		value: Result.RoundTripsPerRegistration}
	figRedisMem = figure{name: "Redis memory", unit: "B / trunk", format: "%.0f", timedOut: math.NaN(),
		value: Result.RedisBytesPerTrunk}
)

// of summarises the figure over a row's runs: the completed ones, and those that timed
// out when the figure has a value for them.
func (f figure) of(row Row) summary {
	var vals []float64
	for _, r := range row.Runs {
		switch {
		case r.Err == nil:
			vals = append(vals, f.value(r.Result))
		case errors.Is(r.Err, ErrIncomplete) && !math.IsNaN(f.timedOut):
			vals = append(vals, f.timedOut)
		}
	}
	return summarize(vals)
}

// Verdicts of a check.
const (
	VerdictMet         = "met"
	VerdictNotMet      = "not met"
	VerdictNotMeasured = "not measured"
)

// check is one target applied to one row.
type check struct {
	name     string // the figure's name, in the verdict column
	target   string
	measured string // median (min–max) and unit
	verdict  string // VerdictMet, VerdictNotMet or VerdictNotMeasured (counts as not met)
}

func (c check) met() bool { return c.verdict == VerdictMet }

// atMost checks the median of f over row against limit.
func atMost(row Row, f figure, limit float64, target string) check {
	s := f.of(row)
	c := check{name: f.name, target: target, measured: withUnit(s.format(f.format), f.unit), verdict: VerdictNotMeasured}
	if s.ok() {
		c.verdict = VerdictNotMet
		if s.median <= limit {
			c.verdict = VerdictMet
		}
	}
	return c
}

func withUnit(s, unit string) string {
	if s == "—" || unit == "" {
		return s
	}
	return s + " " + unit
}

// checks returns the targets that apply to a row. mem is the memory cache's row of
// the same size (nil when there is none), against which a Redis row's time, CPU and
// RSS are judged. The first check is that every run completed: a row with a failed or
// timed-out run is not met, whatever the medians of the others say.
func checks(row, mem *Row) []check {
	completed := len(row.completed())
	runs := check{name: "runs", target: fmt.Sprintf("all %d completed", len(row.Runs)),
		measured: fmt.Sprintf("%d of %d", completed, len(row.Runs)), verdict: VerdictNotMet}
	if completed == len(row.Runs) && completed > 0 {
		runs.verdict = VerdictMet
	}
	out := []check{runs}
	at100k := row.Trunks == TargetTrunks
	if row.Cache == CacheMemory && at100k {
		out = append(out,
			atMost(*row, figTime, TargetRegisterTime.Seconds(),
				fmt.Sprintf("≤ %.0f s from the first FindBy to the last 200 OK", TargetRegisterTime.Seconds())),
			atMost(*row, figCPU, TargetCPUPer1000, fmt.Sprintf("≤ %.2f CPU s per 1,000 registrations", TargetCPUPer1000)),
			atMost(*row, figRSS, mib(TargetPeakRSS), fmt.Sprintf("≤ %.0f MiB peak RSS", mib(TargetPeakRSS))))
	}
	if at100k {
		out = append(out, atMost(*row, figIdle, TargetIdleTickCPU, fmt.Sprintf("≤ %.2f CPU s per idle discovery tick", TargetIdleTickCPU)))
	}
	if row.Cache != CacheRedis {
		return out
	}
	for _, f := range []figure{figTime, figCPU, figRSS} {
		if !at100k {
			break
		}
		target := fmt.Sprintf("≤ %.1f × the memory cache's", TargetRedisRatio)
		var base summary
		if mem != nil {
			base = f.of(*mem)
		}
		if !base.ok() || math.IsInf(base.median, 1) {
			c := atMost(*row, f, math.NaN(), target+" (none measured)")
			c.name, c.verdict = f.name+" vs memory", VerdictNotMeasured
			out = append(out, c)
			continue
		}
		c := atMost(*row, f, TargetRedisRatio*base.median,
			fmt.Sprintf("%s (%s × %.1f = %s)", target, fmt.Sprintf(f.format, base.median), TargetRedisRatio,
				withUnit(fmt.Sprintf(f.format, TargetRedisRatio*base.median), f.unit)))
		c.name = f.name + " vs memory"
		out = append(out, c)
	}
	out = append(out,
		atMost(*row, figTrips, TargetRedisRoundTrips, fmt.Sprintf("≤ %.2f round trips per registration (2 per 100)", TargetRedisRoundTrips)),
		atMost(*row, figRedisMem, TargetRedisBytesPerTrunk, fmt.Sprintf("≤ %d B of Redis memory per trunk (used_memory)", TargetRedisBytesPerTrunk)))
	return out
}

// verdict sums up a row's checks: "met (5/5)", or which were not met.
func verdict(cs []check) string {
	var notMet []string
	for _, c := range cs {
		if !c.met() {
			notMet = append(notMet, c.name)
		}
	}
	met := len(cs) - len(notMet)
	if len(notMet) > 0 {
		return fmt.Sprintf("**not met** (%d/%d met): %s", met, len(cs), strings.Join(notMet, ", "))
	}
	return fmt.Sprintf("met (%d/%d)", met, len(cs))
}

// memoryRow returns the memory cache's row of n trunks, nil when there is none.
func memoryRow(rows []Row, n int) *Row {
	for i := range rows {
		if rows[i].Trunks == n && rows[i].Cache == CacheMemory {
			return &rows[i]
		}
	}
	return nil
}
