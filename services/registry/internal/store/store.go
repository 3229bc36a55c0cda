// Package store keeps each trunk's registration.Record: the actual state of the
// reconcile loop, as the engine uses it: Redis, which survives restarts and is
// shared by several replicas, and Nop, for the memory cache provider, whose
// engine holds every record itself. The contract every implementation passes is
// the storetest package (with storetest.Memory, a map-backed store for tests); the
// cluster package adds a fenced decorator for several replicas.
//
// Records come back exactly as they were written, with one normalisation: every
// time is returned in UTC and without a monotonic clock reading, whichever store
// is used, so that a record read from Memory equals the same record read from
// Redis.
//
// Redis keeps each record as a string under the key prefix and the trunk ref: a
// format version byte, then the record as a protobuf message (version 3, the
// compact RecordV3 of proto/sipreg/registry/store/v1; the field-for-field
// Record of version 2 and the JSON of version 1 are still read, so records an
// older release wrote load). Package recordfmt reads and writes them; its
// documentation tells the formats apart and says how to roll back to a release
// that does not read version 3.
package store

import (
	"context"
	"errors"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// ErrNotFound is returned by Get for an unknown trunk. It is wrapped with the
// operation and the trunk; test for it with errors.Is.
var ErrNotFound = errors.New("registration not found")

// ErrCorrupt is returned by Get, and passed to RedisOptions.OnSkip, when the key
// of a trunk holds something this code cannot read back as a Record: a key of
// another type than string, a value that is neither a record of version 3 or
// 2 (a protobuf) nor one of version 1 (JSON), a record of another trunk, or a
// record of an unknown format version (see recordfmt.ErrUnknownVersion and
// recordfmt.Version). It is recordfmt.ErrCorrupt, which every error of
// recordfmt.Decode wraps.
// Overwriting the trunk with Put repairs it. It is wrapped; test for it with
// errors.Is.
var ErrCorrupt = recordfmt.ErrCorrupt

// errEmptyTrunkRef rejects a record that could never be found again.
var errEmptyTrunkRef = errors.New("empty trunk ref")

// Store keeps each trunk's Record. Implementations are safe for concurrent use.
//
// Every method first checks ctx: a cancelled or expired context fails the call
// with an error that matches ctx.Err() under errors.Is, and writes nothing.
type Store interface {
	// Get returns the record of trunkRef, or an error wrapping ErrNotFound, or
	// one wrapping ErrCorrupt when its stored entry cannot be read back.
	Get(ctx context.Context, trunkRef string) (registration.Record, error)
	// Put writes one record (insert or replace). A record with an empty TrunkRef
	// is rejected.
	Put(ctx context.Context, rec registration.Record) error
	// GetMany returns the records of refs that exist, by TrunkRef, in as few
	// round trips as possible. Unknown refs and unreadable entries are left out.
	// On a backend failure it returns what it read until then and the error.
	GetMany(ctx context.Context, refs []string) (map[string]registration.Record, error)
	// PutMany writes many records in as few round trips as possible (Redis: one
	// pipeline per 1000). It checks every record before writing any; it is not
	// atomic, so after a backend failure some records may have been written, and
	// calling it again is safe. When a trunk appears twice, the later record wins.
	// refused lists the trunks whose record was deliberately not written: only a
	// fenced store refuses (another replica owns the trunk now); the plain ones
	// never do.
	PutMany(ctx context.Context, recs []registration.Record) (refused []string, err error)
	// Delete removes the record of trunkRef. Deleting an unknown trunk is not an
	// error.
	Delete(ctx context.Context, trunkRef string) error
	// List returns every record, in no particular order. A stored entry that
	// cannot be read back as a record (see ErrCorrupt) is skipped, so that one
	// bad entry cannot hide every good one: the call does not fail because of
	// it, Get of that trunk returns the error, and the Redis store reports it to
	// RedisOptions.OnSkip. Any other failure (the backend unreachable, a done
	// context) fails the call.
	List(ctx context.Context) ([]registration.Record, error)
	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
