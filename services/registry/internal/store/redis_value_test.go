package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// TestEncodeIsWhatPutWrites checks that recordfmt.Encode gives the value and
// TTL Put and PutMany write, and that Client and Prefix name them.
func TestEncodeIsWhatPutWrites(t *testing.T) {
	const grace = time.Hour
	forEachBackend(t, func(t *testing.T, b backend) {
		s, prefix := b.open(t, store.RedisOptions{TTLGrace: grace, Now: func() time.Time { return fixedClock }})
		if s.Prefix() != prefix {
			t.Errorf("Prefix() = %q, want %q", s.Prefix(), prefix)
		}
		rec := storetest.Record("trunk-1")
		rec.ExpiresAt = fixedClock.Add(30 * time.Minute)
		rec.Owner, rec.Fence = "replica-a", 3
		many := rec
		many.TrunkRef = "trunk-2"
		if err := s.Put(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutMany(t.Context(), []registration.Record{many}); err != nil {
			t.Fatal(err)
		}
		for _, r := range []registration.Record{rec, many} {
			value, ttl, err := recordfmt.Encode(r, fixedClock, grace)
			if err != nil {
				t.Fatal(err)
			}
			if ttl != 30*time.Minute+grace {
				t.Errorf("Encode TTL = %v, want %v", ttl, 30*time.Minute+grace)
			}
			// Through the store's own client.
			got, err := s.Client().Get(t.Context(), s.Prefix()+r.TrunkRef).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(value) {
				t.Errorf("stored %s\nEncode %s", got, value)
			}
			pttl := s.Client().PTTL(t.Context(), s.Prefix()+r.TrunkRef).Val()
			if pttl > ttl || pttl < ttl-5*time.Second {
				t.Errorf("stored TTL %v, Encode %v", pttl, ttl)
			}
		}
	})
}

// TestPutUnencodableRecord checks that Put and PutMany report a record
// recordfmt.Encode refuses (see TestEncodeRecordErrors there) with its error,
// and write nothing.
func TestPutUnencodableRecord(t *testing.T) {
	bad := storetest.Record("trunk-1")
	bad.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	// Put reports it as before the refactoring.
	b, _ := miniBackend(t)
	s, _ := b.open(t, store.RedisOptions{})
	if err := s.Put(t.Context(), bad); err == nil || !strings.HasPrefix(err.Error(), "redis put trunk-1: encode: ") {
		t.Errorf("Put of an unencodable record: %v", err)
	}
	if _, err := s.PutMany(t.Context(), []registration.Record{bad}); err == nil ||
		!strings.HasPrefix(err.Error(), "redis put many trunk-1: encode: ") {
		t.Errorf("PutMany of an unencodable record: %v", err)
	}
	if _, err := s.Get(t.Context(), "trunk-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after failed writes: %v", err)
	}
}
