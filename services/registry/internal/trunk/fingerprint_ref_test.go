package trunk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// refFingerprint is Fingerprint as it was written with fmt: the reference. The value is
// persisted with each binding, so the faster one must give exactly the same.
func refFingerprint(t Trunk) string {
	h := sha256.New()
	for _, u := range t.URIs {
		fmt.Fprintf(h, "%s|%d|%s|%s\n", u.Host, u.Port, u.Transport, u.User)
	}
	fmt.Fprintf(h, "%s\x00%s", t.Username, t.Password)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TestFingerprintPinned pins the value for a fixed trunk: it is in every stored binding,
// and a new value would replace every binding of every trunk after an upgrade.
func TestFingerprintPinned(t *testing.T) {
	tr := Trunk{
		Ref: "trunk-1", Username: "alice", Password: "s3cret",
		URIs: []URI{
			{Host: "sip.provider.net", Port: 5060, Transport: "udp", User: "alice", Priority: 1, Weight: 10},
			{Host: "2001:db8::1", Transport: "tcp"},
		},
	}
	const want = "af5021fb3cb7a387"
	if got := tr.Fingerprint(); got != want {
		t.Errorf("Fingerprint = %q, want %q (a stored value: it must not change)", got, want)
	}
	if got := refFingerprint(tr); got != want {
		t.Errorf("reference Fingerprint = %q, want %q", got, want)
	}
	if got := (Trunk{}).Fingerprint(); got != refFingerprint(Trunk{}) {
		t.Errorf("empty trunk: Fingerprint = %q, reference %q", got, refFingerprint(Trunk{}))
	}
}

// FuzzFingerprintReference holds Fingerprint to refFingerprint, with long values (past
// the stack buffer), negative ports, invalid UTF-8 and separators inside values.
func FuzzFingerprintReference(f *testing.F) {
	f.Add("sip.provider.net", 5060, "udp", "alice", 2, "alice", "s3cret")
	f.Add("a|b\n", -1, "", "\x00\xff", 0, "", "")
	f.Add(strings.Repeat("h", 300), 65535, "tcp", "u", 3, strings.Repeat("p", 100), "pw\x00")
	f.Fuzz(func(t *testing.T, host string, port int, transport, user string, n int, username, password string) {
		tr := Trunk{Username: username, Password: password}
		for i := range n % 5 {
			tr.URIs = append(tr.URIs, URI{Host: host, Port: port + i, Transport: transport, User: user})
		}
		if got, want := tr.Fingerprint(), refFingerprint(tr); got != want {
			t.Fatalf("Fingerprint = %q, reference %q", got, want)
		}
	})
}
