package store_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
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
// version 1 with "v":1, the older one without "v", and version 2 (hex), as
// EncodeRecord first wrote it. The same values seed FuzzDecodeRecord
// (testdata/fuzz/FuzzDecodeRecord).
const (
	fixtureV0 = `{"trunkRef":"trunk-fixture","trunkName":"Fixture trunk","aor":"sip:alice@sip.example.net","target":"sip.example.net:5080","transport":"tcp","edgePort":"edgeport-01:5060","fingerprint":"9f86d081884c7d65","state":"registered","callId":"0123456789abcdef0123456789abcdef@sipreg","fromTag":"0123456789abcdef","cseq":7,"cseqCeiling":106,"requestedExpires":3600,"minExpires":1800,"noGin":true,"grantedExpires":1800,"expiresAt":"2026-11-23T10:30:00.123456789Z","registeredSince":"2026-11-21T10:00:00.123456789Z","nextAction":"refresh","nextActionAt":"2026-11-23T10:27:00.123456789Z","lastResponseCode":200,"lastResponseType":"OK","lastReason":"OK ünïcode","lastError":"earlier: 503 Service Unavailable","failures":2,"owner":"registry-7d9f-0","fence":42,"updatedAt":"2026-11-23T10:00:00.123456789Z"}`
	fixtureV1 = `{"v":1,"trunkRef":"trunk-fixture","trunkName":"Fixture trunk","aor":"sip:alice@sip.example.net","target":"sip.example.net:5080","transport":"tcp","edgePort":"edgeport-01:5060","fingerprint":"9f86d081884c7d65","state":"registered","callId":"0123456789abcdef0123456789abcdef@sipreg","fromTag":"0123456789abcdef","cseq":7,"cseqCeiling":106,"requestedExpires":3600,"minExpires":1800,"noGin":true,"grantedExpires":1800,"expiresAt":"2026-11-23T10:30:00.123456789Z","registeredSince":"2026-11-21T10:00:00.123456789Z","nextAction":"refresh","nextActionAt":"2026-11-23T10:27:00.123456789Z","lastResponseCode":200,"lastResponseType":"OK","lastReason":"OK ünïcode","lastError":"earlier: 503 Service Unavailable","failures":2,"owner":"registry-7d9f-0","fence":42,"updatedAt":"2026-11-23T10:00:00.123456789Z"}`
	fixtureV2 = "020a0d7472756e6b2d6669787475726512197369703a616c696365407369702e6578616d706c652e6e65741a147369702e6578616d706c652e6e65743a3530383022037463702a0a7265676973746572656432273031323334353637383961626364656630313233343536373839616263646566407369707265673a103031323334353637383961626364656640074a0772656672657368520b08f4a990d80610959aef3a5a0b08a09d90d80610959aef3a620b08a8ab90d80610959aef3a6a1039663836643038313838346337643635720f72656769737472792d376439662d30782a82010d46697874757265207472756e6b8a011065646765706f72742d30313a3530363090016a9801901ca001880ea80101b001880eba010b08a0d785d80610959aef3ac001c801ca01024f4bd2010c4f4b20c3bc6ec3af636f6465da01206561726c6965723a20353033205365727669636520556e617661696c61626c65e00102"
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
	} {
		got, err := store.DecodeRecord(value)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != want {
			t.Errorf("%s: DecodeRecord = %+v\nwant %+v", name, got, want)
		}
	}
	// EncodeRecord writes version 2 only.
	value, _, err := store.EncodeRecord(want, fixedClock, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.DecodeRecord(value); err != nil || got != want || value[0] != 2 {
		t.Errorf("EncodeRecord = %x: %+v, %v", value, got, err)
	}
}

// everyField returns a record whose every field is set, to a value of its own,
// through reflection: a field added to registration.Record later is set too,
// so a round trip that loses it fails. seed varies the values.
func everyField(t testing.TB, seed int) registration.Record {
	t.Helper()
	var rec registration.Record
	v := reflect.ValueOf(&rec).Elem()
	timeType := reflect.TypeFor[time.Time]()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		n := int64(1000*seed + i + 1)
		switch {
		case f.Type() == timeType:
			f.Set(reflect.ValueOf(time.Date(2026+i, time.Month(1+i%12), 1+i, i, i, i, 1000*i+seed+1, time.UTC)))
		case f.Kind() == reflect.String:
			f.SetString(name + "-value-" + string(rune('a'+seed%26)))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(n)
		case f.CanUint():
			f.SetUint(uint64(n))
		default:
			t.Fatalf("registration.Record.%s is a %s: teach everyField and the encoding about it", name, f.Type())
		}
		if f.IsZero() {
			t.Fatalf("everyField left %s zero", name)
		}
	}
	return rec
}

// TestEncodeRecordEveryField round-trips a record whose every field is set, and
// one for each field with that field alone at its zero value: no field is lost
// and a zero value stays zero.
func TestEncodeRecordEveryField(t *testing.T) {
	check := func(name string, rec registration.Record) {
		t.Helper()
		value, _, err := store.EncodeRecord(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatalf("%s: EncodeRecord: %v", name, err)
		}
		got, err := store.DecodeRecord(value)
		if err != nil {
			t.Fatalf("%s: DecodeRecord: %v", name, err)
		}
		if got != rec {
			g, w := reflect.ValueOf(got), reflect.ValueOf(rec)
			for i := range g.NumField() {
				if !g.Field(i).Equal(w.Field(i)) {
					t.Errorf("%s: %s = %v, want %v", name, g.Type().Field(i).Name, g.Field(i), w.Field(i))
				}
			}
		}
	}
	full := everyField(t, 0)
	check("every field", full)
	check("every field, other values", everyField(t, 7))
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "TrunkRef" {
			continue // never empty
		}
		rec := full
		reflect.ValueOf(&rec).Elem().Field(i).SetZero()
		check("zero "+name, rec)
	}
	check("only the trunk ref", registration.Record{TrunkRef: "t"})
}

// TestEncodeRecordEdgeValues round-trips the extremes of each kind of field.
func TestEncodeRecordEdgeValues(t *testing.T) {
	zone := time.FixedZone("UTC-12", -12*3600)
	for _, tc := range []struct {
		name string
		rec  registration.Record
		// want is rec as it comes back; rec itself when zero.
		want registration.Record
	}{
		{name: "largest numbers", rec: registration.Record{
			TrunkRef: "t", CSeq: 1<<32 - 1, CSeqCeiling: 1<<32 - 1, RequestedExpires: 1<<63 - 1,
			MinExpires: 1<<63 - 1, GrantedExpires: 1<<63 - 1, LastResponseCode: 1<<63 - 1, Failures: 1<<63 - 1,
			Fence: 1<<63 - 1,
		}},
		{name: "negative numbers", rec: registration.Record{
			TrunkRef: "t", RequestedExpires: -1 << 63, MinExpires: -1, GrantedExpires: -1,
			LastResponseCode: -1, Failures: -1, Fence: -1 << 63,
		}},
		{name: "strings not UTF-8 kept byte for byte", rec: registration.Record{
			TrunkRef: "t\xff", LastReason: "bad \xc3\x28 utf8", LastError: "\x00\x01\x02", State: "\xfe",
		}},
		{name: "the Unix epoch is not the zero time", rec: registration.Record{
			TrunkRef: "t", ExpiresAt: time.Unix(0, 0).UTC(), UpdatedAt: time.Unix(0, 1).UTC(),
			NextActionAt: time.Unix(-1, 999999999).UTC(),
		}},
		{name: "times at the ends of years 0-9999", rec: registration.Record{
			TrunkRef:        "t",
			ExpiresAt:       time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
			RegisteredSince: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			NextActionAt:    time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		}},
		{name: "zone and monotonic reading dropped", rec: registration.Record{
			TrunkRef: "t", UpdatedAt: time.Now().In(zone), ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 5, zone),
		}},
		{name: "the zero instant in another zone is the zero time",
			rec:  registration.Record{TrunkRef: "t", UpdatedAt: time.Time{}.In(zone)},
			want: registration.Record{TrunkRef: "t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == (registration.Record{}) {
				want = tc.rec
				for _, p := range []*time.Time{&want.ExpiresAt, &want.RegisteredSince, &want.NextActionAt, &want.UpdatedAt} {
					*p = p.UTC().Round(-1)
				}
			}
			value, _, err := store.EncodeRecord(tc.rec, fixedClock, time.Hour)
			if err != nil {
				t.Fatalf("EncodeRecord: %v", err)
			}
			got, err := store.DecodeRecord(value)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if got != want {
				t.Errorf("DecodeRecord = %+v\nwant %+v", got, want)
			}
			if !got.ExpiresAt.IsZero() && got.ExpiresAt.Location() != time.UTC {
				t.Errorf("ExpiresAt in %v", got.ExpiresAt.Location())
			}
		})
	}
	for _, bad := range []time.Time{
		time.Date(-1, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 0, 0, 0, zone), // year 10000 in UTC
	} {
		rec := registration.Record{TrunkRef: "t", NextActionAt: bad}
		if _, _, err := store.EncodeRecord(rec, fixedClock, time.Hour); err == nil ||
			!strings.HasPrefix(err.Error(), "encode: nextActionAt: time outside years 0-9999") {
			t.Errorf("EncodeRecord with NextActionAt %v: %v", bad, err)
		}
	}
}

// TestDecodeRecordBadV2 reads values of version 2 that EncodeRecord never
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
		got, err := store.DecodeRecord(tc.value)
		if err == nil || !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrUnknownVersion) ||
			!strings.HasPrefix(err.Error(), tc.wantErr) || got != (registration.Record{}) {
			t.Errorf("%s: DecodeRecord(%x) = %+v, %v; want %q", tc.name, tc.value, got, err, tc.wantErr)
		}
	}
	good := mustHex(t, fixtureV2)
	for n := range len(good) {
		rec, err := store.DecodeRecord(good[:n])
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("DecodeRecord of %d bytes: %v, not ErrCorrupt", n, err)
		}
		if err == nil && rec == fixtureRecord() {
			t.Errorf("DecodeRecord of %d bytes of %d read the whole record", n, len(good))
		}
	}
}

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

// v1JSON is rec as EncodeRecord wrote it with format version 1.
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

// maxTypicalValue bounds the value of a typical record: a regression guard at
// the jemalloc size class it takes today (320 bytes; 314 measured, MEMORY
// USAGE 408 with a 32-byte key). Issue 12 (at most 400 bytes of Redis memory
// per trunk, key and overhead included) needs the next class down: a value of
// at most 252 bytes (256 with the string's header), which this format does
// not reach yet.
const maxTypicalValue = 320

// TestEncodeRecordTypicalSize measures the value of a typical record in both
// formats; version 2 must stay below maxTypicalValue.
func TestEncodeRecordTypicalSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  registration.Record
		max  int
	}{
		{"typical", typicalRecord(), maxTypicalValue},
		{"long names", longRecord(), 2 * maxTypicalValue},
	} {
		value, _, err := store.EncodeRecord(tc.rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := store.DecodeRecord(value); err != nil || got != tc.rec {
			t.Fatalf("%s: DecodeRecord = %+v, %v", tc.name, got, err)
		}
		t.Logf("%s record: %d bytes (version 2), %d bytes (JSON, version 1)", tc.name, len(value), len(v1JSON(t, tc.rec)))
		if len(value) > tc.max {
			t.Errorf("%s record takes %d bytes, want at most %d", tc.name, len(value), tc.max)
		}
	}
}

// TestRedisMemoryUsage stores a typical record in the real Redis in both
// formats and logs what MEMORY USAGE says of each key (no assertion on it: it
// depends on the server's allocator).
func TestRedisMemoryUsage(t *testing.T) {
	srv := redistest.Real(t)
	ctx := t.Context()
	for _, rec := range []registration.Record{typicalRecord(), longRecord()} {
		v2, ttl, err := store.EncodeRecord(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		usage := map[string]int64{}
		for _, f := range []struct {
			name  string
			value []byte
		}{{"v1", v1JSON(t, rec)}, {"v2", v2}} {
			// A key of the length the store writes (DefaultPrefix and the
			// ref), MEMORY USAGE counting the key too: the start of the
			// test's own prefix, as long as DefaultPrefix. It is deleted
			// below and, should the test stop before, when it ends.
			key := srv.Prefix[:len(store.DefaultPrefix)-1] + ":" + rec.TrunkRef
			t.Cleanup(func() { srv.Client.Del(context.Background(), key) })
			if err := srv.Client.Set(ctx, key, f.value, ttl).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := srv.Client.MemoryUsage(ctx, key).Result()
			if err != nil {
				t.Fatalf("MEMORY USAGE: %v", err)
			}
			usage[f.name] = n
			t.Logf("%s %s: value %d bytes, key %d bytes, MEMORY USAGE %d bytes",
				rec.TrunkRef, f.name, len(f.value), len(key), n)
			if err := srv.Client.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if usage["v2"] >= usage["v1"] {
			t.Errorf("%s: MEMORY USAGE of version 2 %d bytes, of version 1 %d", rec.TrunkRef, usage["v2"], usage["v1"])
		}
	}
}
