// Package nanotime keeps a time.Time as Unix nanoseconds, 8 bytes instead of
// time.Time's 24, for what is held once per trunk (the engine's records, the schedule).
// The zero time is 0, so that a zero value means "no time"; the Unix epoch itself is
// kept one nanosecond later, and times before 1678 or after 2261 as the nearest that
// fits (no binding or schedule reaches them). The monotonic clock reading and the
// location are not kept: Time answers in time.Local, as time.Now does.
package nanotime

import (
	"math"
	"time"
)

// Of is t in Unix nanoseconds (0 for the zero time).
func Of(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1
}

// Time is the time of n, made by Of (the zero time for 0).
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)
