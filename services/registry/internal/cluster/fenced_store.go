package cluster

import (
	"context"
	"errors"
	"fmt"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// ErrRefused is returned by FencedStore.Put for a record the fence turned down:
// another replica holds the trunk's lease now.
var ErrRefused = errors.New("write refused: the trunk is owned by another replica")

// FencedStore is the store.Store of a replica in cluster mode: the Redis store,
// whose writes go through FencedPutMany, so that a record is written only while
// this replica holds the lease of its trunk with the record's Fence, and every
// write reaches the other replicas' FollowChanges. Reads and deletes are the Redis
// store's own.
type FencedStore struct {
	*store.Redis
	c *Cluster
}

var _ store.Store = (*FencedStore)(nil)

// NewFencedStore fences the writes of st with c's leases. It fails (wrapping
// ErrCrossSlot) when on a Redis Cluster st's key prefix is not in the slot of the
// leases (see CheckStorePrefix).
func NewFencedStore(c *Cluster, st *store.Redis) (*FencedStore, error) {
	if err := c.CheckStorePrefix(st.Prefix()); err != nil {
		return nil, err
	}
	return &FencedStore{Redis: st, c: c}, nil
}

// PutMany writes each record only if this replica holds its trunk's lease with
// rec.Fence, with Owner set to this replica; refused lists the others (see
// Cluster.FencedPutMany).
func (f *FencedStore) PutMany(ctx context.Context, recs []registration.Record) (refused []string, err error) {
	return f.c.FencedPutMany(ctx, f.Prefix(), recs, f.TTLGrace())
}

// Put writes one record as PutMany does; a refused one fails with ErrRefused.
func (f *FencedStore) Put(ctx context.Context, rec registration.Record) error {
	refused, err := f.PutMany(ctx, []registration.Record{rec})
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("fenced put %s: %w", rec.TrunkRef, ErrRefused)
	}
	return err
}
