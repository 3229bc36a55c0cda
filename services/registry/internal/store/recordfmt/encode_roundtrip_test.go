package recordfmt_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

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

// writeVersions are the format versions Encode can write in protobuf:
// Version, and version 2 for a rollback (see writeVersion). The round
// trips below run with each.
var writeVersions = []int{recordfmt.Version, recordfmt.ProtoV2Version}

// forEachVersion runs f once for each of writeVersions, with Encode
// writing that version.
func forEachVersion(t *testing.T, f func(t *testing.T)) {
	for _, v := range writeVersions {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			recordfmt.WriteVersion(t, v)
			f(t)
		})
	}
}

// TestEncodeRecordEveryField round-trips a record whose every field is set, and
// one for each field with that field alone at its zero value: no field is lost
// and a zero value stays zero. everyField's strings take the long forms of
// version 3, fixtureRecord's its short forms.
func TestEncodeRecordEveryField(t *testing.T) {
	forEachVersion(t, testEveryField)
}

func testEveryField(t *testing.T) {
	check := func(name string, rec registration.Record) {
		t.Helper()
		value, _, err := recordfmt.Encode(rec, fixedClock, time.Hour)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		got, err := recordfmt.Decode(value)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
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
	check("every field, other values", everyField(t, 7))
	for kind, full := range map[string]registration.Record{"long forms": everyField(t, 0), "short forms": fixtureRecord()} {
		check(kind+", every field", full)
		v := reflect.ValueOf(full)
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if name == "TrunkRef" {
				continue // never empty
			}
			rec := full
			reflect.ValueOf(&rec).Elem().Field(i).SetZero()
			check(kind+", zero "+name, rec)
		}
	}
	check("only the trunk ref", registration.Record{TrunkRef: "t"})
}

// TestEncodeRecordEdgeValues round-trips the extremes of each kind of field.
func TestEncodeRecordEdgeValues(t *testing.T) {
	forEachVersion(t, testEdgeValues)
}

func testEdgeValues(t *testing.T) {
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
			value, _, err := recordfmt.Encode(tc.rec, fixedClock, time.Hour)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := recordfmt.Decode(value)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != want {
				t.Errorf("Decode = %+v\nwant %+v", got, want)
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
		if _, _, err := recordfmt.Encode(rec, fixedClock, time.Hour); err == nil ||
			!strings.HasPrefix(err.Error(), "encode: nextActionAt: time outside years 0-9999") {
			t.Errorf("Encode with NextActionAt %v: %v", bad, err)
		}
	}
}
