package storetest_test

import (
	"testing"

	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.RunContract(t, func(t *testing.T) store.Store {
		s := storetest.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestMemoryZeroValueContract(t *testing.T) {
	storetest.RunContract(t, func(*testing.T) store.Store { return new(storetest.Memory) })
}
