package store_test

import (
	"context"
	"fmt"
	"testing"

	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// TestGetMany reads many records in pipelines; unknown refs are left out.
func TestGetMany(t *testing.T) {
	mr := redistest.Mini(t).Mini
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{mr.Addr()}, Prefix: "gm:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var recs []registration.Record
	var refs []string
	for i := range 2500 {
		ref := fmt.Sprintf("t%04d", i)
		refs = append(refs, ref)
		recs = append(recs, registration.Record{TrunkRef: ref, CallID: "c-" + ref, CSeq: uint32(i), State: registration.StateRegistered})
	}
	if _, err := st.PutMany(ctx, recs); err != nil {
		t.Fatal(err)
	}
	mr.Set("gm:bad", "{not json")
	before := st.RoundTrips()
	got, err := st.GetMany(ctx, append(refs, "unknown", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2500 || got["t1234"].CallID != "c-t1234" || got["t1234"].CSeq != 1234 {
		t.Fatalf("GetMany: %d records, t1234 = %+v", len(got), got["t1234"])
	}
	if rt := st.RoundTrips() - before; rt > 3 {
		t.Errorf("GetMany of 2,502 refs took %d round trips, want 3", rt)
	}
}
