package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
)

// TestPageWalksRecordsInOrder: paging through the engine's registrations with Page
// gives every one of Records, by ref, each page of the size asked but the last; a
// state filter leaves out what it does not accept.
func TestPageWalksRecordsInOrder(t *testing.T) {
	r := New(Options{Spec: testSpec()})
	var set []desired.Trunk
	for _, i := range []int{7, 3, 41, 12, 0, 29, 18, 35, 5, 22, 9, 14, 31} {
		ref := fmt.Sprintf("t%02d", i)
		tr, err := trunk.FromProto(mkTrunk(ref, "sip.example.net", ref, ""))
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, desired.Trunk{Trunk: tr})
	}
	r.reconcileDesired(context.Background(), set)

	want := r.Records()
	slices.SortFunc(want, func(a, b registration.Record) int { return strings.Compare(a.TrunkRef, b.TrunkRef) })
	var got []registration.Record
	after := ""
	for {
		page, more := r.Page(after, nil, 4)
		if len(page) > 4 || more && len(page) != 4 {
			t.Fatalf("page of %d after %q (more %v), want 4 but the last", len(page), after, more)
		}
		got = append(got, page...)
		if !more {
			break
		}
		after = page[len(page)-1].TrunkRef
	}
	if len(want) != len(set) || !slices.EqualFunc(got, want, func(a, b registration.Record) bool { return a.TrunkRef == b.TrunkRef && a.CallID == b.CallID }) {
		t.Fatalf("paged %d records, want the %d of Records in order", len(got), len(want))
	}
	if page, more := r.Page("", func(s registration.State) bool { return s != registration.StatePending }, 4); len(page) != 0 || more {
		t.Fatalf("every trunk is pending: a filter without pending paged %d (more %v)", len(page), more)
	}
	if page, _ := r.Page("t30", nil, 100); len(page) != 3 || page[0].TrunkRef != "t31" {
		t.Fatalf("after t30: %v, want t31, t35, t41", page)
	}
}
