// Package recordfmt is the format of the records the Redis store (package
// store) keeps: Encode makes the value of a registration.Record and the TTL it
// is written with, Decode reads a value back, of any format version a release
// wrote. The store's Put and PutMany write exactly what Encode returns, its Get
// and List read with Decode; a writer of its own (the cluster package's fenced
// writes) and the cluster's change feed use them too.
//
// Version is the format version of the records the Redis store writes: the
// first byte of each value, followed by the record as a protobuf message,
// sipreg.registry.store.v1.RecordV3 (proto/sipreg/registry/store/v1/record_v3.proto).
//
// Version 1 was JSON: the fields of registration.Record with "v":1, or, written
// before versions existed, without "v". Version 2 was the byte 2 followed by
// sipreg.registry.store.v1.Record (record.proto next to record_v3.proto), the
// record field for field. Decode reads both still, so that records an older
// release wrote load; Encode writes them only when writeVersion says so.
//
// A JSON text never starts with a byte below 0x20 other than its whitespace
// (tab, line feed, carriage return), so such a first byte, from 1 to 31, is a
// format version: 2 and 3 are read, any other is an unknown version
// (ErrUnknownVersion), as is a JSON value whose "v" is not 1. Every other
// value (a first byte 0 included) is read as JSON.
//
// Version 2 is protobuf rather than a hand-written binary layout: the library
// brings the framing, the bounds checks on untrusted input and a schema that
// can grow. Numbers are varints, so small ones take a byte or two; a field
// left at its zero value takes nothing. A typical record took 314 bytes, 44%
// of its JSON, and 408 bytes of Redis memory with its key (MEMORY USAGE, see
// encode_size_test.go), 469 per trunk of INFO used_memory: more than the 400
// bytes per trunk the registry is allowed.
//
// Version 3 keeps the protobuf and writes the same record in fewer bytes: a
// typical record takes 212 bytes, in jemalloc's 224-byte class, and 312 bytes
// of Redis memory with its key (373 per trunk of INFO used_memory over 100,000
// trunks, against 469 for version 2; see encode_memory_test.go). Times are
// varints of nanoseconds, the later ones counted from UpdatedAt, rather than
// Timestamp messages; the state, the next action and the transport are enum
// numbers rather than strings; the From-tag, the fingerprint and the Call-ID,
// hex digits the registry makes, are the bytes the digits spell; the AOR
// leaves out its "sip:", and the target, the AOR's host and a port, is its
// port alone. What these short forms cannot hold (a state this release does
// not know, a Call-ID another program made, a time centuries from UpdatedAt)
// takes a long form, so that every record Encode took before still encodes,
// and comes back as it was (see RecordV3 in record_v3.proto).
//
// An older release reads no version 3: it skips such a record as of an
// unknown version (and reports it), and that trunk gets a fresh REGISTER, a
// new binding, as if it had no record. See writeVersion (encode.go) for a
// rollback that keeps the bindings. The cluster package's change feed carries
// stored values as they are, in a length-prefixed frame (see
// cluster/changefeed), and reads them with Decode; no Lua script reads a
// stored value.
package recordfmt

import (
	"errors"

	"sipreg.dev/services/registry/internal/registration"
)

// ErrCorrupt is wrapped by every error of Decode: the value is not a record
// this code can read back. The store wraps it too for what it finds wrong
// around a value (see store.ErrCorrupt, the same error). Test for it with
// errors.Is.
var ErrCorrupt = errors.New("corrupt registration record")

// ErrUnknownVersion is wrapped, next to ErrCorrupt, by the error for a record
// whose format version (see Version) this code does not know: most likely
// written by a newer release. The store skips such a record and reports it,
// never rewriting it on a read; a later Put of its trunk replaces it.
var ErrUnknownVersion = errors.New("unknown record version")

// errEmptyTrunkRef rejects a record that could never be found again.
var errEmptyTrunkRef = errors.New("empty trunk ref")

// normalize returns rec with every time in UTC and without a monotonic clock
// reading, as JSON would bring it back.
func normalize(rec registration.Record) registration.Record {
	rec.ExpiresAt = rec.ExpiresAt.UTC()
	rec.RegisteredSince = rec.RegisteredSince.UTC()
	rec.NextActionAt = rec.NextActionAt.UTC()
	rec.UpdatedAt = rec.UpdatedAt.UTC()
	return rec
}
