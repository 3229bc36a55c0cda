package sipmsg

import "testing"

func BenchmarkBlockCheck(b *testing.B) {
	blk := buildBlock(Register{Domain: "sip.provider.net", Transport: "udp", User: "alice",
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 1, Expires: 600,
		EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060, UserAgent: "Routr Registry (sipreg)",
		Gin: true, GatewayAuth: "YWxpY2U6czNjcmV0"})
	b.ReportAllocs()
	for b.Loop() {
		if blk.check() != nil {
			b.Fatal("refused")
		}
	}
}
