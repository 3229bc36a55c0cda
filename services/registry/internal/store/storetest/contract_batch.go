package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// The contract's cases for batches (PutMany, GetMany), concurrent writers, a done
// context and Ping; RunContract (storetest.go) runs them.

func testPutRejectsEmptyTrunkRef(t *testing.T, s store.Store) {
	if err := s.Put(t.Context(), Record("")); err == nil {
		t.Fatal("Put of a record with an empty TrunkRef succeeded")
	}
	if got := mustList(t, s); len(got) != 0 {
		t.Errorf("List has %d records after a rejected Put", len(got))
	}
}

func testPutManyEmpty(t *testing.T, s store.Store) {
	if _, err := s.PutMany(t.Context(), nil); err != nil {
		t.Errorf("PutMany(nil): %v", err)
	}
	if _, err := s.PutMany(t.Context(), []registration.Record{}); err != nil {
		t.Errorf("PutMany(empty): %v", err)
	}
	if got := mustList(t, s); len(got) != 0 {
		t.Errorf("List has %d records", len(got))
	}
}

func testPutManyLaterRecordWins(t *testing.T, s store.Store) {
	first, second := Record("trunk-1"), Record("trunk-1")
	second.CSeq = 7
	if _, err := s.PutMany(t.Context(), []registration.Record{first, Record("trunk-2"), second}); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	if got := mustGet(t, s, "trunk-1"); got.CSeq != 7 {
		t.Errorf("trunk-1 has CSeq %d, want the later record's 7", got.CSeq)
	}
	if got := mustList(t, s); len(got) != 2 {
		t.Errorf("List has %d records, want 2", len(got))
	}
}

func testPutManyRejectsEmptyTrunkRef(t *testing.T, s store.Store) {
	recs := []registration.Record{Record("trunk-1"), Record(""), Record("trunk-3")}
	if _, err := s.PutMany(t.Context(), recs); err == nil {
		t.Fatal("PutMany with an empty TrunkRef succeeded")
	}
	if got := mustList(t, s); len(got) != 0 {
		t.Errorf("List has %d records after a rejected PutMany, want 0", len(got))
	}
}

func testGetMany(t *testing.T, s store.Store) {
	want := map[string]registration.Record{}
	for _, ref := range []string{"trunk-1", "trunk-2", "trunk-3"} {
		rec := Record(ref)
		rec.CSeq = uint32(len(ref) + len(want))
		want[ref] = rec
		mustPut(t, s, rec)
	}
	got, err := s.GetMany(t.Context(), []string{"trunk-3", "unknown", "trunk-1", "trunk-1", ""})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("GetMany returned %d records (%v), want trunk-1 and trunk-3", len(got), slices.Sorted(maps.Keys(got)))
	}
	for _, ref := range []string{"trunk-1", "trunk-3"} {
		if d := Diff(got[ref], Normalized(want[ref])); d != "" {
			t.Errorf("GetMany %s: %s", ref, d)
		}
	}
	if got, err := s.GetMany(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("GetMany(nil) = %d records, %v; want none", len(got), err)
	}
}

func testPutMany5000ThenList(t *testing.T, s store.Store) {
	const n = 5000
	recs := make([]registration.Record, n)
	for i := range recs {
		recs[i] = Record(fmt.Sprintf("trunk-%05d", i))
		recs[i].CSeq = uint32(i)
	}
	refused, err := s.PutMany(t.Context(), recs)
	if err != nil {
		t.Fatalf("PutMany(%d): %v", n, err)
	}
	if len(refused) != 0 {
		t.Fatalf("a plain store refused %d records (first %s)", len(refused), refused[0])
	}
	got := mustList(t, s)
	if len(got) != n {
		t.Fatalf("List has %d records, want %d", len(got), n)
	}
	for _, want := range recs {
		if d := Diff(got[want.TrunkRef], want); d != "" {
			t.Fatalf("List %s: %s", want.TrunkRef, d)
		}
	}
	for _, i := range []int{0, 999, 1000, 4999} {
		if d := Diff(mustGet(t, s, recs[i].TrunkRef), recs[i]); d != "" {
			t.Errorf("Get %s: %s", recs[i].TrunkRef, d)
		}
	}
}

func testConcurrentPuts(t *testing.T, s store.Store) {
	const writers, perWriter = 8, 50
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*4)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				own := Record(fmt.Sprintf("trunk-%d-%d", w, i))
				shared := Record("trunk-shared")
				shared.CSeq = uint32(w*perWriter + i)
				for _, rec := range []registration.Record{own, shared} {
					if err := s.Put(ctx, rec); err != nil {
						errs <- err
					}
				}
				if _, err := s.Get(ctx, own.TrunkRef); err != nil {
					errs <- err
				}
				if i%10 == 0 {
					if _, err := s.List(ctx); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	// Deletes race with the writers on a trunk nobody reads back.
	wg.Go(func() {
		for range perWriter {
			if err := s.Put(ctx, Record("trunk-churn")); err != nil {
				errs <- err
			}
			if err := s.Delete(ctx, "trunk-churn"); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := mustList(t, s)
	if want := writers*perWriter + 1; len(got) != want {
		t.Errorf("List has %d records, want %d", len(got), want)
	}
	if cseq := got["trunk-shared"].CSeq; cseq >= writers*perWriter {
		t.Errorf("trunk-shared has CSeq %d, which no writer wrote", cseq)
	}
}

func testDoneContext(t *testing.T, s store.Store) {
	mustPut(t, s, Record("trunk-1"))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		ops := map[string]error{
			"Put":    s.Put(c.ctx, Record("trunk-2")),
			"Delete": s.Delete(c.ctx, "trunk-1"),
			"Ping":   s.Ping(c.ctx),
		}
		_, ops["Get"] = s.Get(c.ctx, "trunk-1")
		_, ops["List"] = s.List(c.ctx)
		_, ops["PutMany"] = s.PutMany(c.ctx, []registration.Record{Record("trunk-3")})
		_, ops["GetMany"] = s.GetMany(c.ctx, []string{"trunk-1"})
		for _, op := range slices.Sorted(maps.Keys(ops)) {
			if err := ops[op]; !errors.Is(err, c.want) {
				t.Errorf("%s with a done context: %v, want %v", op, err, c.want)
			}
		}
	}
	got := mustList(t, s)
	if _, ok := got["trunk-1"]; !ok || len(got) != 1 {
		t.Errorf("a done context changed the store: %v", slices.Sorted(maps.Keys(got)))
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
