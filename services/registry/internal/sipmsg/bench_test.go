package sipmsg_test

import (
	"testing"

	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// benchRegister is the REGISTER the registry sends most: through Routr's EdgePort, with
// Allow, User-Agent, gin and X-Gateway-Auth.
func benchRegister(b *testing.B) sipmsg.Register {
	b.Helper()
	gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: "alice", Password: "s3cret"})
	if err != nil {
		b.Fatal(err)
	}
	return sipmsg.Register{
		Domain: "sip.provider.net", Transport: "udp", User: "alice",
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 1, Expires: 600,
		EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060,
		Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry (sipreg)", Gin: true,
		GatewayAuth: gw,
	}
}

func BenchmarkBuild(b *testing.B) {
	r := benchRegister(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = sipmsg.Build(r)
	}
}

func BenchmarkBuildChecked(b *testing.B) {
	r := benchRegister(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sipmsg.BuildChecked(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	r := benchRegister(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	req := sipmsg.Build(benchRegister(b))
	b.ReportAllocs()
	for b.Loop() {
		if err := sipmsg.Check(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHost(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sipmsg.ParseHost("sip01.edgeport.example.net"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHostPort(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = sipmsg.HostPort("sip.provider.net", 0)
	}
}

// BenchmarkBuildPooled is BuildChecked from the pool: build, then give the block back.
func BenchmarkBuildPooled(b *testing.B) {
	r := benchRegister(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := sipmsg.BuildPooled(r)
		if err != nil {
			b.Fatal(err)
		}
		p.Release()
	}
}
