// Package storetest is the contract every store.Store implementation passes: one
// suite, run against the memory store, a real Redis and miniredis.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// RunContract runs the contract suite as subtests of t. newStore must return an
// empty store of its own for each subtest and release it in t.Cleanup.
func RunContract(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"GetUnknown", testGetUnknown},
		{"PutThenGet", testPutThenGet},
		{"RoundTripFullRecord", testRoundTripFullRecord},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"List", testList},
		{"PutRejectsEmptyTrunkRef", testPutRejectsEmptyTrunkRef},
		{"PutManyEmpty", testPutManyEmpty},
		{"PutManyLaterRecordWins", testPutManyLaterRecordWins},
		{"PutManyRejectsEmptyTrunkRefWritesNothing", testPutManyRejectsEmptyTrunkRef},
		{"PutMany5000ThenList", testPutMany5000ThenList},
		{"GetMany", testGetMany},
		{"ConcurrentPuts", testConcurrentPuts},
		{"DoneContext", testDoneContext},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// Record returns a minimal valid record of trunkRef, with times in UTC.
func Record(trunkRef string) registration.Record {
	now := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	return registration.Record{
		TrunkRef:     trunkRef,
		AOR:          "sip:" + trunkRef + "@sip.example.net",
		Target:       "sip.example.net:5060",
		Transport:    "udp",
		State:        registration.StatePending,
		CallID:       "call-" + trunkRef,
		FromTag:      "tag-" + trunkRef,
		CSeq:         1,
		NextAction:   registration.ActionRegister,
		NextActionAt: now.Add(time.Second),
		UpdatedAt:    now,
	}
}

// FullRecord returns a record of trunkRef with every field set, its times with
// nanoseconds, a zone other than UTC and (for UpdatedAt) a monotonic reading.
func FullRecord(trunkRef string) registration.Record {
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	base := time.Date(2026, 11, 23, 15, 30, 45, 987654321, zone)
	return registration.Record{
		TrunkRef:         trunkRef,
		TrunkName:        "Trunk " + trunkRef,
		AOR:              "sip:alice@sip.example.net",
		Target:           "sip.example.net:5080",
		Transport:        "tcp",
		EdgePort:         "edgeport-01:5060",
		Fingerprint:      "sha256:0a1b2c3d",
		State:            registration.StateRegistered,
		CallID:           "4f8c2a9e-call@registry",
		FromTag:          "a1b2c3d4",
		CSeq:             4294967295,
		CSeqCeiling:      4294967295,
		RequestedExpires: 3600,
		MinExpires:       1800,
		NoGin:            true,
		GrantedExpires:   1800,
		ExpiresAt:        base.Add(30 * time.Minute),
		RegisteredSince:  base.Add(-48 * time.Hour),
		NextAction:       registration.ActionRefresh,
		NextActionAt:     base.Add(20 * time.Minute),
		LastResponseCode: 200,
		LastResponseType: "OK",
		LastReason:       "OK \"quoted\" ünïcode",
		LastError:        "earlier: 503 Service Unavailable",
		Failures:         3,
		Owner:            "registry-7d9f-0",
		Fence:            9007199254740993,
		// time.Now carries a monotonic reading, which no store keeps.
		UpdatedAt: time.Now().In(zone),
	}
}

// Normalized returns rec as a store gives it back: every time in UTC, without a
// monotonic reading.
func Normalized(rec registration.Record) registration.Record {
	v := reflect.ValueOf(&rec).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == reflect.TypeFor[time.Time]() {
			f.Set(reflect.ValueOf(f.Interface().(time.Time).UTC()))
		}
	}
	return rec
}

// Diff describes how got differs from want, or returns "" when they are the same
// record: times compared with Equal, every other field with ==.
func Diff(got, want registration.Record) string {
	var diffs []string
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		gf, wf := g.Field(i).Interface(), w.Field(i).Interface()
		if gt, ok := gf.(time.Time); ok {
			if !gt.Equal(wf.(time.Time)) {
				diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", name, gt, wf))
			}
			continue
		}
		if gf != wf {
			diffs = append(diffs, fmt.Sprintf("%s: got %#v, want %#v", name, gf, wf))
		}
	}
	return strings.Join(diffs, "; ")
}

func mustPut(t *testing.T, s store.Store, rec registration.Record) {
	t.Helper()
	if err := s.Put(t.Context(), rec); err != nil {
		t.Fatalf("Put(%s): %v", rec.TrunkRef, err)
	}
}

func mustGet(t *testing.T, s store.Store, trunkRef string) registration.Record {
	t.Helper()
	rec, err := s.Get(t.Context(), trunkRef)
	if err != nil {
		t.Fatalf("Get(%s): %v", trunkRef, err)
	}
	return rec
}

func mustList(t *testing.T, s store.Store) map[string]registration.Record {
	t.Helper()
	recs, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	byRef := make(map[string]registration.Record, len(recs))
	for _, rec := range recs {
		if _, dup := byRef[rec.TrunkRef]; dup {
			t.Fatalf("List returned %s twice", rec.TrunkRef)
		}
		byRef[rec.TrunkRef] = rec
	}
	return byRef
}

func assertNotFound(t *testing.T, s store.Store, trunkRef string) {
	t.Helper()
	rec, err := s.Get(t.Context(), trunkRef)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s) = %+v, %v; want ErrNotFound", trunkRef, rec, err)
	}
	if rec != (registration.Record{}) {
		t.Errorf("Get(%s) with ErrNotFound returned a non-zero record %+v", trunkRef, rec)
	}
	if !strings.Contains(err.Error(), trunkRef) {
		t.Errorf("Get(%s) error %q does not name the trunk", trunkRef, err)
	}
}

func testGetUnknown(t *testing.T, s store.Store) {
	assertNotFound(t, s, "trunk-unknown")
	assertNotFound(t, s, "")
}

func testPutThenGet(t *testing.T, s store.Store) {
	want := Record("trunk-1")
	mustPut(t, s, want)
	if d := Diff(mustGet(t, s, "trunk-1"), want); d != "" {
		t.Errorf("Get after Put: %s", d)
	}
	assertNotFound(t, s, "trunk-2")
}

func testRoundTripFullRecord(t *testing.T, s store.Store) {
	rec := FullRecord("trunk-full")
	// A field added to Record later must be set here too, or this test would
	// not see whether the store keeps it.
	v := reflect.ValueOf(rec)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("FullRecord leaves %s zero: set it", v.Type().Field(i).Name)
		}
	}
	mustPut(t, s, rec)
	got := mustGet(t, s, rec.TrunkRef)
	if d := Diff(got, rec); d != "" {
		t.Fatalf("round trip: %s", d)
	}
	if want := Normalized(rec); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip: got %+v, want times in UTC without monotonic reading: %+v", got, want)
	}
	listed := mustList(t, s)[rec.TrunkRef]
	if !reflect.DeepEqual(listed, got) {
		t.Errorf("List gives %+v, Get gives %+v", listed, got)
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	first := Record("trunk-1")
	mustPut(t, s, first)
	second := first
	second.State = registration.StateRegistered
	second.CSeq = 2
	second.ExpiresAt = first.UpdatedAt.Add(time.Hour)
	second.LastResponseCode = 200
	mustPut(t, s, second)
	if d := Diff(mustGet(t, s, "trunk-1"), second); d != "" {
		t.Errorf("Get after overwrite: %s", d)
	}
	// Fields the second record clears are cleared, not merged.
	third := Record("trunk-1")
	mustPut(t, s, third)
	if d := Diff(mustGet(t, s, "trunk-1"), third); d != "" {
		t.Errorf("Get after second overwrite: %s", d)
	}
	if got := mustList(t, s); len(got) != 1 {
		t.Errorf("List after overwrites has %d records, want 1", len(got))
	}
}

func testDelete(t *testing.T, s store.Store) {
	mustPut(t, s, Record("trunk-1"))
	mustPut(t, s, Record("trunk-2"))
	if err := s.Delete(t.Context(), "trunk-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertNotFound(t, s, "trunk-1")
	mustGet(t, s, "trunk-2")
	for _, ref := range []string{"trunk-1", "trunk-unknown", ""} {
		if err := s.Delete(t.Context(), ref); err != nil {
			t.Errorf("Delete(%q) of an absent trunk: %v", ref, err)
		}
	}
	if got := mustList(t, s); len(got) != 1 {
		t.Errorf("List after Delete has %d records, want 1", len(got))
	}
	mustPut(t, s, Record("trunk-1"))
	mustGet(t, s, "trunk-1")
}

func testList(t *testing.T, s store.Store) {
	if got := mustList(t, s); len(got) != 0 {
		t.Fatalf("List of an empty store has %d records", len(got))
	}
	want := map[string]registration.Record{}
	for _, ref := range []string{"trunk-a", "trunk-b", "trunk-c", "trunk:with:colons", "trunk with spaces*?[x]"} {
		want[ref] = Record(ref)
		mustPut(t, s, want[ref])
	}
	got := mustList(t, s)
	if len(got) != len(want) {
		t.Fatalf("List has %d records, want %d", len(got), len(want))
	}
	for ref, w := range want {
		if d := Diff(got[ref], w); d != "" {
			t.Errorf("List %s: %s", ref, d)
		}
	}
}
