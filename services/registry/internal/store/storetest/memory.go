package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// Memory is a store.Store held in a map, for tests: it passes the contract, and it
// brings records back as Redis would, each one through recordfmt.Encode and
// recordfmt.Decode. It ignores expiry: records stay until deleted. The zero value
// is an empty store, as NewMemory returns.
type Memory struct {
	mu   sync.RWMutex
	recs map[string]registration.Record
}

var _ store.Store = (*Memory)(nil)

// errEmptyTrunkRef rejects a record that could never be found again.
var errEmptyTrunkRef = errors.New("empty trunk ref")

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{recs: make(map[string]registration.Record)}
}

// Get returns the record of trunkRef, or an error wrapping store.ErrNotFound.
func (m *Memory) Get(ctx context.Context, trunkRef string) (registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return registration.Record{}, fmt.Errorf("memory get %s: %w", trunkRef, err)
	}
	m.mu.RLock()
	rec, ok := m.recs[trunkRef]
	m.mu.RUnlock()
	if !ok {
		return registration.Record{}, fmt.Errorf("memory get %s: %w", trunkRef, store.ErrNotFound)
	}
	return rec, nil
}

// GetMany returns the records of refs that exist.
func (m *Memory) GetMany(ctx context.Context, refs []string) (map[string]registration.Record, error) {
	out := make(map[string]registration.Record, len(refs))
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("memory get many: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, ref := range refs {
		if rec, ok := m.recs[ref]; ok {
			out[ref] = rec
		}
	}
	return out, nil
}

// Put writes one record (insert or replace).
func (m *Memory) Put(ctx context.Context, rec registration.Record) error {
	_, err := m.PutMany(ctx, []registration.Record{rec})
	return err
}

// PutMany writes many records under one lock. It writes nothing if a record has an
// empty TrunkRef or cannot be encoded. It refuses none.
func (m *Memory) PutMany(ctx context.Context, recs []registration.Record) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory put many: %w", err)
	}
	stored := make([]registration.Record, len(recs))
	for i, rec := range recs {
		if rec.TrunkRef == "" {
			return nil, fmt.Errorf("memory put many: record %d: %w", i, errEmptyTrunkRef)
		}
		data, _, err := recordfmt.Encode(rec, time.Now(), store.DefaultTTLGrace)
		if err == nil {
			stored[i], err = recordfmt.Decode(data)
		}
		if err != nil {
			return nil, fmt.Errorf("memory put many %s: %w", rec.TrunkRef, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = make(map[string]registration.Record)
	}
	for _, rec := range stored {
		m.recs[rec.TrunkRef] = rec
	}
	return nil, nil
}

// Delete removes the record of trunkRef, if any.
func (m *Memory) Delete(ctx context.Context, trunkRef string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory delete %s: %w", trunkRef, err)
	}
	m.mu.Lock()
	delete(m.recs, trunkRef)
	m.mu.Unlock()
	return nil
}

// List returns a copy of every record, in no particular order.
func (m *Memory) List(ctx context.Context) ([]registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory list: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]registration.Record, 0, len(m.recs))
	for _, rec := range m.recs {
		out = append(out, rec)
	}
	return out, nil
}

// Ping reports only a done context: memory is always reachable.
func (m *Memory) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory ping: %w", err)
	}
	return nil
}

// Close does nothing; the store stays usable.
func (m *Memory) Close() error { return nil }
