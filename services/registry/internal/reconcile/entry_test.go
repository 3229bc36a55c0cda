package reconcile

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/trunk"
)

// TestTrunkWarningsOncePerChange: the warnings of a partly unusable trunk are logged
// when it is first seen and when its data changes, not at every discovery (the entry
// does not keep them).
func TestTrunkWarningsOncePerChange(t *testing.T) {
	var logs bytes.Buffer
	r := New(Options{Spec: testSpec(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	read := func(host string) []desired.Trunk {
		p := mkTrunk("t1", host, "alice", "pw")
		p.Uris = append(p.Uris, &trunksv2beta1.TrunkURI{Host: "tls.example", Transport: "tls", Enabled: true})
		tr, warnings, err := trunk.Read(p)
		if err != nil || len(warnings) != 1 {
			t.Fatalf("trunk.Read: %v, warnings %q", err, warnings)
		}
		return []desired.Trunk{{Trunk: tr, Warnings: warnings}}
	}
	count := func() int { return strings.Count(logs.String(), "trunk data partly unusable") }
	for i, step := range []struct {
		host string
		want int
	}{{"sip.a.example", 1}, {"sip.a.example", 1}, {"sip.a.example", 1}, {"sip.b.example", 2}, {"sip.b.example", 2}} {
		r.reconcileDesired(context.Background(), read(step.host))
		if got := count(); got != step.want {
			t.Fatalf("discovery %d (%s): %d warning lines, want %d\n%s", i+1, step.host, got, step.want, logs.String())
		}
	}
}

// TestEntrySize: an entry fits the 288-byte size class of Go's allocator (one per
// trunk: 100,000 of them are a third of the live heap). A field more moves every entry
// up a class, 32 bytes a trunk: make room, or say so in the README's memory figures.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 288 {
		t.Fatalf("entry is %d bytes, more than the 288-byte size class", n)
	}
}

// TestNewIDs: a Call-ID of 32 hex digits at "sipreg" and a From-tag of 16, fresh each
// time.
func TestNewIDs(t *testing.T) {
	callID, tag := newIDs()
	if !regexp.MustCompile(`^[0-9a-f]{32}@sipreg$`).MatchString(callID) || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(tag) {
		t.Fatalf("Call-ID %q, From-tag %q", callID, tag)
	}
	if c2, t2 := newIDs(); c2 == callID || t2 == tag {
		t.Fatalf("the same IDs twice: %q %q", c2, t2)
	}
}
