package registration

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPageOfMatchesSortAndFilter: paging through random records with PageOf, from
// every token it hands out, gives what sorting and filtering all of them gives: the
// same records in the same order, pages of the size asked, and more until the last.
func TestPageOfMatchesSortAndFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	states := []State{StatePending, StateRegistered, StateRejected}
	for run := range 200 {
		n := rng.IntN(60)
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = Record{TrunkRef: fmt.Sprintf("t%03d", rng.IntN(1000)*1000+i), State: states[rng.IntN(len(states))]}
		}
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		var keep func(State) bool
		if run%2 == 1 {
			keep = func(s State) bool { return s != StateRejected }
		}
		want := slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return keep != nil && !keep(r.State) })
		slices.SortFunc(want, func(a, b Record) int { return strings.Compare(a.TrunkRef, b.TrunkRef) })
		size := 1 + rng.IntN(7)
		var got []Record
		after := ""
		for pages := 0; ; pages++ {
			if pages > n+1 {
				t.Fatalf("run %d: paging does not end", run)
			}
			page, more := PageOf(recs, after, keep, size)
			if len(page) > size || more && len(page) != size {
				t.Fatalf("run %d: a page of %d (more %v), size %d", run, len(page), more, size)
			}
			got = append(got, page...)
			if !more {
				break
			}
			after = page[len(page)-1].TrunkRef
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d (size %d): paged %v, want %v", run, size, got, want)
		}
	}
}
