package mirror

import (
	"context"
	"slices"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/watch"
)

// feedCoord is a change feed the test drives.
type feedCoord struct {
	follows chan feedCall
}

type feedCall struct {
	synced   func()
	onChange func(cluster.Change)
}

func (f *feedCoord) ID() string { return "self" }

func (f *feedCoord) FollowChanges(ctx context.Context, synced func(), onChange func(cluster.Change)) error {
	f.follows <- feedCall{synced, onChange}
	<-ctx.Done()
	return ctx.Err()
}

// gatedStore holds List until the test opens the gate (nil gate: no wait).
type gatedStore struct {
	store.Store
	gate chan chan struct{}
}

func (g *gatedStore) List(ctx context.Context) ([]registration.Record, error) {
	select {
	case wait := <-g.gate:
		<-wait
	default:
	}
	return g.Store.List(ctx)
}

func stored(ref string, cseq uint32, owner string) registration.Record {
	return registration.Record{
		TrunkRef: ref, State: registration.StateRegistered, CSeq: cseq, Owner: owner, CallID: "call-" + ref,
		UpdatedAt: time.Date(2026, 11, 23, 12, 0, int(cseq), 0, time.UTC),
		ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second),
	}
}

func nextEvent(t *testing.T, events <-chan watch.Event) watch.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return watch.Event{}
	}
}

func refsOf(recs []registration.Record) []string {
	var out []string
	for _, rec := range recs {
		out = append(out, rec.TrunkRef)
	}
	slices.Sort(out)
	return out
}

// TestMirror: a Use waits for the copy of every replica's records, other replicas'
// changes are published (this replica's own are not: the engine has them), and after
// the feed reconnects the store is read again and Publish gets what changed meanwhile,
// changes during the read applied after it.
func TestMirror(t *testing.T) {
	st := &gatedStore{Store: storetest.NewMemory(), gate: make(chan chan struct{}, 1)}
	ctx := t.Context()
	for _, rec := range []registration.Record{stored("t1", 1, "r2"), stored("t2", 1, "r3")} {
		if err := st.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	fc := &feedCoord{follows: make(chan feedCall, 1)}
	published := make(chan watch.Event, 64)
	m := New(Options{Feed: fc, Store: st, Publish: func(evs []watch.Event) {
		for _, ev := range evs {
			published <- ev
		}
	}})
	t.Cleanup(m.Close)
	records := func() []string {
		recs, live := m.Records()
		if !live {
			t.Fatal("mirror not live")
		}
		return refsOf(recs)
	}

	used := make(chan bool, 1)
	go func() { used <- m.Use(context.Background(), true) }()
	var feed feedCall
	select {
	case feed = <-fc.follows:
	case <-time.After(10 * time.Second):
		t.Fatal("Use did not start the change feed")
	}
	select {
	case <-used:
		t.Fatal("Use returned before the copy was read")
	default:
	}
	feed.synced()
	select {
	case live := <-used:
		if !live {
			t.Fatal("Use: not live")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Use did not return once the feed was confirmed")
	}
	events := (<-chan watch.Event)(published)
	if got := records(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Fatalf("Records = %v, want the store's t1 t2", got)
	}
	feed.onChange(cluster.Change{Replica: "r2", Put: []registration.Record{stored("t1", 2, "r2")}})
	if ev := nextEvent(t, events); ev.Removed || ev.Record.TrunkRef != "t1" || ev.Record.CSeq != 2 {
		t.Fatalf("event = %+v, want t1 at CSeq 2", ev)
	}
	// This replica's own write: in the copy, not an event.
	feed.onChange(cluster.Change{Replica: "self", Put: []registration.Record{stored("t9", 1, "self")}})
	feed.onChange(cluster.Change{Replica: "r3", Deleted: []string{"t2"}})
	if ev := nextEvent(t, events); !ev.Removed || ev.Record.TrunkRef != "t2" || ev.Record.State != registration.StateUnregistered {
		t.Fatalf("event = %+v, want t2 removed", ev)
	}
	if rec, ok, live := m.Record("t1"); !live || !ok || rec.CSeq != 2 {
		t.Fatalf("Record(t1) = %+v %v, want CSeq 2 from the copy", rec, ok)
	}
	if got := records(); !slices.Equal(got, []string{"t1", "t9"}) {
		t.Fatalf("Records = %v, want t1 t9", got)
	}

	// The feed reconnects; what changed while it was down is only in the store.
	for _, rec := range []registration.Record{stored("t1", 5, "r3"), stored("t3", 1, "r2")} {
		if err := st.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "t9"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	// A change that comes while the store is read is applied after the read.
	open := make(chan struct{})
	st.gate <- open
	feed.synced()
	feed.onChange(cluster.Change{Replica: "r2", Put: []registration.Record{stored("t3", 2, "r2")}})
	close(open)
	got := map[string]watch.Event{}
	for range 3 {
		ev := nextEvent(t, events)
		got[ev.Record.TrunkRef] = ev
	}
	if ev := got["t1"]; ev.Removed || ev.Record.CSeq != 5 || ev.Record.Owner != "r3" {
		t.Errorf("after the resync t1: %+v, want CSeq 5 by r3", ev)
	}
	if ev := got["t3"]; ev.Removed || ev.Record.CSeq != 2 {
		t.Errorf("after the resync t3: %+v, want new at CSeq 2 (the change during the read)", ev)
	}
	if ev := got["t9"]; !ev.Removed {
		t.Errorf("after the resync t9: %+v, want removed", ev)
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected event after the resync: %+v", ev)
	default:
	}
	if got := records(); !slices.Equal(got, []string{"t1", "t3"}) {
		t.Fatalf("Records after the resync = %v, want t1 t3", got)
	}
}
