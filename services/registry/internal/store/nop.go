package store

import (
	"context"
	"fmt"

	"sipreg.dev/services/registry/internal/registration"
)

// Nop is the Store of the memory cache provider: the engine holds every record in
// its own memory already, so a write has nowhere else to go, nothing is ever found,
// and a start begins empty, as Routr's registry does with its memory cache.
type Nop struct{}

var _ Store = Nop{}

// Get finds nothing.
func (Nop) Get(_ context.Context, ref string) (registration.Record, error) {
	return registration.Record{}, fmt.Errorf("memory get %s: %w", ref, ErrNotFound)
}

// GetMany finds nothing.
func (Nop) GetMany(context.Context, []string) (map[string]registration.Record, error) {
	return map[string]registration.Record{}, nil
}

// Put keeps nothing.
func (Nop) Put(context.Context, registration.Record) error { return nil }

// PutMany keeps nothing and refuses nothing.
func (Nop) PutMany(context.Context, []registration.Record) ([]string, error) { return nil, nil }

// Delete has nothing to delete.
func (Nop) Delete(context.Context, string) error { return nil }

// List lists nothing.
func (Nop) List(context.Context) ([]registration.Record, error) { return nil, nil }

// Ping always answers.
func (Nop) Ping(context.Context) error { return nil }

// Close does nothing.
func (Nop) Close() error { return nil }
