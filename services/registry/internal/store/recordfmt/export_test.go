package recordfmt

import "testing"

// The format versions Encode can write (see writeVersion).
const (
	JSONVersion    = jsonVersion
	ProtoV2Version = protoV2Version
)

// WriteVersion makes Encode write format version v (JSONVersion,
// ProtoV2Version or Version), as a rollback build would, until t ends.
// Tests that call it must not run in parallel with others.
func WriteVersion(t testing.TB, v int) {
	old := writeVersion
	writeVersion = v
	t.Cleanup(func() { writeVersion = old })
}
