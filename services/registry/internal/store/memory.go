package store

import (
	"context"
	"fmt"
	"sync"

	"sipreg.dev/services/registry/internal/registration"
)

// Memory is a Store held in the process's memory: for a single replica, lost on
// restart. It ignores expiry: records stay until deleted. The zero value is an
// empty store, as NewMemory returns.
type Memory struct {
	mu   sync.RWMutex
	recs map[string]registration.Record
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{recs: make(map[string]registration.Record)}
}

// Get returns the record of trunkRef, or an error wrapping ErrNotFound.
func (m *Memory) Get(ctx context.Context, trunkRef string) (registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return registration.Record{}, fmt.Errorf("memory get %s: %w", trunkRef, err)
	}
	m.mu.RLock()
	rec, ok := m.recs[trunkRef]
	m.mu.RUnlock()
	if !ok {
		return registration.Record{}, fmt.Errorf("memory get %s: %w", trunkRef, ErrNotFound)
	}
	return rec, nil
}

// Put writes one record (insert or replace).
func (m *Memory) Put(ctx context.Context, rec registration.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory put %s: %w", rec.TrunkRef, err)
	}
	if rec.TrunkRef == "" {
		return fmt.Errorf("memory put: %w", errEmptyTrunkRef)
	}
	m.mu.Lock()
	m.set(rec)
	m.mu.Unlock()
	return nil
}

// PutMany writes many records under one lock. It writes nothing if a record has
// an empty TrunkRef.
func (m *Memory) PutMany(ctx context.Context, recs []registration.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory put many: %w", err)
	}
	for i, rec := range recs {
		if rec.TrunkRef == "" {
			return fmt.Errorf("memory put many: record %d: %w", i, errEmptyTrunkRef)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range recs {
		m.set(rec)
	}
	return nil
}

// set stores rec; m.mu is held.
func (m *Memory) set(rec registration.Record) {
	if m.recs == nil {
		m.recs = make(map[string]registration.Record)
	}
	m.recs[rec.TrunkRef] = normalize(rec)
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
