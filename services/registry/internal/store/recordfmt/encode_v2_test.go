package recordfmt_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// fixtureRecord is the record the fixtures below hold: every field set.
func fixtureRecord() registration.Record {
	base := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	return registration.Record{
		TrunkRef: "trunk-fixture", TrunkName: "Fixture trunk", AOR: "sip:alice@sip.example.net",
		Target: "sip.example.net:5080", Transport: "tcp", EdgePort: "edgeport-01:5060",
		Fingerprint: "9f86d081884c7d65", State: registration.StateRegistered,
		CallID: "0123456789abcdef0123456789abcdef@sipreg", FromTag: "0123456789abcdef",
		CSeq: 7, CSeqCeiling: 106, RequestedExpires: 3600, MinExpires: 1800, NoGin: true,
		GrantedExpires: 1800, ExpiresAt: base.Add(30 * time.Minute), RegisteredSince: base.Add(-48 * time.Hour),
		NextAction: registration.ActionRefresh, NextActionAt: base.Add(27 * time.Minute),
		LastResponseCode: 200, LastResponseType: "OK", LastReason: "OK ünïcode",
		LastError: "earlier: 503 Service Unavailable", Failures: 2, Owner: "registry-7d9f-0", Fence: 42,
		UpdatedAt: base,
	}
}

// The values of fixtureRecord as each format version wrote it: the JSON of
// version 1 with "v":1, the older one without "v", version 2 and version 3
// (hex, in its short forms), as Encode first wrote each. The same values seed FuzzDecodeRecord
// (testdata/fuzz/FuzzDecodeRecord).
const (
	fixtureV0 = `{"trunkRef":"trunk-fixture","trunkName":"Fixture trunk","aor":"sip:alice@sip.example.net","target":"sip.example.net:5080","transport":"tcp","edgePort":"edgeport-01:5060","fingerprint":"9f86d081884c7d65","state":"registered","callId":"0123456789abcdef0123456789abcdef@sipreg","fromTag":"0123456789abcdef","cseq":7,"cseqCeiling":106,"requestedExpires":3600,"minExpires":1800,"noGin":true,"grantedExpires":1800,"expiresAt":"2026-11-23T10:30:00.123456789Z","registeredSince":"2026-11-21T10:00:00.123456789Z","nextAction":"refresh","nextActionAt":"2026-11-23T10:27:00.123456789Z","lastResponseCode":200,"lastResponseType":"OK","lastReason":"OK ünïcode","lastError":"earlier: 503 Service Unavailable","failures":2,"owner":"registry-7d9f-0","fence":42,"updatedAt":"2026-11-23T10:00:00.123456789Z"}`
	fixtureV1 = `{"v":1,"trunkRef":"trunk-fixture","trunkName":"Fixture trunk","aor":"sip:alice@sip.example.net","target":"sip.example.net:5080","transport":"tcp","edgePort":"edgeport-01:5060","fingerprint":"9f86d081884c7d65","state":"registered","callId":"0123456789abcdef0123456789abcdef@sipreg","fromTag":"0123456789abcdef","cseq":7,"cseqCeiling":106,"requestedExpires":3600,"minExpires":1800,"noGin":true,"grantedExpires":1800,"expiresAt":"2026-11-23T10:30:00.123456789Z","registeredSince":"2026-11-21T10:00:00.123456789Z","nextAction":"refresh","nextActionAt":"2026-11-23T10:27:00.123456789Z","lastResponseCode":200,"lastResponseType":"OK","lastReason":"OK ünïcode","lastError":"earlier: 503 Service Unavailable","failures":2,"owner":"registry-7d9f-0","fence":42,"updatedAt":"2026-11-23T10:00:00.123456789Z"}`
	fixtureV2 = "020a0d7472756e6b2d6669787475726512197369703a616c696365407369702e6578616d706c652e6e65741a147369702e6578616d706c652e6e65743a3530383022037463702a0a7265676973746572656432273031323334353637383961626364656630313233343536373839616263646566407369707265673a103031323334353637383961626364656640074a0772656672657368520b08f4a990d80610959aef3a5a0b08a09d90d80610959aef3a620b08a8ab90d80610959aef3a6a1039663836643038313838346337643635720f72656769737472792d376439662d30782a82010d46697874757265207472756e6b8a011065646765706f72742d30313a3530363090016a9801901ca001880ea80101b001880eba010b08a0d785d80610959aef3ac001c801ca01024f4bd2010c4f4b20c3bc6ec3af636f6465da01206561726c6965723a20353033205365727669636520556e617661696c61626c65e00102"
	fixtureV3 = "030a0d7472756e6b2d666978747572651215616c696365407369702e6578616d706c652e6e657418d8272002280332100123456789abcdef0123456789abcdef3a080123456789abcdef4007480350aab4b0f29c90d2ea315880c0e285e3686080a0b2f8a55e6a089f86d081884c7d65720f72656769737472792d376439662d30782a82010d46697874757265207472756e6b8a011065646765706f72742d30313a3530363090016a9801901ca001880ea801ffffefa9a4ca4eb001c801ba01024f4bc2010c4f4b20c3bc6ec3af636f6465c801880ed00101da01206561726c6965723a20353033205365727669636520556e617661696c61626c65e00102"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeRecordFixtures reads the record of every format version: each
// comes back as the same record.
func TestDecodeRecordFixtures(t *testing.T) {
	want := fixtureRecord()
	for name, value := range map[string][]byte{
		"v0 JSON": []byte(fixtureV0),
		"v1 JSON": []byte(fixtureV1),
		"v2":      mustHex(t, fixtureV2),
		"v3":      mustHex(t, fixtureV3),
	} {
		got, err := recordfmt.Decode(value)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != want {
			t.Errorf("%s: Decode = %+v\nwant %+v", name, got, want)
		}
	}
	// Encode writes version 3 only, as it first did.
	value, _, err := recordfmt.Encode(want, fixedClock, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recordfmt.Decode(value); err != nil || got != want || value[0] != 3 {
		t.Errorf("Encode = %x: %+v, %v", value, got, err)
	}
}

// TestDecodeRecordBadV2 reads values of version 2 that Encode never
// writes: each fails with ErrCorrupt, and no prefix of a good value panics.
func TestDecodeRecordBadV2(t *testing.T) {
	v2 := func(m *storepb.Record) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{2}, b...)
	}
	for _, tc := range []struct {
		name, wantErr string
		value         []byte
	}{
		{"time before year 0", "corrupt registration record: updatedAt: time outside years 0-9999",
			v2(&storepb.Record{TrunkRef: "t", UpdatedAt: &timestamppb.Timestamp{Seconds: -62167219201}})},
		{"time after year 9999", "corrupt registration record: expiresAt: time outside years 0-9999",
			v2(&storepb.Record{TrunkRef: "t", ExpiresAt: &timestamppb.Timestamp{Seconds: 253402300800}})},
		{"negative nanoseconds", "corrupt registration record: nextActionAt: time with -1 nanoseconds",
			v2(&storepb.Record{TrunkRef: "t", NextActionAt: &timestamppb.Timestamp{Nanos: -1}})},
		{"a second of nanoseconds", "corrupt registration record: registeredSince: time with 1000000000 nanoseconds",
			v2(&storepb.Record{TrunkRef: "t", RegisteredSince: &timestamppb.Timestamp{Nanos: 1e9}})},
		{"a known field of another wire type", "corrupt registration record: unreadable record: field cseq with wire type 5",
			[]byte("\x02\x0a\x01t\x45\x01\x02\x03\x04")},
		{"an unknown field cut short", "corrupt registration record: unreadable record: ",
			[]byte("\x02\x0a\x01t\xf8\x3e")},
	} {
		got, err := recordfmt.Decode(tc.value)
		if err == nil || !errors.Is(err, recordfmt.ErrCorrupt) || errors.Is(err, recordfmt.ErrUnknownVersion) ||
			!strings.HasPrefix(err.Error(), tc.wantErr) || got != (registration.Record{}) {
			t.Errorf("%s: Decode(%x) = %+v, %v; want %q", tc.name, tc.value, got, err, tc.wantErr)
		}
	}
	good := mustHex(t, fixtureV2)
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
