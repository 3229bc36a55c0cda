package recordfmt_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// encodeV3 is rec as Encode writes it, read back as the message of
// version 3.
func encodeV3(t *testing.T, rec registration.Record) (*storepb.RecordV3, []byte) {
	t.Helper()
	value, _, err := recordfmt.Encode(rec, fixedClock, time.Hour)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if value[0] != 3 {
		t.Fatalf("Encode wrote version %d", value[0])
	}
	var m storepb.RecordV3
	if err := proto.Unmarshal(value[1:], &m); err != nil {
		t.Fatal(err)
	}
	return &m, value
}

// TestEncodeRecordV3Forms checks which form, short or long, version 3 gives each
// string and time, and that each comes back as it was.
func TestEncodeRecordV3Forms(t *testing.T) {
	updated := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name  string
		edit  func(*registration.Record)
		short bool
		form  func(*storepb.RecordV3) bool
	}{
		{"AOR with sip:", func(r *registration.Record) { r.AOR = "sip:u@h" }, true,
			func(m *storepb.RecordV3) bool { return m.Aor == "u@h" }},
		{"AOR with sips:", func(r *registration.Record) { r.AOR = "sips:u@h" }, false,
			func(m *storepb.RecordV3) bool { return m.AorText == "sips:u@h" }},
		{"AOR sip: alone", func(r *registration.Record) { r.AOR = "sip:" }, false,
			func(m *storepb.RecordV3) bool { return m.AorText == "sip:" }},
		{"target at the AOR's host", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h.example", "h.example:5080" }, true,
			func(m *storepb.RecordV3) bool { return m.TargetPort == 5080 }},
		{"target of an AOR without user", func(r *registration.Record) { r.AOR, r.Target = "sip:h", "h:5060" }, true,
			func(m *storepb.RecordV3) bool { return m.TargetPort == 5060 }},
		{"target of an IPv6 AOR", func(r *registration.Record) { r.AOR, r.Target = "sip:u@[::1]", "[::1]:5060" }, true,
			func(m *storepb.RecordV3) bool { return m.TargetPort == 5060 }},
		{"target after the last @", func(r *registration.Record) { r.AOR, r.Target = "sip:a@b@c", "c:1" }, true,
			func(m *storepb.RecordV3) bool { return m.TargetPort == 1 }},
		{"target at another host", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h", "H:5060" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "H:5060" }},
		{"target port with a leading 0", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h", "h:05060" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "h:05060" }},
		{"target port 0", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h", "h:0" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "h:0" }},
		{"target port past 32 bits", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h", "h:4294967296" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "h:4294967296" }},
		{"target without port", func(r *registration.Record) { r.AOR, r.Target = "sip:u@h", "h:" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "h:" }},
		{"target of an AOR not sip:", func(r *registration.Record) { r.AOR, r.Target = "tel:h", "h:5060" }, false,
			func(m *storepb.RecordV3) bool { return m.TargetText == "h:5060" }},
		{"the registry's Call-ID", func(r *registration.Record) { r.CallID = "00ff@sipreg" }, true,
			func(m *storepb.RecordV3) bool { return string(m.CallId) == "\x00\xff" }},
		{"Call-ID in upper case", func(r *registration.Record) { r.CallID = "00FF@sipreg" }, false,
			func(m *storepb.RecordV3) bool { return m.CallIdText == "00FF@sipreg" }},
		{"Call-ID of an odd number of digits", func(r *registration.Record) { r.CallID = "abc@sipreg" }, false,
			func(m *storepb.RecordV3) bool { return m.CallIdText == "abc@sipreg" }},
		{"Call-ID without digits", func(r *registration.Record) { r.CallID = "@sipreg" }, false,
			func(m *storepb.RecordV3) bool { return m.CallIdText == "@sipreg" }},
		{"Call-ID of another program", func(r *registration.Record) { r.CallID = "00ff@pbx" }, false,
			func(m *storepb.RecordV3) bool { return m.CallIdText == "00ff@pbx" }},
		{"hex From-tag", func(r *registration.Record) { r.FromTag = "0a" }, true,
			func(m *storepb.RecordV3) bool { return string(m.FromTag) == "\x0a" }},
		{"From-tag not hex", func(r *registration.Record) { r.FromTag = "tag-1" }, false,
			func(m *storepb.RecordV3) bool { return m.FromTagText == "tag-1" }},
		{"fingerprint not hex", func(r *registration.Record) { r.Fingerprint = "sha256:0a" }, false,
			func(m *storepb.RecordV3) bool { return m.FingerprintText == "sha256:0a" }},
		{"every state", func(r *registration.Record) {}, true, func(m *storepb.RecordV3) bool { return m.StateText == "" }},
		{"a state this release does not know", func(r *registration.Record) { r.State = "paused" }, false,
			func(m *storepb.RecordV3) bool { return m.StateText == "paused" && m.State == 0 }},
		{"an action this release does not know", func(r *registration.Record) { r.NextAction = "wait" }, false,
			func(m *storepb.RecordV3) bool { return m.NextActionText == "wait" && m.NextAction == 0 }},
		{"transport tcp", func(r *registration.Record) { r.Transport = "tcp" }, true,
			func(m *storepb.RecordV3) bool { return m.Transport == storepb.Transport_TRANSPORT_TCP }},
		{"transport in upper case", func(r *registration.Record) { r.Transport = "UDP" }, false,
			func(m *storepb.RecordV3) bool { return m.TransportText == "UDP" }},
		{"times near UpdatedAt", func(r *registration.Record) {
			r.UpdatedAt, r.ExpiresAt = updated, updated.Add(time.Hour)
		}, true, func(m *storepb.RecordV3) bool { return m.GetExpiresAt() == int64(time.Hour) }},
		{"a time at UpdatedAt", func(r *registration.Record) { r.UpdatedAt, r.NextActionAt = updated, updated }, true,
			func(m *storepb.RecordV3) bool { return m.NextActionAt != nil && *m.NextActionAt == 0 }},
		{"times without UpdatedAt count from the Unix epoch", func(r *registration.Record) {
			r.UpdatedAt, r.ExpiresAt = time.Time{}, time.Unix(0, 5)
		}, true, func(m *storepb.RecordV3) bool { return m.UpdatedAt == nil && m.GetExpiresAt() == 5 }},
		{"a time centuries from UpdatedAt", func(r *registration.Record) {
			r.UpdatedAt, r.RegisteredSince = updated, time.Date(1700, 1, 1, 0, 0, 0, 1, time.UTC)
		}, false, func(m *storepb.RecordV3) bool { return m.RegisteredSince == nil && m.RegisteredSinceWide != nil }},
		{"UpdatedAt beyond 64 bits of nanoseconds", func(r *registration.Record) {
			r.UpdatedAt, r.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 1, 0, 0, 0, time.UTC)
		}, false, func(m *storepb.RecordV3) bool {
			return m.UpdatedAt == nil && m.UpdatedAtWide != nil && m.GetExpiresAt() == int64(time.Hour)
		}},
		{"the ends of 64 bits of nanoseconds", func(r *registration.Record) {
			r.UpdatedAt = time.Unix(0, math.MaxInt64)
			r.ExpiresAt = r.UpdatedAt.Add(math.MinInt64).Add(-1)
			r.NextActionAt = r.UpdatedAt.Add(math.MinInt64)
		}, false, func(m *storepb.RecordV3) bool {
			return m.GetUpdatedAt() == math.MaxInt64 && m.ExpiresAtWide != nil && m.GetNextActionAt() == math.MinInt64
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := typicalRecord()
			tc.edit(&rec)
			want := rec
			for _, p := range []*time.Time{&want.ExpiresAt, &want.RegisteredSince, &want.NextActionAt, &want.UpdatedAt} {
				*p = p.UTC()
			}
			m, value := encodeV3(t, rec)
			if !tc.form(m) {
				t.Errorf("not in the %s form: %v", map[bool]string{true: "short", false: "long"}[tc.short], m)
			}
			if got, err := recordfmt.Decode(value); err != nil || got != want {
				t.Errorf("Decode = %+v, %v\nwant %+v", got, err, want)
			}
		})
	}
	for _, s := range registration.States {
		rec := typicalRecord()
		rec.State = s
		if m, _ := encodeV3(t, rec); m.State == 0 || m.StateText != "" {
			t.Errorf("state %s: %v, %q", s, m.State, m.StateText)
		}
	}
}

// TestDecodeRecordBadV3 reads values of version 3 that Encode never
// writes: each fails with ErrCorrupt, an error that names the field, and no
// prefix of a good value panics.
func TestDecodeRecordBadV3(t *testing.T) {
	v3 := func(m *storepb.RecordV3) []byte {
		m.TrunkRef = "t"
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{3}, b...)
	}
	n := func(v int64) *int64 { return &v }
	const bad = "corrupt registration record: "
	for _, tc := range []struct {
		name, wantErr string
		value         []byte
	}{
		{"both forms of the AOR", bad + `aor: both "u@h" and "sip:u@h"`, v3(&storepb.RecordV3{Aor: "u@h", AorText: "sip:u@h"})},
		{"both forms of the target", bad + `target: both port 5060 and "h:5060"`,
			v3(&storepb.RecordV3{Aor: "u@h", TargetPort: 5060, TargetText: "h:5060"})},
		{"a target port without an AOR", bad + `target: port 5060 of an AOR without a host ("")`,
			v3(&storepb.RecordV3{TargetPort: 5060})},
		{"a target port with an AOR not sip:", bad + `target: port 5060 of an AOR without a host ("tel:1")`,
			v3(&storepb.RecordV3{AorText: "tel:1", TargetPort: 5060})},
		{"both forms of the state", bad + `state: both STATE_REGISTERED and "registered"`,
			v3(&storepb.RecordV3{State: storepb.State_STATE_REGISTERED, StateText: "registered"})},
		{"an unknown state", bad + "state: unknown value 9", v3(&storepb.RecordV3{State: 9})},
		{"a negative state", bad + "state: unknown value -1", v3(&storepb.RecordV3{State: -1})},
		{"an unknown action", bad + "nextAction: unknown value 6", v3(&storepb.RecordV3{NextAction: 6})},
		{"an unknown transport", bad + "transport: unknown value 3", v3(&storepb.RecordV3{Transport: 3})},
		{"both forms of the Call-ID", bad + `callId: both 00 and "00@sipreg"`,
			v3(&storepb.RecordV3{CallId: []byte{0}, CallIdText: "00@sipreg"})},
		{"both forms of the From-tag", bad + `fromTag: both 01 and "x"`, v3(&storepb.RecordV3{FromTag: []byte{1}, FromTagText: "x"})},
		{"both forms of the fingerprint", bad + `fingerprint: both 01 and "x"`,
			v3(&storepb.RecordV3{Fingerprint: []byte{1}, FingerprintText: "x"})},
		{"both forms of a time", bad + "expiresAt: both 1 ns and 1970-01-01 00:00:00 +0000 UTC",
			v3(&storepb.RecordV3{ExpiresAt: n(1), ExpiresAtWide: &timestamppb.Timestamp{}})},
		{"a time after year 9999", bad + "nextActionAt: time outside years 0-9999",
			v3(&storepb.RecordV3{UpdatedAtWide: &timestamppb.Timestamp{Seconds: 253402300799}, NextActionAt: n(1e9)})},
		{"a time before year 0", bad + "registeredSince: time outside years 0-9999",
			v3(&storepb.RecordV3{UpdatedAtWide: &timestamppb.Timestamp{Seconds: -62167219200}, RegisteredSince: n(-1)})},
		{"a wide time after year 9999", bad + "updatedAt: time outside years 0-9999",
			v3(&storepb.RecordV3{UpdatedAtWide: &timestamppb.Timestamp{Seconds: 253402300800}})},
		{"a wide time with a second of nanoseconds", bad + "expiresAt: time with 1000000000 nanoseconds",
			v3(&storepb.RecordV3{ExpiresAtWide: &timestamppb.Timestamp{Nanos: 1e9}})},
		{"the first of two errors", bad + "state: unknown value 9",
			v3(&storepb.RecordV3{State: 9, NextAction: 9})},
		{"a known field of another wire type", bad + "unreadable record: field cseq with wire type 5",
			[]byte("\x03\x0a\x01t\x45\x01\x02\x03\x04")},
		{"a time of another wire type", bad + "unreadable record: field updated_at with wire type 2",
			[]byte("\x03\x0a\x01t\x52\x01\x00")},
		{"an unknown field cut short", bad + "unreadable record: ", []byte("\x03\x0a\x01t\xf8\x3e")},
	} {
		got, err := recordfmt.Decode(tc.value)
		if err == nil || !errors.Is(err, recordfmt.ErrCorrupt) || errors.Is(err, recordfmt.ErrUnknownVersion) ||
			!strings.HasPrefix(err.Error(), tc.wantErr) || got != (registration.Record{}) {
			t.Errorf("%s: Decode(%x) = %+v, %v; want %q", tc.name, tc.value, got, err, tc.wantErr)
		}
	}
	good := mustHex(t, fixtureV3)
	for n := range len(good) {
		rec, err := recordfmt.Decode(good[:n])
		if err != nil && !errors.Is(err, recordfmt.ErrCorrupt) {
			t.Errorf("Decode of %d bytes: %v, not ErrCorrupt", n, err)
		}
		if err == nil && rec == fixtureRecord() {
			t.Errorf("Decode of %d bytes of %d read the whole record", n, len(good))
		}
	}
}
