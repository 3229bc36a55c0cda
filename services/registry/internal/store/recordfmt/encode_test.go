package recordfmt_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// fixedClock is the time the tests encode records at.
var fixedClock = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestEncodeRecordErrors(t *testing.T) {
	if _, _, err := recordfmt.Encode(registration.Record{}, fixedClock, time.Hour); err == nil ||
		!strings.Contains(err.Error(), "empty trunk ref") {
		t.Errorf("empty ref: %v", err)
	}
	bad := storetest.Record("trunk-1")
	bad.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, err := recordfmt.Encode(bad, fixedClock, time.Hour)
	if err == nil || !strings.HasPrefix(err.Error(), "encode: ") {
		t.Errorf("unencodable record: %v", err)
	}
}

// TestEncodeRecordVersion checks the value starts with the version byte
// Version and that Decode reads it back.
func TestEncodeRecordVersion(t *testing.T) {
	rec := storetest.FullRecord("trunk-1")
	value, _, err := recordfmt.Encode(rec, fixedClock, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if recordfmt.Version != 3 || len(value) == 0 || value[0] != recordfmt.Version {
		t.Errorf("Encode = %q; want it to start with the byte %d", value, recordfmt.Version)
	}
	got, err := recordfmt.Decode(value)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d := storetest.Diff(got, rec); d != "" {
		t.Errorf("Decode(Encode): %s", d)
	}
	if got != storetest.Normalized(rec) {
		t.Errorf("Decode(Encode) = %+v\nwant %+v (UTC, no monotonic reading)", got, storetest.Normalized(rec))
	}
}

// TestEncodeRecordRollback checks the rollback lever: with writeVersion set to
// version 2 or 1, Encode writes what the releases before wrote, which
// Decode reads back.
func TestEncodeRecordRollback(t *testing.T) {
	rec := storetest.FullRecord("trunk-1")
	for _, tc := range []struct {
		version int
		prefix  string
	}{
		{recordfmt.ProtoV2Version, "\x02\x0a\x07trunk-1"},
		{recordfmt.JSONVersion, `{"v":1,"trunkRef":"trunk-1",`},
	} {
		recordfmt.WriteVersion(t, tc.version)
		value, _, err := recordfmt.Encode(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(value), tc.prefix) {
			t.Errorf("Encode = %q; want the format of version %d", value, tc.version)
		}
		if got, err := recordfmt.Decode(value); err != nil || got != storetest.Normalized(rec) {
			t.Errorf("version %d: Decode(Encode) = %+v, %v", tc.version, got, err)
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
			rec, err := recordfmt.Decode([]byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || rec.TrunkRef != "trunk-1" {
					t.Errorf("Decode(%s) = %+v, %v; want trunk-1", tc.value, rec, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, recordfmt.ErrCorrupt) {
				t.Errorf("Decode(%s): %v; want ErrCorrupt, %q", tc.value, err, tc.wantErr)
			}
			if errors.Is(err, recordfmt.ErrUnknownVersion) != tc.unknownVersion {
				t.Errorf("Decode(%s): %v; want ErrUnknownVersion: %v", tc.value, err, tc.unknownVersion)
			}
			if rec != (registration.Record{}) {
				t.Errorf("Decode(%s) with an error returned %+v", tc.value, rec)
			}
		})
	}
}
