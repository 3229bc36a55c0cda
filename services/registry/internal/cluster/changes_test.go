package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// follower runs FollowChanges on a client of its own (named, so that the test
// can cut its connection) and hands over what it is called with.
type follower struct {
	c       *cluster.Cluster
	synced  chan struct{}
	changes chan cluster.Change
	done    chan error
}

func follow(t *testing.T, b backend, name string) *follower {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: b.addr, ClientName: name, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	c := b.cluster(t, "watcher", cluster.Options{Client: client})
	f := &follower{c: c, synced: make(chan struct{}, 4), changes: make(chan cluster.Change, 16), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		f.done <- c.FollowChanges(ctx,
			func() { f.synced <- struct{}{} },
			func(ch cluster.Change) { f.changes <- ch })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-f.done; !errors.Is(err, context.Canceled) {
			t.Errorf("FollowChanges ended with %v, want context.Canceled", err)
		}
	})
	return f
}

func (f *follower) waitSynced(t *testing.T) {
	t.Helper()
	select {
	case <-f.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not confirmed")
	}
}

func (f *follower) next(t *testing.T) cluster.Change {
	t.Helper()
	select {
	case ch := <-f.changes:
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no change published")
		return cluster.Change{}
	}
}

// TestFollowChanges: the records a fenced write stores reach every follower in one
// message, those it refuses do not; deletions do; the follower's own writes are not
// passed back to it; and a follower whose connection is
// cut subscribes again and says so (synced), then goes on receiving.
func TestFollowChanges(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		f := follow(t, b, "follower-"+b.prefix)
		f.waitSynced(t)

		client := b.client(t)
		a := b.cluster(t, "replica-a", cluster.Options{Client: client})
		bb := b.cluster(t, "replica-b", cluster.Options{Client: client})
		if _, err := a.Claim(ctx, []string{"t1", "t2"}); err != nil {
			t.Fatal(err)
		}
		// One expiry for every record: made anew at the comparison, a second boundary
		// crossed since the write made the test fail.
		expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		rec := func(ref string, cseq uint32) registration.Record {
			return registration.Record{
				TrunkRef: ref, AOR: "sip:" + ref + "@example.net", State: registration.StateRegistered,
				CallID: "call-" + ref, FromTag: "tag", CSeq: cseq, Fence: 1, ExpiresAt: expires,
			}
		}
		// B holds no lease: refused, and nothing is published.
		if refused, err := bb.FencedPutMany(ctx, b.prefix+"rec:", []registration.Record{rec("t1", 9)}, time.Hour); err != nil || !slices.Equal(refused, []string{"t1"}) {
			t.Fatalf("B's write: refused %v, %v", refused, err)
		}
		if refused, err := a.FencedPutMany(ctx, b.prefix+"rec:", []registration.Record{rec("t1", 2), rec("t2", 3)}, time.Hour); err != nil || len(refused) != 0 {
			t.Fatalf("A's write: refused %v, %v", refused, err)
		}
		ch := f.next(t)
		if ch.Replica != "replica-a" || len(ch.Put) != 2 || len(ch.Deleted) != 0 {
			t.Fatalf("change = %+v, want A's two records", ch)
		}
		for i, want := range []registration.Record{rec("t1", 2), rec("t2", 3)} {
			want.Owner = "replica-a"
			got := ch.Put[i]
			if got.TrunkRef != want.TrunkRef || got.CSeq != want.CSeq || got.Owner != want.Owner || got.CallID != want.CallID ||
				!got.ExpiresAt.Equal(want.ExpiresAt) || got.State != want.State {
				t.Errorf("put[%d] = %+v, want %+v", i, got, want)
			}
		}

		// The follower's own write is not passed back to it; its deletion is.
		if _, err := f.c.Claim(ctx, []string{"t3"}); err != nil {
			t.Fatal(err)
		}
		if refused, err := f.c.FencedPutMany(ctx, b.prefix+"rec:", []registration.Record{rec("t3", 1)}, time.Hour); err != nil || len(refused) != 0 {
			t.Fatalf("the follower's own write: refused %v, %v", refused, err)
		}
		if err := f.c.PublishDeleted(ctx, []string{"t3"}); err != nil {
			t.Fatal(err)
		}
		if ch := f.next(t); ch.Replica != "watcher" || len(ch.Put) != 0 || !slices.Equal(ch.Deleted, []string{"t3"}) {
			t.Fatalf("change = %+v, want only the follower's own deletion of t3", ch)
		}
		if err := a.PublishDeleted(ctx, []string{"t2"}); err != nil {
			t.Fatal(err)
		}
		if ch := f.next(t); ch.Replica != "replica-a" || len(ch.Put) != 0 || !slices.Equal(ch.Deleted, []string{"t2"}) {
			t.Fatalf("change = %+v, want t2 deleted by A", ch)
		}

		// Cut the follower's connection: it subscribes again, and says so.
		if b.mini != nil {
			b.mini.Close()
			if err := b.mini.Restart(); err != nil {
				t.Fatal(err)
			}
		} else {
			killClient(t, b, "follower-"+b.prefix)
		}
		f.waitSynced(t)
		if refused, err := a.FencedPutMany(ctx, b.prefix+"rec:", []registration.Record{rec("t1", 4)}, time.Hour); err != nil || len(refused) != 0 {
			t.Fatalf("A's write after the cut: refused %v, %v", refused, err)
		}
		if ch := f.next(t); len(ch.Put) != 1 || ch.Put[0].CSeq != 4 {
			t.Fatalf("change after the cut = %+v", ch)
		}
	})
}

// killClient closes every connection of the client named name on the real Redis: its
// pool's and its subscription's (killing only the first one listed could leave the
// subscription, the connection the test is about, alone).
func killClient(t *testing.T, b backend, name string) {
	t.Helper()
	list, err := b.raw.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "id="); ok {
				id = v
			}
			if field == "name="+name && id != "" {
				if err := b.raw.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
					t.Fatal(err)
				}
				killed++
			}
		}
	}
	if killed == 0 {
		t.Fatalf("no client named %s in %s", name, list)
	}
}

// TestFollowChangesBinaryRecords: records of format version 2 (binary) whose
// strings hold the bytes a careless framing trips on (':', '"', '\', NUL, high
// bytes, invalid UTF-8 included) reach a follower intact, field for field.
func TestFollowChangesBinaryRecords(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		f := follow(t, b, "follower-bin-"+b.prefix)
		f.waitSynced(t)
		a := b.cluster(t, "replica-\"a\":1", cluster.Options{})
		got, err := a.Claim(ctx, []string{"t1", "t:2"})
		if err != nil || len(got) != 2 {
			t.Fatalf("Claim = %v, %v", got, err)
		}
		r1 := storetest.FullRecord("t1")
		r1.LastReason = "bad \x00 \"reason\": \\ \xff\xfe\x80 end"
		r1.CallID = "12:abc]}"
		r1.TrunkName = "\x00"
		r2 := storetest.Record("t:2")
		r2.AOR = "sip:\xc3\x28@example.net" // invalid UTF-8
		r2.LastError = strings.Repeat("\x00:\xff", 500)
		recs := []registration.Record{r1, r2}
		for i := range recs {
			recs[i].Fence = got[recs[i].TrunkRef]
		}
		if refused, err := a.FencedPutMany(ctx, b.prefix+"rec:", recs, time.Hour); err != nil || len(refused) != 0 {
			t.Fatalf("write: refused %v, %v", refused, err)
		}
		ch := f.next(t)
		if ch.Replica != a.ID() || len(ch.Put) != len(recs) || len(ch.Deleted) != 0 {
			t.Fatalf("change = %+v, want A's %d records", ch, len(recs))
		}
		for i, want := range recs {
			want.Owner = a.ID()
			if d := storetest.Diff(ch.Put[i], want); d != "" {
				t.Errorf("put[%d]: %s", i, d)
			}
			stored, err := b.raw.Get(ctx, b.prefix+"rec:"+want.TrunkRef).Bytes()
			if err != nil || len(stored) == 0 || stored[0] != recordfmt.Version {
				t.Errorf("%s stored as %q, %v; want format version %d", want.TrunkRef, stored, err, recordfmt.Version)
			}
		}
	})
}

// TestFollowChangesOldMessages: during a rolling upgrade a replica of the
// release before publishes the records it writes as JSON, the stored values
// (JSON of version 1, or without version) pasted in: a follower still reads
// them; it skips a message it cannot read and goes on; and it skips its own
// writes in that shape too.
func TestFollowChangesOldMessages(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		f := follow(t, b, "follower-old-"+b.prefix)
		f.waitSynced(t)
		channel := b.prefix + "changes"
		r1, r2 := storetest.FullRecord("t1"), storetest.Record("t2")
		v1, err := json.Marshal(struct {
			V int `json:"v"`
			registration.Record
		}{1, r1})
		if err != nil {
			t.Fatal(err)
		}
		v0, err := json.Marshal(r2)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{
			`{"replica":"watcher","put":[` + string(v1) + `]}`,  // the follower's own
			`{"replica":"old","put":[{"v":3,"trunkRef":"t9"}]}`, // a version it does not read
			"P3:old1:x", // not a record
			`{"replica":"old","put":[` + string(v1) + `,` + string(v0) + `]}`,
		} {
			if err := b.raw.Publish(ctx, channel, msg).Err(); err != nil {
				t.Fatal(err)
			}
		}
		ch := f.next(t)
		if ch.Replica != "old" || len(ch.Put) != 2 {
			t.Fatalf("change = %+v, want the old replica's two records", ch)
		}
		if d := storetest.Diff(ch.Put[0], r1); d != "" {
			t.Errorf("put[0]: %s", d)
		}
		if d := storetest.Diff(ch.Put[1], r2); d != "" {
			t.Errorf("put[1]: %s", d)
		}
		select {
		case ch := <-f.changes:
			t.Errorf("unexpected change %+v", ch)
		default:
		}
	})
}
