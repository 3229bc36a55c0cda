package bench

import (
	"fmt"
	"math"
	"slices"
)

// summary is what the table shows of one figure over a row's runs: the median, on
// which the verdict is, and the spread. A value may be +Inf (a run that timed out
// before every trunk was registered, for the registration time): it sorts last, and a
// median or bound that is +Inf prints as "> timeout".
type summary struct {
	n                int // values summarised; 0: none (no run measured the figure)
	median, min, max float64
}

// summarize returns the median and the spread (min–max) of vals. The median of an even
// count is the mean of the two middle values.
func summarize(vals []float64) summary {
	if len(vals) == 0 {
		return summary{}
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		a, b := s[len(s)/2-1], s[len(s)/2]
		m = a/2 + b/2
		if math.IsInf(a, 1) || math.IsInf(b, 1) {
			m = math.Inf(1)
		}
	}
	return summary{n: len(s), median: m, min: s[0], max: s[len(s)-1]}
}

// ok reports whether there is a median to judge.
func (s summary) ok() bool { return s.n > 0 }

// format writes "median (min–max)" with format for each number, or the median alone
// when there is one value; "—" when there is none.
func (s summary) format(format string) string {
	if !s.ok() {
		return "—"
	}
	num := func(v float64) string {
		if math.IsInf(v, 1) {
			return "> timeout"
		}
		return fmt.Sprintf(format, v)
	}
	if s.n == 1 {
		return num(s.median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.median), num(s.min), num(s.max))
}
