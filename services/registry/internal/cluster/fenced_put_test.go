package cluster_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

func TestFencedPutManyRefusedAfterTakeover(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		client := b.client(t)
		a := b.cluster(t, "replica-a", cluster.Options{Client: client})
		bb := b.cluster(t, "replica-b", cluster.Options{Client: client})
		st, err := store.NewRedis(store.RedisOptions{Addrs: []string{b.addr}, Prefix: b.prefix + "registration:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		const grace = time.Hour

		record := func(ref string, fence int64, reason string) registration.Record {
			return registration.Record{
				TrunkRef: ref, AOR: "sip:u@example.net", Target: "example.net:5060", Transport: "udp",
				State: registration.StateRegistered, CallID: "call-" + ref, FromTag: "tag", CSeq: 7,
				ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), Fence: fence,
				LastReason: reason, UpdatedAt: time.Now().UTC().Truncate(time.Second),
			}
		}

		if _, err := a.Claim(ctx, []string{"t1", "t2"}); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		refused, err := a.FencedPutMany(ctx, st.Prefix(), []registration.Record{
			record("t1", 1, "by A"), record("t2", 1, "by A"),
		}, grace)
		if err != nil || len(refused) != 0 {
			t.Fatalf("A fenced put = refused %v, %v", refused, err)
		}
		rec, err := st.Get(ctx, "t1")
		if err != nil {
			t.Fatalf("store get t1: %v", err)
		}
		if rec.Owner != "replica-a" || rec.Fence != 1 || rec.LastReason != "by A" {
			t.Errorf("t1 after A's write: owner %q fence %d reason %q", rec.Owner, rec.Fence, rec.LastReason)
		}
		// The value and TTL are the store's own.
		want, wantTTL, err := recordfmt.Encode(rec, written, grace)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.raw.Get(ctx, st.Prefix()+"t1").Val(); got != string(want) {
			t.Errorf("stored value\n%s\nwant\n%s", got, want)
		}
		if ttl := b.raw.PTTL(ctx, st.Prefix()+"t1").Val(); ttl > wantTTL || ttl < wantTTL-time.Minute {
			t.Errorf("record TTL %v, want about %v", ttl, wantTTL)
		}

		// t1's lease runs out (deleted as an expiry would) and B takes it over.
		if err := b.raw.Del(ctx, b.leaseKey("t1")).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := bb.Claim(ctx, []string{"t1"}); err != nil || got["t1"] != 2 {
			t.Fatalf("B claim = %v, %v; want t1:2", got, err)
		}
		// B cannot write with A's fence either: the fence is per owner.
		refused, err = bb.FencedPutMany(ctx, st.Prefix(), []registration.Record{record("t1", 1, "by B, stale fence")}, grace)
		if err != nil || !slices.Equal(refused, []string{"t1"}) {
			t.Fatalf("B fenced put with fence 1 = refused %v, %v; want [t1]", refused, err)
		}
		if _, ok := bb.Valid("t1"); !ok {
			t.Error("B lost t1 by writing a stale record")
		}
		refused, err = bb.FencedPutMany(ctx, st.Prefix(), []registration.Record{record("t1", 2, "by B")}, grace)
		if err != nil || len(refused) != 0 {
			t.Fatalf("B fenced put = refused %v, %v", refused, err)
		}

		// A, paused through all of this, writes late: refused for t1 only.
		refused, err = a.FencedPutMany(ctx, st.Prefix(), []registration.Record{
			record("t1", 1, "late by A"), record("t2", 1, "by A again"), record("t1", 1, "late by A twice"),
		}, grace)
		if err != nil || !slices.Equal(refused, []string{"t1"}) {
			t.Fatalf("A late fenced put = refused %v, %v; want [t1]", refused, err)
		}
		if held := a.Held(); !maps.Equal(held, map[string]int64{"t2": 1}) {
			t.Errorf("A held after the refusal = %v, want t2:1", held)
		}
		rec, err = st.Get(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Owner != "replica-b" || rec.Fence != 2 || rec.LastReason != "by B" {
			t.Errorf("t1 after A's late write: owner %q fence %d reason %q; want B's", rec.Owner, rec.Fence, rec.LastReason)
		}
		if rec, err := st.Get(ctx, "t2"); err != nil || rec.LastReason != "by A again" {
			t.Errorf("t2 = %q, %v; want A's second write", rec.LastReason, err)
		}
	})
}

func TestFencedPutManyRejectsBeforeWriting(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	a := b.cluster(t, "replica-a", cluster.Options{})
	if _, err := a.Claim(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	good := registration.Record{TrunkRef: "t1", Fence: 1}
	for name, bad := range map[string]registration.Record{
		"empty ref":     {Fence: 1},
		"time too late": {TrunkRef: "t2", Fence: 1, UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		refused, err := a.FencedPutMany(ctx, "rec:", []registration.Record{good, bad}, time.Hour)
		if err == nil {
			t.Errorf("%s: no error (refused %v)", name, refused)
		}
	}
	if n := b.raw.Exists(ctx, "rec:t1").Val(); n != 0 {
		t.Error("t1 written although another record was invalid")
	}
	// grace 0 means the store's default.
	if _, err := a.FencedPutMany(ctx, "rec:", []registration.Record{good}, 0); err != nil {
		t.Fatal(err)
	}
	if ttl := b.raw.PTTL(ctx, "rec:t1").Val(); ttl != store.DefaultTTLGrace {
		t.Errorf("TTL with grace 0 = %v, want %v", ttl, store.DefaultTTLGrace)
	}
}

// TestFencedPutManyRoundTrips writes 5000 records with one EVALSHA per 500
// and eight per round trip.
func TestFencedPutManyRoundTrips(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	trips, evals := &roundTrips{}, &evalCounter{}
	a := b.cluster(t, "replica-a", cluster.Options{Client: b.client(t, trips, evals)})
	all := refs("trunk", 5000)
	got, err := a.Claim(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]registration.Record, len(all))
	for i, ref := range all {
		recs[i] = registration.Record{TrunkRef: ref, Fence: got[ref]}
	}
	// The first fenced write loads the script.
	if refused, err := a.FencedPutMany(ctx, "rec:", recs[:1], time.Hour); err != nil || len(refused) != 0 {
		t.Fatalf("first fenced put: refused %v, %v", refused, err)
	}
	evals.n.Store(0)
	trips.Reset()
	refused, err := a.FencedPutMany(ctx, "rec:", recs, time.Hour)
	if err != nil || len(refused) != 0 {
		t.Fatalf("fenced put: refused %d, %v", len(refused), err)
	}
	if n := evals.n.Load(); n != int64(len(recs)/500) {
		t.Errorf("%d script calls for %d records, want %d", n, len(recs), len(recs)/500)
	}
	if n := trips.Count(); n != 2 {
		t.Errorf("%d round trips for %d records, want 2", n, len(recs))
	}
	if n := len(b.mini.Keys()); n < 3*len(all) {
		t.Errorf("%d keys after the writes, want at least %d (record, lease, fence)", n, 3*len(all))
	}
}
