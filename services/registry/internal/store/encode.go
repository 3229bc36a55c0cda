package store

import (
	"encoding/json"
	"fmt"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

// RecordVersion is the format version of the records the Redis store writes:
// the JSON field "v" of each value, next to the fields of registration.Record. A
// value without "v" is of version 1, written before versions existed. A value
// of another version is not read (see ErrUnknownVersion).
const RecordVersion = 1

// storedRecord is the value EncodeRecord writes: "v" first, then the fields of
// the record.
type storedRecord struct {
	V int `json:"v"`
	registration.Record
}

// readRecord is what DecodeRecord reads: V is nil when the value has no "v".
type readRecord struct {
	V *int `json:"v"`
	registration.Record
}

// EncodeRecord returns the value the Redis store keeps for rec (its JSON, every
// time in UTC, with "v":RecordVersion) and the TTL it is written with at now:
// grace after the later of ExpiresAt and NextActionAt, never less than grace,
// rounded up to the millisecond. Put and PutMany write exactly this; a writer of
// its own (the cluster package's fenced writes) uses it to stay readable by Get
// and List. It fails on a record with an empty TrunkRef and on one that cannot
// be encoded (a time outside years 0-9999).
func EncodeRecord(rec registration.Record, now time.Time, grace time.Duration) (value []byte, ttl time.Duration, err error) {
	if rec.TrunkRef == "" {
		return nil, 0, fmt.Errorf("encode: %w", errEmptyTrunkRef)
	}
	value, err = json.Marshal(storedRecord{V: RecordVersion, Record: normalize(rec)})
	if err != nil {
		return nil, 0, fmt.Errorf("encode: %w", err)
	}
	return value, recordTTL(rec, now, grace), nil
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
// written before versions existed (no "v"). It reads no value of another
// version: the error then wraps ErrUnknownVersion, whichever fields the value
// holds. Every error wraps ErrCorrupt. It does not check which trunk the
// record is of.
func DecodeRecord(value []byte) (registration.Record, error) {
	var v readRecord
	if err := json.Unmarshal(value, &v); err != nil {
		// Another version's fields may not fit this Record: say so when "v"
		// can be read.
		var probe struct {
			V *int `json:"v"`
		}
		if json.Unmarshal(value, &probe) == nil && probe.V != nil && *probe.V != RecordVersion {
			return registration.Record{}, unknownVersion(*probe.V)
		}
		return registration.Record{}, fmt.Errorf("%w: unreadable JSON: %w", ErrCorrupt, err)
	}
	if v.V != nil && *v.V != RecordVersion {
		return registration.Record{}, unknownVersion(*v.V)
	}
	return v.Record, nil
}

// unknownVersion is the error of a record of version v, which this code does
// not read.
func unknownVersion(v int) error {
	return fmt.Errorf("%w: %w %d", ErrCorrupt, ErrUnknownVersion, v)
}
