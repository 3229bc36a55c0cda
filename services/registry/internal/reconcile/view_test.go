package reconcile

import (
	"fmt"
	"testing"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// A scrape visits every record without copying them to the heap (at 100,000 trunks a
// slice of records was 40 MB a scrape).
func TestEachLocalVisitsEveryRecordWithoutAllocating(t *testing.T) {
	r := New(Options{Spec: testSpec(), Store: storetest.NewMemory()})
	for i := range 1000 {
		e := &entry{}
		ref := fmt.Sprintf("trunk-%d", i)
		e.setRecord(registration.Record{TrunkRef: ref, State: registration.StateRegistered, CallID: ref + "@sipreg"})
		r.entries[ref] = e
	}
	seen := map[string]bool{}
	r.EachLocal(func(rec registration.Record) {
		if rec.State != registration.StateRegistered || rec.CallID != rec.TrunkRef+"@sipreg" {
			t.Errorf("record %+v", rec)
		}
		seen[rec.TrunkRef] = true
	})
	if len(seen) != 1000 {
		t.Fatalf("visited %d records, want 1000", len(seen))
	}
	registered := 0
	if n := testing.AllocsPerRun(10, func() {
		registered = 0
		r.EachLocal(func(rec registration.Record) {
			if rec.State == registration.StateRegistered {
				registered++
			}
		})
	}); n > 1 || registered != 1000 {
		t.Errorf("EachLocal over 1,000 entries: %v allocations, %d registered; want at most 1, 1000", n, registered)
	}
}
