// Package nanotime keeps a time.Time in 8 bytes instead of time.Time's 24, for what is
// held once per trunk. Two encodings, for two uses; both keep the zero time as 0, so
// that a zero value means "no time":
//
//   - Unix (UnixOf, Unix): Unix nanoseconds, the wall clock exactly, no monotonic
//     reading: for the engine's records, which are stored and shown, and compared as
//     records read from the store always were. A time before 1678 or after 2261 is kept
//     as the nearest one that fits, the Unix epoch itself one nanosecond later.
//   - Monotonic (Of, Time): nanoseconds from a base taken when the process starts, on
//     its monotonic clock: for the schedule, which only this process reads. A due time
//     made from time.Now comes back with a monotonic reading, so a step of the wall
//     clock (NTP, a VM resumed) neither delays nor hastens what is due, as with
//     time.Time values. Its wall reading may differ from the original's by how far
//     the wall clock moved against the monotonic one since the start: never store it.
//     A time more than 292 years from the start is kept as the nearest that fits; the
//     base itself one nanosecond later.
//
// Both answer in time.Local, as time.Now does.
package nanotime

import (
	"math"
	"time"
)

// UnixOf is t in Unix nanoseconds (0 for the zero time).
func UnixOf(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minUnix):
		return math.MinInt64
	case t.After(maxUnix):
		return math.MaxInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1
}

// Unix is the time of n, made by UnixOf (the zero time for 0).
func Unix(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

var (
	minUnix = time.Unix(0, math.MinInt64)
	maxUnix = time.Unix(0, math.MaxInt64)
)

// base is the origin of the monotonic encoding; it carries a monotonic clock reading.
var base = time.Now()

// Of is t in nanoseconds from the process's base, by the monotonic clock when t has a
// reading (0 for the zero time).
func Of(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	// Sub uses the monotonic readings when t has one, and saturates out of range.
	if n := int64(t.Sub(base)); n != 0 {
		return n
	}
	return 1
}

// Time is the time of n, made by Of (the zero time for 0).
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return base.Add(time.Duration(n))
}
