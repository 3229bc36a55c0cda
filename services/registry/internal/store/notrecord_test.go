package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2/server"

	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// oldRecord is the value of storetest.Record("trunk-old") as the store wrote it
// before records carried a format version.
const oldRecord = `{"trunkRef":"trunk-old","aor":"sip:trunk-old@sip.example.net",` +
	`"target":"sip.example.net:5060","transport":"udp","state":"pending",` +
	`"callId":"call-trunk-old","fromTag":"tag-trunk-old","cseq":1,` +
	`"nextAction":"register","nextActionAt":"2026-11-23T10:00:01.123456789Z",` +
	`"updatedAt":"2026-11-23T10:00:00.123456789Z"}`

// skipLog records what OnSkip is told.
type skipLog struct {
	mu  sync.Mutex
	got map[string][]error
}

func (l *skipLog) onSkip(key string, reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = make(map[string][]error)
	}
	l.got[key] = append(l.got[key], reason)
}

// take returns the reports since the last take, by key.
func (l *skipLog) take() map[string][]error {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

// skipBackend is a server the skip tests run on, and how to open a store on it
// (as backend.open); the test writes its odd keys through the store's client.
type skipBackend struct {
	name string
	open func(t *testing.T, opts store.RedisOptions) (*store.Redis, string)
	// exactTrips: List's SCAN takes one round trip (no other keys on the
	// server, and not a Cluster client, whose SCANs are not counted).
	exactTrips bool
}

// skipBackends are the real Redis, miniredis, and miniredis through a Cluster
// client.
var skipBackends = []skipBackend{
	{"real", func(t *testing.T, opts store.RedisOptions) (*store.Redis, string) {
		return realBackend(t).open(t, opts)
	}, false},
	{"miniredis", func(t *testing.T, opts store.RedisOptions) (*store.Redis, string) {
		b, _ := miniBackend(t)
		return b.open(t, opts)
	}, true},
	{"miniredis-cluster", func(t *testing.T, opts store.RedisOptions) (*store.Redis, string) {
		addr := redistest.Mini(t).Addr
		opts.Addrs = []string{addr, addr}
		opts.Prefix = store.DefaultPrefix
		return openStore(t, opts), opts.Prefix
	}, false},
}

// withVersion returns the JSON of rec with "v" set to v (any JSON value).
func withVersion(t *testing.T, rec registration.Record, v string) string {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return `{"v":` + v + `,` + string(data[1:])
}

// TestRedisSkipsKeysThatAreNotRecords puts keys that hold no readable record
// next to good records under the prefix: List and GetMany return every good
// record and report each bad key to OnSkip, once, with its reason; Get returns
// that reason as ErrCorrupt. Nothing is rewritten until a Put of the trunk.
func TestRedisSkipsKeysThatAreNotRecords(t *testing.T) {
	for _, sb := range skipBackends {
		t.Run(sb.name, func(t *testing.T) {
			var log skipLog
			s, prefix := sb.open(t, store.RedisOptions{OnSkip: log.onSkip})
			testSkips(t, s, prefix, &log, sb.exactTrips)
		})
	}
}

func testSkips(t *testing.T, s *store.Redis, prefix string, log *skipLog, exactTrips bool) {
	ctx := t.Context()
	c := s.Client()
	good := map[string]registration.Record{
		"trunk-1":   storetest.Record("trunk-1"),
		"trunk-2":   storetest.Normalized(storetest.FullRecord("trunk-2")),
		"trunk-old": storetest.Record("trunk-old"),
		"trunk-v1":  storetest.Record("trunk-v1"),
	}
	if _, err := s.PutMany(ctx, []registration.Record{good["trunk-1"], good["trunk-2"]}); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	elsewhere, _, err := recordfmt.Encode(storetest.Record("trunk-elsewhere"), fixedClock, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"trunk-old":     oldRecord,
		"trunk-v1":      withVersion(t, good["trunk-v1"], "1"),
		"trunk-garbage": "\x00\xffgarbage{",
		"trunk-other":   string(elsewhere),
		"trunk-future":  withVersion(t, storetest.Record("trunk-future"), "99"),
		// A later format whose fields do not fit this Record.
		"trunk-future7": `{"v":7,"trunkRef":"trunk-future7","cseq":"one"}`,
		"trunk-v0":      withVersion(t, storetest.Record("trunk-v0"), "0"),
	}
	for ref, value := range values {
		if err := c.Set(ctx, prefix+ref, value, time.Hour).Err(); err != nil {
			t.Fatalf("raw SET %s: %v", ref, err)
		}
	}
	if err := c.HSet(ctx, prefix+"trunk-hash", "trunkRef", "trunk-hash").Err(); err != nil {
		t.Fatalf("raw HSET: %v", err)
	}
	if err := c.RPush(ctx, prefix+"trunk-list", oldRecord).Err(); err != nil {
		t.Fatalf("raw RPUSH: %v", err)
	}
	// Each bad ref, and what its reason says.
	bad := map[string]string{
		"trunk-hash":    "corrupt registration record: wrong type: not a string",
		"trunk-list":    "corrupt registration record: wrong type: not a string",
		"trunk-garbage": "corrupt registration record: unreadable JSON: invalid character",
		"trunk-other":   `corrupt registration record: holds trunk "trunk-elsewhere"`,
		"trunk-future":  "corrupt registration record: unknown record version 99",
		"trunk-future7": "corrupt registration record: unknown record version 7",
		"trunk-v0":      "corrupt registration record: unknown record version 0",
	}
	checkReports := func(t *testing.T, op string, got map[string][]error, refs []string) {
		t.Helper()
		want := make([]string, len(refs))
		for i, ref := range refs {
			want[i] = prefix + ref
		}
		slices.Sort(want)
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
			t.Errorf("%s reported %q, want %q", op, keys, want)
		}
		for key, reasons := range got {
			ref := strings.TrimPrefix(key, prefix)
			if len(reasons) != 1 {
				t.Errorf("%s reported %s %d times: %v", op, ref, len(reasons), reasons)
			}
			reason := reasons[0]
			if !errors.Is(reason, store.ErrCorrupt) || !strings.HasPrefix(reason.Error(), bad[ref]) {
				t.Errorf("%s reported %s: %v; want ErrCorrupt, %q", op, ref, reason, bad[ref])
			}
			if version := strings.Contains(bad[ref], "version"); errors.Is(reason, recordfmt.ErrUnknownVersion) != version {
				t.Errorf("%s reported %s: %v; matches ErrUnknownVersion: %v, want %v",
					op, ref, reason, !version, version)
			}
		}
	}
	checkRecords := func(t *testing.T, op string, got map[string]registration.Record, want map[string]registration.Record) {
		t.Helper()
		if refs, wantRefs := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(refs, wantRefs) {
			t.Errorf("%s returned %q, want %q", op, refs, wantRefs)
		}
		for ref, w := range want {
			if d := storetest.Diff(got[ref], w); d != "" {
				t.Errorf("%s %s: %s", op, ref, d)
			}
		}
	}
	list := func(t *testing.T) map[string]registration.Record {
		t.Helper()
		recs, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		byRef := make(map[string]registration.Record, len(recs))
		for _, rec := range recs {
			byRef[rec.TrunkRef] = rec
		}
		return byRef
	}
	badRefs := slices.Sorted(maps.Keys(bad))
	log.take()

	t.Run("List", func(t *testing.T) {
		before := s.RoundTrips()
		got := list(t)
		if n := s.RoundTrips() - before; exactTrips && n != 2 {
			t.Errorf("List took %d round trips, want 2: one SCAN and one GET pipeline", n)
		}
		checkRecords(t, "List", got, good)
		checkReports(t, "List", log.take(), badRefs)
	})

	t.Run("Get", func(t *testing.T) {
		for _, ref := range badRefs {
			rec, err := s.Get(ctx, ref)
			if !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) || rec != (registration.Record{}) {
				t.Errorf("Get(%s) = %+v, %v; want ErrCorrupt", ref, rec, err)
			} else if want := "redis get " + ref + ": " + bad[ref]; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Get(%s): %q, want %q", ref, err, want)
			}
			checkReports(t, "Get "+ref, log.take(), []string{ref})
		}
		for ref, want := range good {
			rec, err := s.Get(ctx, ref)
			if err != nil {
				t.Errorf("Get(%s): %v", ref, err)
			} else if d := storetest.Diff(rec, want); d != "" {
				t.Errorf("Get(%s): %s", ref, d)
			}
		}
		checkReports(t, "Get of good records", log.take(), nil)
	})

	t.Run("GetMany", func(t *testing.T) {
		refs := slices.Concat(badRefs, slices.Collect(maps.Keys(good)), badRefs, []string{"trunk-unknown", ""})
		before := s.RoundTrips()
		got, err := s.GetMany(ctx, refs)
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		if n := s.RoundTrips() - before; n != 1 {
			t.Errorf("GetMany took %d round trips, want 1", n)
		}
		checkRecords(t, "GetMany", got, good)
		checkReports(t, "GetMany", log.take(), badRefs)
	})

	t.Run("NotRewritten", func(t *testing.T) {
		for ref, value := range values {
			if got, err := c.Get(ctx, prefix+ref).Result(); err != nil || got != value {
				t.Errorf("%s holds %q, %v after the reads; want %q", ref, got, err, value)
			}
		}
		if typ := c.Type(ctx, prefix+"trunk-hash").Val(); typ != "hash" {
			t.Errorf("trunk-hash is a %s after the reads", typ)
		}
	})

	t.Run("PutReplaces", func(t *testing.T) {
		repaired := []string{"trunk-hash", "trunk-future", "trunk-garbage"}
		for _, ref := range repaired {
			good[ref] = storetest.Record(ref)
			if err := s.Put(ctx, good[ref]); err != nil {
				t.Fatalf("Put(%s): %v", ref, err)
			}
			delete(bad, ref)
		}
		checkRecords(t, "List after Put", list(t), good)
		checkReports(t, "List after Put", log.take(), slices.Sorted(maps.Keys(bad)))
	})
}

// TestRedisOldRecordLoads reads a record written before records carried a
// format version: Get, GetMany and List all load it, and a Put writes it back
// in the format of recordfmt.Version, which reads back as the same record.
func TestRedisOldRecordLoads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var log skipLog
		s, prefix := b.open(t, store.RedisOptions{OnSkip: log.onSkip})
		ctx := t.Context()
		if err := s.Client().Set(ctx, prefix+"trunk-old", oldRecord, time.Hour).Err(); err != nil {
			t.Fatalf("raw SET: %v", err)
		}
		want := storetest.Record("trunk-old")
		rec, err := s.Get(ctx, "trunk-old")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if d := storetest.Diff(rec, want); d != "" {
			t.Errorf("Get: %s", d)
		}
		many, err := s.GetMany(ctx, []string{"trunk-old"})
		if err != nil || storetest.Diff(many["trunk-old"], want) != "" {
			t.Errorf("GetMany = %+v, %v", many, err)
		}
		recs, err := s.List(ctx)
		if err != nil || len(recs) != 1 || storetest.Diff(recs[0], want) != "" {
			t.Errorf("List = %+v, %v", recs, err)
		}
		if got := log.take(); len(got) != 0 {
			t.Errorf("reported %v", got)
		}
		if err := s.Put(ctx, rec); err != nil {
			t.Fatalf("Put: %v", err)
		}
		value, err := s.Client().Get(ctx, prefix+"trunk-old").Bytes()
		if err != nil {
			t.Fatalf("raw GET: %v", err)
		}
		if len(value) == 0 || value[0] != recordfmt.Version {
			t.Errorf("written back as %q; want the byte %d first", value, recordfmt.Version)
		}
		if back, err := recordfmt.Decode(value); err != nil || storetest.Diff(back, want) != "" {
			t.Errorf("written back as %q: %+v, %v", value, back, err)
		}
	})
}

// TestRedisFailureIsNotSkip makes Redis answer one GET with an error other than
// WRONGTYPE, next to a hash key: List, GetMany and Get fail with that error, not
// ErrCorrupt, and report nothing.
func TestRedisFailureIsNotSkip(t *testing.T) {
	b, m := miniBackend(t)
	var log skipLog
	s, prefix := b.open(t, store.RedisOptions{OnSkip: log.onSkip})
	ctx := t.Context()
	if _, err := s.PutMany(ctx, []registration.Record{storetest.Record("trunk-1"), storetest.Record("trunk-zz")}); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	m.HSet(prefix+"trunk-hash", "f", "v")
	// trunk-zz sorts after trunk-hash: List has classified the hash key when
	// it meets the failure.
	m.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd == "GET" && len(args) == 1 && args[0] == prefix+"trunk-zz" {
			c.WriteError("ERR injected failure")
			return true
		}
		return false
	})
	t.Cleanup(func() { m.Server().SetPreHook(nil) })

	check := func(op string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "injected failure") || errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v; want the injected failure", op, err)
		}
	}
	recs, err := s.List(ctx)
	check("List", err)
	if recs != nil {
		t.Errorf("failed List returned %d records", len(recs))
	}
	_, err = s.GetMany(ctx, []string{"trunk-1", "trunk-hash", "trunk-zz"})
	check("GetMany", err)
	_, err = s.Get(ctx, "trunk-zz")
	check("Get", err)
	if got := log.take(); len(got) != 0 {
		t.Errorf("failed calls reported %v", got)
	}

	// A done context fails GetMany before it asks.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetMany(canceled, []string{"trunk-1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("GetMany with a canceled context: %v", err)
	}
}

// TestRedisBarePrefixKey puts a record without trunk ref under the bare prefix,
// a key Put never writes: List skips it and reports it.
func TestRedisBarePrefixKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var log skipLog
		s, prefix := b.open(t, store.RedisOptions{OnSkip: log.onSkip})
		ctx := t.Context()
		if err := s.Client().Set(ctx, prefix, `{"v":1,"trunkRef":"","cseq":1}`, time.Hour).Err(); err != nil {
			t.Fatalf("raw SET: %v", err)
		}
		if err := s.Put(ctx, storetest.Record("trunk-1")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		recs, err := s.List(ctx)
		if err != nil || len(recs) != 1 || recs[0].TrunkRef != "trunk-1" {
			t.Errorf("List = %+v, %v; want trunk-1 only", recs, err)
		}
		got := log.take()
		if reasons := got[prefix]; len(got) != 1 || len(reasons) != 1 ||
			reasons[0].Error() != "corrupt registration record: record without trunk ref" {
			t.Errorf("reported %v; want the bare prefix, once", got)
		}
	})
}
