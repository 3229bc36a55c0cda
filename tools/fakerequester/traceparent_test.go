package fakerequester_test

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/metadata"

	"sipreg.dev/tools/fakerequester"
)

// TestTraceparentRecorded: the traceparent metadata of a call is kept in memory and in
// the record file; a call without one records none.
func TestTraceparentRecorded(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	s := fakerequester.New(fakerequester.Options{RecordFile: path})
	c := start(t, s)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", tp)
	if _, err := c.SendMessage(ctx, reg{user: "alice", expires: 60}.request()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMessage(t.Context(), reg{user: "bob", expires: 60}.request()); err != nil {
		t.Fatal(err)
	}
	a := s.Arrivals()
	if len(a) != 2 || a[0].Traceparent != tp || a[1].Traceparent != "" {
		t.Fatalf("arrivals' traceparents: %+v", a)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := fakerequester.ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		want := map[string]string{"alice": tp, "bob": ""}[r.Key]
		if r.Traceparent != want {
			t.Errorf("record file: %s's traceparent %q, want %q", r.Key, r.Traceparent, want)
		}
	}
}
