package trunk_test

import (
	"testing"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/services/registry/internal/trunk"
)

func benchProto() *trunksv2beta1.Trunk {
	return apiTrunk(creds("alice", "s3cret"),
		&trunksv2beta1.TrunkURI{Host: "sip.provider.net", Port: 5060, Transport: "UDP", User: "alice", Enabled: true, Priority: 1, Weight: 10},
		&trunksv2beta1.TrunkURI{Host: "sip2.provider.net:5080", Transport: "tcp", Enabled: true, Priority: 2, Weight: 10},
	)
}

func BenchmarkFromProto(b *testing.B) {
	p := benchProto()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := trunk.FromProto(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	t, err := trunk.FromProto(benchProto())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = t.Fingerprint()
	}
}
