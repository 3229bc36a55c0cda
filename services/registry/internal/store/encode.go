package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/registration"
)

// RecordVersion is the format version of the records the Redis store writes:
// the first byte of each value, followed by the record as a protobuf message
// (sipreg.registry.store.v1.Record, proto/sipreg/registry/store/v1/record.proto).
//
// Version 1 was JSON: the fields of registration.Record with "v":1, or, written
// before versions existed, without "v". DecodeRecord still reads it, so that
// records written by an older release load; EncodeRecord no longer writes it.
//
// A JSON text never starts with a byte below 0x20 other than its whitespace
// (tab, line feed, carriage return), so such a first byte, from 1 to 31, is a
// format version: RecordVersion is read, any other is an unknown version
// (ErrUnknownVersion), as is a JSON value whose "v" is not 1. Every other
// value (a first byte 0 included) is read as JSON.
//
// EncodeRecord writes version 2. The release before wrote version 1 but read
// version 2 already, so that old and new replicas can run side by side during
// a rolling upgrade. The cluster package's change feed carries stored values
// as they are, in a length-prefixed frame (see cluster/changefeed): no part
// of the cluster reads a stored value as JSON, in Go or in Lua.
//
// Version 2 is protobuf rather than a hand-written binary layout: a typical
// record takes 44% of its JSON (314 bytes, see encode_v2_test.go), and the library
// brings the framing, the bounds checks on untrusted input and a schema that
// can grow. Numbers are varints, so small ones take a byte or two; a field
// left at its zero value takes nothing.
const RecordVersion = 2

// jsonVersion is the format version of the JSON records (see RecordVersion).
const jsonVersion = 1

// writeVersion is the format version EncodeRecord writes: RecordVersion.
// Setting it to jsonVersion writes the JSON of version 1 again (a one-line
// rollback, should a release that reads no version 2 have to run next to this
// one); tests set it, nothing else changes it.
var writeVersion = RecordVersion

// storedRecord is the value of version 1 EncodeRecord wrote (see writeVersion):
// "v" first, then the fields of the record.
type storedRecord struct {
	V int `json:"v"`
	registration.Record
}

// readRecord is what DecodeRecord reads of a JSON value: V is nil when the
// value has no "v".
type readRecord struct {
	V *int `json:"v"`
	registration.Record
}

// EncodeRecord returns the value the Redis store keeps for rec (the byte
// RecordVersion followed by the record as protobuf, every time in UTC; see
// writeVersion) and the TTL it is written with at now: grace after the later
// of ExpiresAt and NextActionAt, never less than grace, rounded up to the
// millisecond. Put and PutMany write exactly this; a writer of its own (the
// cluster package's fenced writes) uses it to stay readable by Get and List.
// The value is binary: any byte, NUL included, may occur in it. It fails on a record with an empty TrunkRef
// and on one that cannot be encoded (a time outside years 0-9999, the range
// the JSON of version 1 had).
func EncodeRecord(rec registration.Record, now time.Time, grace time.Duration) (value []byte, ttl time.Duration, err error) {
	if rec.TrunkRef == "" {
		return nil, 0, fmt.Errorf("encode: %w", errEmptyTrunkRef)
	}
	if writeVersion == jsonVersion {
		value, err = json.Marshal(storedRecord{V: jsonVersion, Record: normalize(rec)})
	} else {
		value, err = encodeV2(rec)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return value, recordTTL(rec, now, grace), nil
}

// encodeV2 is the value of version 2 of rec.
func encodeV2(rec registration.Record) ([]byte, error) {
	m, err := recordToProto(rec)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{}.MarshalAppend([]byte{RecordVersion}, m)
}

// recordTTL is how long Redis keeps rec written at now: until grace after the
// later of ExpiresAt and NextActionAt, and never less than grace. It is rounded
// up to the millisecond, Redis's unit.
func recordTTL(rec registration.Record, now time.Time, grace time.Duration) time.Duration {
	last := rec.ExpiresAt
	if rec.NextActionAt.After(last) {
		last = rec.NextActionAt
	}
	ttl := grace
	if left := last.Sub(now); left > 0 {
		ttl += left
	}
	if rem := ttl % time.Millisecond; rem != 0 {
		ttl += time.Millisecond - rem
	}
	return ttl
}

// DecodeRecord reads back a value EncodeRecord wrote, or one of version 1
// (JSON, with "v":1 or without "v") an older release wrote. It reads no value
// of another version: the error then wraps ErrUnknownVersion, whichever fields
// the value holds. Every error wraps ErrCorrupt; no input makes it panic. It
// does not check which trunk the record is of.
//
// A record of version 2 comes back with every time in UTC, without a monotonic
// reading; fields this release does not know (written by a newer one) are
// ignored. One of version 1 comes back as before.
func DecodeRecord(value []byte) (registration.Record, error) {
	if len(value) > 0 && isVersionByte(value[0]) {
		if value[0] != RecordVersion {
			return registration.Record{}, unknownVersion(int(value[0]))
		}
		var m storepb.Record
		if err := proto.Unmarshal(value[1:], &m); err != nil {
			return registration.Record{}, fmt.Errorf("%w: unreadable record: %w", ErrCorrupt, err)
		}
		if err := checkUnknown(&m); err != nil {
			return registration.Record{}, fmt.Errorf("%w: unreadable record: %w", ErrCorrupt, err)
		}
		rec, err := recordFromProto(&m)
		if err != nil {
			return registration.Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return rec, nil
	}
	return decodeJSON(value)
}

// isVersionByte reports whether b, the first byte of a value, is a format
// version rather than the start of a JSON text (see RecordVersion).
func isVersionByte(b byte) bool {
	return 0 < b && b < 0x20 && b != '\t' && b != '\n' && b != '\r'
}

// decodeJSON reads a record of version 1.
func decodeJSON(value []byte) (registration.Record, error) {
	var v readRecord
	if err := json.Unmarshal(value, &v); err != nil {
		// Another version's fields may not fit this Record: say so when "v"
		// can be read.
		var probe struct {
			V *int `json:"v"`
		}
		if json.Unmarshal(value, &probe) == nil && probe.V != nil && *probe.V != jsonVersion {
			return registration.Record{}, unknownVersion(*probe.V)
		}
		return registration.Record{}, fmt.Errorf("%w: unreadable JSON: %w", ErrCorrupt, err)
	}
	if v.V != nil && *v.V != jsonVersion {
		return registration.Record{}, unknownVersion(*v.V)
	}
	return v.Record, nil
}

// checkUnknown rejects a field of m the message knows by its number but that
// came with another wire type (protobuf keeps it aside as an unknown field): a
// value a newer release wrote may hold fields this one does not know, but not
// a known field of another type.
func checkUnknown(m *storepb.Record) error {
	fields := m.ProtoReflect().Descriptor().Fields()
	for b := m.ProtoReflect().GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if f := fields.ByNumber(num); f != nil {
			return fmt.Errorf("field %s with wire type %d", f.Name(), typ)
		}
		b = b[n:]
	}
	return nil
}

// recordToProto is rec as the message of version 2, its times checked.
func recordToProto(rec registration.Record) (*storepb.Record, error) {
	var err error
	ts := func(name string, t time.Time) *timestamppb.Timestamp {
		p, e := timeToProto(t)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return p
	}
	m := &storepb.Record{
		TrunkRef:         rec.TrunkRef,
		TrunkName:        rec.TrunkName,
		Aor:              rec.AOR,
		Target:           rec.Target,
		Transport:        rec.Transport,
		EdgePort:         rec.EdgePort,
		Fingerprint:      rec.Fingerprint,
		State:            string(rec.State),
		CallId:           rec.CallID,
		FromTag:          rec.FromTag,
		Cseq:             rec.CSeq,
		CseqCeiling:      rec.CSeqCeiling,
		RequestedExpires: int64(rec.RequestedExpires),
		MinExpires:       int64(rec.MinExpires),
		NoGin:            rec.NoGin,
		GrantedExpires:   int64(rec.GrantedExpires),
		ExpiresAt:        ts("expiresAt", rec.ExpiresAt),
		RegisteredSince:  ts("registeredSince", rec.RegisteredSince),
		NextAction:       string(rec.NextAction),
		NextActionAt:     ts("nextActionAt", rec.NextActionAt),
		LastResponseCode: int64(rec.LastResponseCode),
		LastResponseType: rec.LastResponseType,
		LastReason:       rec.LastReason,
		LastError:        rec.LastError,
		Failures:         int64(rec.Failures),
		Owner:            rec.Owner,
		Fence:            rec.Fence,
		UpdatedAt:        ts("updatedAt", rec.UpdatedAt),
	}
	return m, err
}

// recordFromProto is the record m of version 2 holds, checked as EncodeRecord
// checks it, so that whatever decodes encodes again.
func recordFromProto(m *storepb.Record) (registration.Record, error) {
	var err error
	num := func(name string, n int64) int {
		if int64(int(n)) != n && err == nil {
			err = fmt.Errorf("%s: %d does not fit an int", name, n)
		}
		return int(n)
	}
	ts := func(name string, p *timestamppb.Timestamp) time.Time {
		t, e := timeFromProto(p)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return t
	}
	rec := registration.Record{
		TrunkRef:         m.GetTrunkRef(),
		TrunkName:        m.GetTrunkName(),
		AOR:              m.GetAor(),
		Target:           m.GetTarget(),
		Transport:        m.GetTransport(),
		EdgePort:         m.GetEdgePort(),
		Fingerprint:      m.GetFingerprint(),
		State:            registration.State(m.GetState()),
		CallID:           m.GetCallId(),
		FromTag:          m.GetFromTag(),
		CSeq:             m.GetCseq(),
		CSeqCeiling:      m.GetCseqCeiling(),
		RequestedExpires: num("requestedExpires", m.GetRequestedExpires()),
		MinExpires:       num("minExpires", m.GetMinExpires()),
		NoGin:            m.GetNoGin(),
		GrantedExpires:   num("grantedExpires", m.GetGrantedExpires()),
		ExpiresAt:        ts("expiresAt", m.GetExpiresAt()),
		RegisteredSince:  ts("registeredSince", m.GetRegisteredSince()),
		NextAction:       registration.Action(m.GetNextAction()),
		NextActionAt:     ts("nextActionAt", m.GetNextActionAt()),
		LastResponseCode: num("lastResponseCode", m.GetLastResponseCode()),
		LastResponseType: m.GetLastResponseType(),
		LastReason:       m.GetLastReason(),
		LastError:        m.GetLastError(),
		Failures:         num("failures", m.GetFailures()),
		Owner:            m.GetOwner(),
		Fence:            m.GetFence(),
		UpdatedAt:        ts("updatedAt", m.GetUpdatedAt()),
	}
	if err != nil {
		return registration.Record{}, err
	}
	return rec, nil
}

// The range of the times a record holds: years 0-9999, as in the JSON of
// version 1 (RFC 3339).
var (
	minUnix = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxUnix = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Unix() - 1
)

// errTimeRange rejects a time outside years 0-9999.
var errTimeRange = errors.New("time outside years 0-9999")

// timeToProto is t as a Timestamp: nil for the zero time, which is how the zero
// time is told from any other (the Unix epoch is an empty, present Timestamp).
func timeToProto(t time.Time) (*timestamppb.Timestamp, error) {
	if t.IsZero() {
		return nil, nil
	}
	s := t.Unix()
	if s < minUnix || s > maxUnix {
		return nil, fmt.Errorf("%w: %v", errTimeRange, t)
	}
	return &timestamppb.Timestamp{Seconds: s, Nanos: int32(t.Nanosecond())}, nil
}

// timeFromProto is the time p holds, in UTC: the zero time for nil.
func timeFromProto(p *timestamppb.Timestamp) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	s, n := p.GetSeconds(), p.GetNanos()
	if s < minUnix || s > maxUnix {
		return time.Time{}, fmt.Errorf("%w: %d seconds", errTimeRange, s)
	}
	if n < 0 || n >= 1e9 {
		return time.Time{}, fmt.Errorf("time with %d nanoseconds", n)
	}
	return time.Unix(s, int64(n)).UTC(), nil
}

// unknownVersion is the error of a record of version v, which this code does
// not read.
func unknownVersion(v int) error {
	return fmt.Errorf("%w: %w %d", ErrCorrupt, ErrUnknownVersion, v)
}
