// Package store keeps each trunk's registration.Record: the actual state of the
// reconcile loop. Two implementations share one contract (see the storetest
// package): Memory, for a single replica without persistence, and Redis, which
// survives restarts and is shared by several replicas.
//
// Records come back exactly as they were written, with one normalisation: every
// time is returned in UTC and without a monotonic clock reading, whichever store
// is used, so that a record read from Memory equals the same record read from
// Redis.
package store

import (
	"context"
	"errors"

	"sipreg.dev/services/registry/internal/registration"
)

// ErrNotFound is returned by Get for an unknown trunk. It is wrapped with the
// operation and the trunk; test for it with errors.Is.
var ErrNotFound = errors.New("registration not found")

// ErrCorrupt is returned by Get when the stored value of a trunk cannot be read
// back as a Record (not JSON, or a record of another trunk). Overwriting the
// trunk with Put repairs it. It is wrapped; test for it with errors.Is.
var ErrCorrupt = errors.New("corrupt registration record")

// errEmptyTrunkRef rejects a record that could never be found again.
var errEmptyTrunkRef = errors.New("empty trunk ref")

// Store keeps each trunk's Record. Implementations are safe for concurrent use.
//
// Every method first checks ctx: a cancelled or expired context fails the call
// with an error that matches ctx.Err() under errors.Is, and writes nothing.
type Store interface {
	// Get returns the record of trunkRef, or an error wrapping ErrNotFound.
	Get(ctx context.Context, trunkRef string) (registration.Record, error)
	// Put writes one record (insert or replace). A record with an empty TrunkRef
	// is rejected.
	Put(ctx context.Context, rec registration.Record) error
	// PutMany writes many records in as few round trips as possible (Redis: one
	// pipeline per 1000). It checks every record before writing any; it is not
	// atomic, so after a backend failure some records may have been written, and
	// calling it again is safe. When a trunk appears twice, the later record wins.
	PutMany(ctx context.Context, recs []registration.Record) error
	// Delete removes the record of trunkRef. Deleting an unknown trunk is not an
	// error.
	Delete(ctx context.Context, trunkRef string) error
	// List returns every record, in no particular order. A stored value that
	// cannot be read back (see ErrCorrupt) is skipped, not reported: one bad
	// entry must not hide every good one, and Get still reports it.
	List(ctx context.Context) ([]registration.Record, error)
	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// normalize returns rec with every time in UTC and without a monotonic clock
// reading, as JSON would bring it back.
func normalize(rec registration.Record) registration.Record {
	rec.ExpiresAt = rec.ExpiresAt.UTC()
	rec.RegisteredSince = rec.RegisteredSince.UTC()
	rec.NextActionAt = rec.NextActionAt.UTC()
	rec.UpdatedAt = rec.UpdatedAt.UTC()
	return rec
}
