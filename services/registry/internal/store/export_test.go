package store

import "testing"

// WriteVersion1 makes EncodeRecord write the JSON of version 1, as the release
// before did, until t ends. Tests that call it must not run in parallel with
// others.
func WriteVersion1(t testing.TB) {
	old := writeVersion
	writeVersion = jsonVersion
	t.Cleanup(func() { writeVersion = old })
}
