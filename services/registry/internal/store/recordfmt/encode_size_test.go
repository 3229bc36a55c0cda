package recordfmt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// typicalRecord is a registered trunk as the engine writes it: a Call-ID of 32
// hex digits at "@sipreg", a 16-digit From-tag, the 16-digit fingerprint, the
// default replica ID of pod registry-0 as owner, a fence, times with
// nanoseconds; a ref and hosts of the lengths the docs show.
func typicalRecord() registration.Record {
	now := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	return registration.Record{
		TrunkRef:         "trunk-000123",
		TrunkName:        "Trunk 123",
		AOR:              "sip:user000123@sip.acme.example",
		Target:           "sip.acme.example:5060",
		Transport:        "udp",
		EdgePort:         "edgeport-01:5060",
		Fingerprint:      "3b5d8e0f2a4c6e81",
		State:            registration.StateRegistered,
		CallID:           "8c1f0e9d2b3a4c5d6e7f80910a1b2c3d@sipreg",
		FromTag:          "a1b2c3d4e5f60718",
		CSeq:             1043,
		CSeqCeiling:      1100,
		RequestedExpires: 3600,
		GrantedExpires:   3600,
		ExpiresAt:        now.Add(3600 * time.Second).Add(-321 * time.Millisecond),
		RegisteredSince:  now.Add(-72*time.Hour + 17*time.Millisecond),
		NextAction:       registration.ActionRefresh,
		NextActionAt:     now.Add(3240*time.Second + 987654*time.Nanosecond),
		LastResponseCode: 200,
		LastResponseType: "OK",
		LastReason:       "OK",
		Owner:            "registry-0-1-k3j5x8qa",
		Fence:            1287,
		UpdatedAt:        now,
	}
}

// longRecord is typicalRecord with long names: a UUID ref, long hosts, the
// replica ID of a Deployment's pod.
func longRecord() registration.Record {
	rec := typicalRecord()
	rec.TrunkRef = "6f1c2b0e-8d4a-4f7e-9b3c-2a5d7e9f1c3b"
	rec.TrunkName = "Carrier A (primary)"
	rec.AOR = "sip:4155550100@sip.carrier-a.example.net"
	rec.Target = "sip.carrier-a.example.net:5060"
	rec.EdgePort = "edgeport-0.edgeport:5060"
	rec.Owner = "registry-6b9f7c5d4-x2k8q-1-k3j5x8qa"
	return rec
}

// v1JSON is rec as Encode wrote it with format version 1.
func v1JSON(t testing.TB, rec registration.Record) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		V int `json:"v"`
		registration.Record
	}{1, rec})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// formats returns rec as each format version writes it: "v1", "v2", "v3".
func formats(t *testing.T, rec registration.Record) map[string][]byte {
	t.Helper()
	values := map[string][]byte{"v1": v1JSON(t, rec)}
	for _, v := range writeVersions {
		t.Run(fmt.Sprintf("encode version %d", v), func(t *testing.T) {
			recordfmt.WriteVersion(t, v)
			value, _, err := recordfmt.Encode(rec, fixedClock, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			values[fmt.Sprintf("v%d", v)] = value
		})
	}
	return values
}

// maxTypicalValue bounds the value of a typical record. Issue 12 allows at most
// 400 bytes of Redis memory per trunk, key and overhead included. Version 2
// took 314 bytes, in jemalloc's 320-byte class: MEMORY USAGE 408 with a
// 32-byte key, and INFO used_memory grew by 469 bytes per trunk over 100,000
// of them (TestRedisUsedMemoryPerTrunk). Version 3 takes 212, in the 224-byte
// class (a value of at most 220 bytes, the string's header and NUL making
// 224): MEMORY USAGE 312, used_memory 373 per trunk. This bound keeps it in
// that class.
const maxTypicalValue = 220

// TestEncodeRecordTypicalSize measures the value of a typical record in every
// format; version 3 must stay within maxTypicalValue.
func TestEncodeRecordTypicalSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  registration.Record
		max  int
	}{
		{"typical", typicalRecord(), maxTypicalValue},
		{"long names", longRecord(), 2 * maxTypicalValue},
	} {
		values := formats(t, tc.rec)
		for name, value := range values {
			if got, err := recordfmt.Decode(value); err != nil || got != tc.rec {
				t.Fatalf("%s %s: Decode = %+v, %v", tc.name, name, got, err)
			}
		}
		t.Logf("%s record: %d bytes (version 3), %d (version 2), %d (JSON, version 1)",
			tc.name, len(values["v3"]), len(values["v2"]), len(values["v1"]))
		if len(values["v3"]) > tc.max {
			t.Errorf("%s record takes %d bytes, want at most %d", tc.name, len(values["v3"]), tc.max)
		}
	}
}

// TestRedisMemoryUsage stores a typical record in the real Redis in every
// format and logs what MEMORY USAGE says of each key (no assertion on the
// figure: it depends on the server's allocator, only on their order).
func TestRedisMemoryUsage(t *testing.T) {
	srv := redistest.Real(t)
	ctx := t.Context()
	for _, rec := range []registration.Record{typicalRecord(), longRecord()} {
		_, ttl, err := recordfmt.Encode(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		values := formats(t, rec)
		usage := map[string]int64{}
		for _, name := range []string{"v1", "v2", "v3"} {
			// A key of the length the store writes (DefaultPrefix and the
			// ref), MEMORY USAGE counting the key too: the start of the
			// test's own prefix, as long as DefaultPrefix. It is deleted
			// below and, should the test stop before, when it ends.
			key := srv.Prefix[:len(store.DefaultPrefix)-1] + ":" + rec.TrunkRef
			t.Cleanup(func() { srv.Client.Del(context.Background(), key) })
			if err := srv.Client.Set(ctx, key, values[name], ttl).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := srv.Client.MemoryUsage(ctx, key).Result()
			if err != nil {
				t.Fatalf("MEMORY USAGE: %v", err)
			}
			usage[name] = n
			t.Logf("%s %s: value %d bytes, key %d bytes, MEMORY USAGE %d bytes",
				rec.TrunkRef, name, len(values[name]), len(key), n)
			if err := srv.Client.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if usage["v3"] > usage["v2"] || usage["v2"] >= usage["v1"] {
			t.Errorf("%s: MEMORY USAGE of versions 3, 2, 1: %d, %d, %d bytes", rec.TrunkRef, usage["v3"], usage["v2"], usage["v1"])
		}
	}
}
