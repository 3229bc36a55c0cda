package trunk

import (
	"testing"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

func TestCompactIsEqualInTwoAllocations(t *testing.T) {
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
	c := tr.Compact()
	if !c.Equal(tr) || c.Fingerprint() != tr.Fingerprint() {
		t.Fatalf("Compact changed the trunk:\n%+v\n%+v", c, tr)
	}
	if &c.URIs[0] == &tr.URIs[0] {
		t.Error("Compact shares the URIs array with the trunk it was made from")
	}
	if n := testing.AllocsPerRun(100, func() { _ = tr.Compact() }); n != 2 {
		t.Errorf("Compact: %v allocations, want 2 (the strings, the URIs)", n)
	}
	if (Trunk{}).Compact().URIs != nil {
		t.Error("a trunk without URIs got some")
	}
}

func FuzzCompact(f *testing.F) {
	f.Add("ref", "name", "user", "pass", "host", "u", "udp", "h2", "", "tcp")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, ref, name, user, pass, h1, u1, t1, h2, u2, t2 string) {
		tr := Trunk{Ref: ref, Name: name, Username: user, Password: pass,
			URIs: []URI{{Host: h1, User: u1, Transport: t1, Port: 5060}, {Host: h2, User: u2, Transport: t2, Weight: 3}}}
		if c := tr.Compact(); !c.Equal(tr) {
			t.Fatalf("Compact changed the trunk:\n%+v\n%+v", c, tr)
		}
	})
}
