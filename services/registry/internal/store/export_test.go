package store

import "testing"

// WriteVersion2 makes EncodeRecord write values of version 2 until t ends. Tests
// that call it must not run in parallel with others.
func WriteVersion2(t testing.TB) {
	old := writeVersion
	writeVersion = RecordVersion
	t.Cleanup(func() { writeVersion = old })
}
