package recordfmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"sipreg.dev/services/registry/internal/registration"
)

// Version is the format version of the records Encode writes (see
// writeVersion): the first byte of each value, followed by the record as a
// RecordV3. The package documentation tells the versions apart.
const Version = 3

// The earlier format versions (see Version).
const (
	jsonVersion    = 1
	protoV2Version = 2
)

// writeVersion is the format version Encode writes: Version. It is the
// rollback lever. Set to protoV2Version, Encode writes version 2, which the
// release before reads, while Decode still reads version 3: a build of this
// release with that one line changed, run until every record has
// been written again (each refresh writes its trunk's record), lets the release
// before take over with every binding kept. Set to jsonVersion, it writes the
// JSON of version 1, for a release older still. Tests set it; nothing else
// changes it.
var writeVersion = Version

// storedRecord is the value of version 1 Encode wrote (see writeVersion):
// "v" first, then the fields of the record.
type storedRecord struct {
	V int `json:"v"`
	registration.Record
}

// readRecord is what Decode reads of a JSON value: V is nil when the
// value has no "v".
type readRecord struct {
	V *int `json:"v"`
	registration.Record
}

// Encode returns the value the Redis store keeps for rec (the byte Version
// followed by the record as protobuf; see writeVersion) and the TTL it is
// written with at now: grace after the later of ExpiresAt and NextActionAt,
// never less than grace, rounded up to the millisecond (see TTL). The store's
// Put and PutMany write exactly this; a writer of its own (the cluster
// package's fenced writes) uses it to stay readable by the store's Get and
// List. The value is binary: any byte, NUL included, may occur in it. It fails
// on a record with an empty TrunkRef and on one that cannot be encoded (a time
// outside years 0-9999, the range the JSON of version 1 had).
func Encode(rec registration.Record, now time.Time, grace time.Duration) (value []byte, ttl time.Duration, err error) {
	if rec.TrunkRef == "" {
		return nil, 0, fmt.Errorf("encode: %w", errEmptyTrunkRef)
	}
	switch writeVersion {
	case jsonVersion:
		value, err = json.Marshal(storedRecord{V: jsonVersion, Record: normalize(rec)})
	case protoV2Version:
		value, err = encodeV2(rec)
	default:
		value, err = encodeV3(rec)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return value, TTL(rec, now, grace), nil
}

// TTL is how long Redis keeps rec written at now: until grace after the
// later of ExpiresAt and NextActionAt, and never less than grace. It is rounded
// up to the millisecond, Redis's unit.
func TTL(rec registration.Record, now time.Time, grace time.Duration) time.Duration {
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

// Decode reads back a value Encode wrote, or one of version 2 or 1
// (JSON, with "v":1 or without "v") an older release wrote. It reads no value
// of another version: the error then wraps ErrUnknownVersion, whichever fields
// the value holds. Every error wraps ErrCorrupt and names what is wrong (the
// field, and how); no input makes it panic. It does not check which trunk the
// record is of.
//
// A record of version 3 or 2 comes back with every time in UTC, without a
// monotonic reading; fields this release does not know (written by a newer
// one) are ignored. One of version 1 comes back as before.
func Decode(value []byte) (registration.Record, error) {
	if len(value) == 0 || !isVersionByte(value[0]) {
		return decodeJSON(value)
	}
	var (
		rec registration.Record
		err error
	)
	switch value[0] {
	case Version:
		rec, err = decodeV3(value[1:])
	case protoV2Version:
		rec, err = decodeV2(value[1:])
	default:
		return registration.Record{}, unknownVersion(int(value[0]))
	}
	if err != nil {
		return registration.Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return rec, nil
}

// isVersionByte reports whether b, the first byte of a value, is a format
// version rather than the start of a JSON text (see Version).
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

// unmarshalKnown decodes b into m and refuses a known field that came with another
// wire type (checkUnknown); fields this release does not know are kept aside.
func unmarshalKnown(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("unreadable record: %w", err)
	}
	if err := checkUnknown(m); err != nil {
		return fmt.Errorf("unreadable record: %w", err)
	}
	return nil
}

// checkUnknown rejects a field of m the message knows by its number but that
// came with another wire type (protobuf keeps it aside as an unknown field): a
// value a newer release wrote may hold fields this one does not know, but not
// a known field of another type.
func checkUnknown(m proto.Message) error {
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
