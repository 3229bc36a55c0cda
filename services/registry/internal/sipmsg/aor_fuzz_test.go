package sipmsg

import "testing"

// FuzzIsAOR: IsAOR(s, user, domain) is s == AOR(user, domain), for any strings: the
// engine keeps a record's AOR when IsAOR says it is the one it would build.
func FuzzIsAOR(f *testing.F) {
	f.Add("sip:alice@example.net", "alice", "example.net")
	f.Add("sip:example.net", "", "example.net")
	f.Add("sip:al%20ice@example.net", "al ice", "example.net")
	f.Add("sip:%2Fx@[::1]", "/x", "::1")
	f.Add("sip:bob@[2001:db8::1]", "bob", "[2001:db8::1]")
	f.Add("sip:alice@example.ne", "alice", "example.net")
	f.Add("sip:alice", "alice", "")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, s, user, domain string) {
		want := AOR(user, domain)
		if got := IsAOR(s, user, domain); got != (s == want) {
			t.Fatalf("IsAOR(%q, %q, %q) = %v; AOR is %q", s, user, domain, got, want)
		}
		if !IsAOR(want, user, domain) {
			t.Fatalf("IsAOR(AOR(%q, %q)) is false", user, domain)
		}
	})
}
