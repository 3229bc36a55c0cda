package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// TestEncodeRecordIsWhatPutWrites checks that EncodeRecord gives the value and
// TTL Put and PutMany write, and that Client and Prefix name them.
func TestEncodeRecordIsWhatPutWrites(t *testing.T) {
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
			value, ttl, err := store.EncodeRecord(r, fixedClock, grace)
			if err != nil {
				t.Fatal(err)
			}
			if ttl != 30*time.Minute+grace {
				t.Errorf("EncodeRecord TTL = %v, want %v", ttl, 30*time.Minute+grace)
			}
			// Through the store's own client.
			got, err := s.Client().Get(t.Context(), s.Prefix()+r.TrunkRef).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(value) {
				t.Errorf("stored %s\nEncodeRecord %s", got, value)
			}
			pttl := s.Client().PTTL(t.Context(), s.Prefix()+r.TrunkRef).Val()
			if pttl > ttl || pttl < ttl-5*time.Second {
				t.Errorf("stored TTL %v, EncodeRecord %v", pttl, ttl)
			}
		}
	})
}

func TestEncodeRecordErrors(t *testing.T) {
	if _, _, err := store.EncodeRecord(registration.Record{}, fixedClock, time.Hour); err == nil ||
		!strings.Contains(err.Error(), "empty trunk ref") {
		t.Errorf("empty ref: %v", err)
	}
	bad := storetest.Record("trunk-1")
	bad.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, err := store.EncodeRecord(bad, fixedClock, time.Hour)
	if err == nil || !strings.HasPrefix(err.Error(), "encode: ") {
		t.Errorf("unencodable record: %v", err)
	}
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

// TestEncodeRecordVersion checks the value starts with the version byte
// RecordVersion and that DecodeRecord reads it back.
func TestEncodeRecordVersion(t *testing.T) {
	rec := storetest.FullRecord("trunk-1")
	value, _, err := store.EncodeRecord(rec, fixedClock, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if store.RecordVersion != 3 || len(value) == 0 || value[0] != store.RecordVersion {
		t.Errorf("EncodeRecord = %q; want it to start with the byte %d", value, store.RecordVersion)
	}
	got, err := store.DecodeRecord(value)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if d := storetest.Diff(got, rec); d != "" {
		t.Errorf("DecodeRecord(EncodeRecord): %s", d)
	}
	if got != storetest.Normalized(rec) {
		t.Errorf("DecodeRecord(EncodeRecord) = %+v\nwant %+v (UTC, no monotonic reading)", got, storetest.Normalized(rec))
	}
}

// TestEncodeRecordRollback checks the rollback lever: with writeVersion set to
// version 2 or 1, EncodeRecord writes what the releases before wrote, which
// DecodeRecord reads back.
func TestEncodeRecordRollback(t *testing.T) {
	rec := storetest.FullRecord("trunk-1")
	for _, tc := range []struct {
		version int
		prefix  string
	}{
		{store.ProtoV2Version, "\x02\x0a\x07trunk-1"},
		{store.JSONVersion, `{"v":1,"trunkRef":"trunk-1",`},
	} {
		store.WriteVersion(t, tc.version)
		value, _, err := store.EncodeRecord(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(value), tc.prefix) {
			t.Errorf("EncodeRecord = %q; want the format of version %d", value, tc.version)
		}
		if got, err := store.DecodeRecord(value); err != nil || got != storetest.Normalized(rec) {
			t.Errorf("version %d: DecodeRecord(EncodeRecord) = %+v, %v", tc.version, got, err)
		}
	}
}

func TestDecodeRecord(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		// wantErr is the start of the error's text; "" for a record of
		// trunk-1.
		wantErr        string
		unknownVersion bool
	}{
		{"no version", `{"trunkRef":"trunk-1","cseq":1}`, "", false},
		{"version 1", `{"v":1,"trunkRef":"trunk-1"}`, "", false},
		{"version null", `{"v":null,"trunkRef":"trunk-1"}`, "", false},
		{"version 1 with a field this code does not know", `{"v":1,"trunkRef":"trunk-1","newField":[1]}`, "", false},
		{"version after the record's fields", `{"trunkRef":"trunk-1","v":1}`, "", false},
		{"JSON of version 2", `{"v":2,"trunkRef":"trunk-1"}`, "corrupt registration record: unknown record version 2", true},
		{"version 99, fields that do not fit", `{"v":99,"trunkRef":7}`, "corrupt registration record: unknown record version 99", true},
		{"version 0", `{"v":0,"trunkRef":"trunk-1"}`, "corrupt registration record: unknown record version 0", true},
		{"negative version", `{"v":-1,"trunkRef":"trunk-1"}`, "corrupt registration record: unknown record version -1", true},
		{"version as a string", `{"v":"1","trunkRef":"trunk-1"}`, "corrupt registration record: unreadable JSON: ", false},
		{"version 1, a field that does not fit", `{"v":1,"trunkRef":"trunk-1","cseq":"one"}`, "corrupt registration record: unreadable JSON: ", false},
		{"not JSON", "{not json", "corrupt registration record: unreadable JSON: ", false},
		{"binary", "\x00\xff", "corrupt registration record: unreadable JSON: ", false},
		{"binary, high byte first", "\xff\x00", "corrupt registration record: unreadable JSON: ", false},
		{"JSON after whitespace", " \t\r\n{\"v\":1,\"trunkRef\":\"trunk-1\"}", "", false},
		{"version byte 1", "\x01{}", "corrupt registration record: unknown record version 1", true},
		{"version byte 4", "\x04\x0a\x07trunk-1", "corrupt registration record: unknown record version 4", true},
		{"version byte 31", "\x1f", "corrupt registration record: unknown record version 31", true},
		{"version 2", "\x02\x0a\x07trunk-1", "", false},
		{"version 2, a field this code does not know", "\x02\x0a\x07trunk-1\xf8\x3e\x01", "", false},
		{"version 2, truncated", "\x02\x0a\x07trunk-", "corrupt registration record: unreadable record: ", false},
		{"version 2, a bad tag", "\x02\x00", "corrupt registration record: unreadable record: ", false},
		{"version 2, garbage", "\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "corrupt registration record: unreadable record: ", false},
		{"version 2, a number of the wrong type", "\x02\x0a\x07trunk-1\x5d\x01\x02\x03\x04", "corrupt registration record: unreadable record: ", false},
		{"version 3", "\x03\x0a\x07trunk-1", "", false},
		{"version 3, a field this code does not know", "\x03\x0a\x07trunk-1\xf8\x3e\x01", "", false},
		{"version 3, truncated", "\x03\x0a\x07trunk-", "corrupt registration record: unreadable record: ", false},
		{"version 3, a bad tag", "\x03\x00", "corrupt registration record: unreadable record: ", false},
		{"version 3, garbage", "\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "corrupt registration record: unreadable record: ", false},
		{"version 3, a number of the wrong type", "\x03\x0a\x07trunk-1\x5d\x01\x02\x03\x04", "corrupt registration record: unreadable record: ", false},
		{"version 3, an unknown state", "\x03\x0a\x07trunk-1\x28\x09", "corrupt registration record: state: unknown value 9", false},
		{"an array", `[{"trunkRef":"trunk-1"}]`, "corrupt registration record: unreadable JSON: ", false},
		{"empty", "", "corrupt registration record: unreadable JSON: ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := store.DecodeRecord([]byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || rec.TrunkRef != "trunk-1" {
					t.Errorf("DecodeRecord(%s) = %+v, %v; want trunk-1", tc.value, rec, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("DecodeRecord(%s): %v; want ErrCorrupt, %q", tc.value, err, tc.wantErr)
			}
			if errors.Is(err, store.ErrUnknownVersion) != tc.unknownVersion {
				t.Errorf("DecodeRecord(%s): %v; want ErrUnknownVersion: %v", tc.value, err, tc.unknownVersion)
			}
			if rec != (registration.Record{}) {
				t.Errorf("DecodeRecord(%s) with an error returned %+v", tc.value, rec)
			}
		})
	}
}
