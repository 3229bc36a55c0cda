package reconcile

import (
	"testing"

	"sipreg.dev/services/registry/internal/trunk"
)

// FuzzIsTargetOf: isTargetOf(s, u) is never true unless s == targetOf(u), for any string
// and URI host and port (the engine keeps a record's target when isTargetOf says it is
// the one it would build), and is true for targetOf(u) whenever that reads back
// (parseTarget) as the URI's key (any host FromProto accepts): then a trunk's
// registrar is counted under one key whether it is read from its URI or its record.
func FuzzIsTargetOf(f *testing.F) {
	f.Add("sip.example.net:5060", "sip.example.net", 0)
	f.Add("sip.example.net:5060", "sip.example.net", 5060)
	f.Add("sip.example.net:05060", "sip.example.net", 5060)
	f.Add("sip.example.net:+5060", "sip.example.net", 5060)
	f.Add("[sip.example.net]:5060", "sip.example.net", 5060)
	f.Add("[::1]:5080", "::1", 5080)
	f.Add("[[::1]]:5080", "[::1]", 5080)
	f.Add("10.0.0.1:5061", "10.0.0.1", 5061)
	f.Add("", "", 0)
	f.Add(":-1", "", -1)
	f.Fuzz(func(t *testing.T, s, host string, port int) {
		u := trunk.URI{Host: host, Port: port}
		want := targetOf(u)
		if isTargetOf(s, u) && s != want {
			t.Fatalf("isTargetOf(%q, host %q port %d) is true; targetOf is %q", s, host, port, want)
		}
		// A host net.SplitHostPort cannot read back (one in brackets already) is
		// never taken for its target: the target is built again, as before.
		if parseTarget(want) == keyOf(u) && !isTargetOf(want, u) {
			t.Fatalf("isTargetOf(targetOf(host %q port %d)) is false", host, port)
		}
	})
}
