package trunk

import (
	"slices"
	"testing"
	"unsafe"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

func TestPackedIsEqualInOneAllocation(t *testing.T) {
	p := &trunksv2beta1.Trunk{Ref: "trunk-1", Name: "Trunk 1", SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{
			{Host: "sip.example.net", Port: 5060, Transport: "UDP", User: "alice", Enabled: true, Priority: 2},
			{Host: "10.0.0.1", Transport: "tcp", Enabled: true, Priority: 1},
		},
		OutboundCredentials: &credentialsv2beta1.Credentials{Username: "alice", Password: "secret"}}
	tr, err := FromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	c := clone(tr).packed()
	if !c.Equal(tr) || c.Fingerprint() != tr.Fingerprint() {
		t.Fatalf("packed changed the trunk:\n%+v\n%+v", c, tr)
	}
	if n := testing.AllocsPerRun(100, func() { _ = tr.packed() }); n != 1 {
		t.Errorf("packed: %v allocations, want 1", n)
	}
	// FromProto's trunk is compact already: its strings are back to back in one
	// allocation.
	ref, name := uintptr(unsafe.Pointer(unsafe.StringData(tr.Ref))), uintptr(unsafe.Pointer(unsafe.StringData(tr.Name)))
	if name != ref+uintptr(len(tr.Ref)) {
		t.Errorf("FromProto's ref and name are not back to back (%#x, %#x)", ref, name)
	}
	if (Trunk{}).packed().URIs != nil {
		t.Error("a trunk without URIs got some")
	}
}

func clone(t Trunk) Trunk {
	t.URIs = slices.Clone(t.URIs)
	return t
}

func FuzzPacked(f *testing.F) {
	f.Add("ref", "name", "user", "pass", "host", "u", "udp", "h2", "", "tcp")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, ref, name, user, pass, h1, u1, t1, h2, u2, t2 string) {
		tr := Trunk{Ref: ref, Name: name, Username: user, Password: pass,
			URIs: []URI{{Host: h1, User: u1, Transport: t1, Port: 5060}, {Host: h2, User: u2, Transport: t2, Weight: 3}}}
		if c := clone(tr).packed(); !c.Equal(tr) {
			t.Fatalf("packed changed the trunk:\n%+v\n%+v", c, tr)
		}
	})
}

// TestURISize: a URI fits the 64-byte size class of Go's allocator (a trunk's URIs are
// one array, kept as long as the trunk: 16 bytes a trunk more in the next class).
func TestURISize(t *testing.T) {
	if n := unsafe.Sizeof(URI{}); n > 64 {
		t.Fatalf("URI is %d bytes, more than 64", n)
	}
}
