package kamailio

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

const lookupOutput = `{
	AoR: alice
	Contacts: {
		Contact: {
			Address: sip:alice@127.0.0.1:5060;transport=UDP
			Expires: 3598
			Q: -1
			Call-ID: 1-30426@127.0.0.1
			CSeq: 2
			User-Agent: sipp-test
			Received: [not set]
			Socket: udp:127.0.0.1:25060
		}
		Contact: {
			Address: sip:alice@127.0.0.1:5070;transport=tcp
			Expires: permanent
			Q: -1
			Call-ID: abc
			CSeq: 7
			User-Agent: [not set]
		}
	}
}`

const dumpOutput = `{
	Domains: {
		Domain: {
			Domain: location
			Size: 1024
			AoRs: {
				Info: {
					AoR: alice
					HashID: 1834153949
					Contacts: {
						Contact: {
							Address: sip:alice@127.0.0.1:25111
							Expires: 3600
							Call-ID: c1
							CSeq: 2
							User-Agent: ua
						}
					}
				}
				Info: {
					AoR: bob
					HashID: 1
					Contacts: {
						Contact: {
							Address: sip:bob@127.0.0.1:25112
							Expires: expired
							Call-ID: c2
							CSeq: 3
							User-Agent: ua
						}
					}
				}
			}
			Stats: {
				Records: 2
				Max-Slots: 1
			}
		}
	}
}`

func TestParseUL(t *testing.T) {
	got, err := parseUL(lookupOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := []Binding{
		{Address: "sip:alice@127.0.0.1:5060;transport=UDP", Expires: 3598, CallID: "1-30426@127.0.0.1", CSeq: 2, UserAgent: "sipp-test"},
		{Address: "sip:alice@127.0.0.1:5070;transport=tcp", Expires: -1, CallID: "abc", CSeq: 7},
	}
	if len(got) != 1 || !equalBindings(got["alice"], want) {
		t.Errorf("lookup: got %+v, want alice: %+v", got, want)
	}

	got, err = parseUL(dumpOutput)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 ||
		!equalBindings(got["alice"], []Binding{{Address: "sip:alice@127.0.0.1:25111", Expires: 3600, CallID: "c1", CSeq: 2, UserAgent: "ua"}}) ||
		!equalBindings(got["bob"], []Binding{{Address: "sip:bob@127.0.0.1:25112", Expires: 0, CallID: "c2", CSeq: 3, UserAgent: "ua"}}) {
		t.Errorf("dump: got %+v", got)
	}

	if _, err := parseUL("AoR: x\nContact: {\nCSeq: two\n}"); err == nil {
		t.Error("bad CSeq: no error")
	}
	if _, err := parseUL("AoR: x\nContact: {\nCSeq: 2\n"); err == nil {
		t.Error("unterminated block: no error")
	}
}

func equalBindings(a, b []Binding) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRenderCfg(t *testing.T) {
	opts := Options{
		Users:      map[string]User{"bob": {Password: "bobpw", Proxy: true}, "alice": {Password: "alicepw"}},
		AuthAlg:    "SHA-256",
		WrongPW403: true,
	}
	if err := opts.setDefaults(); err != nil {
		t.Fatal(err)
	}
	cfg, err := renderCfg(opts, 5099, "/run/x")
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	for _, want := range []string{
		"listen=udp:127.0.0.1:5099\n",
		"listen=tcp:127.0.0.1:5099\n",
		`modparam("ctl", "binrpc", "unix:/run/x/kamailio_ctl")`,
		`modparam("registrar", "default_expires", 300)`,
		`modparam("registrar", "min_expires", 60)`,
		`modparam("registrar", "max_expires", 3600)`,
		`modparam("auth", "algorithm", "SHA-256")`,
		`case "alice": $var(pw) = "alicepw"; break;` + "\n" +
			`        case "bob": $var(pw) = "bobpw"; $var(mode) = "proxy"; break;`,
		`auth_challenge("test.local", "1")`,
		`if ($var(rc) == -2) { sl_send_reply("403", "Forbidden"); exit; }`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("cfg lacks %q:\n%s", want, text)
		}
	}

	for _, bad := range []Options{
		{AuthAlg: "SHA-1"},
		{Users: map[string]User{"al ice": {Password: "x"}}},
		{Users: map[string]User{"alice": {Password: `pw"; exit; "`}}},
		{Users: map[string]User{"alice": {Password: "$var(x)"}}},
		{Realm: "a\nb"},
		{MinExpires: 100, MaxExpires: 50},
	} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	k := Start(t, Options{Users: map[string]User{"alice": {Password: "alicepw"}}})

	if host, _, err := net.SplitHostPort(k.Addr); err != nil || host != "127.0.0.1" {
		t.Errorf("Addr %q: want 127.0.0.1:port (%v)", k.Addr, err)
	}
	b, err := k.Bindings("alice")
	if err != nil || b == nil || len(b) != 0 {
		t.Errorf("Bindings(alice) = %v, %v; want empty, nil", b, err)
	}
	b, err = k.Bindings("1001") // kamcmd would send a bare number as an integer
	if err != nil || len(b) != 0 {
		t.Errorf("Bindings(1001) = %v, %v; want empty, nil", b, err)
	}
	d, err := k.Dump()
	if err != nil || len(d) != 0 {
		t.Errorf("Dump() = %v, %v; want empty, nil", d, err)
	}
	if !strings.Contains(k.Log(), "INFO") {
		t.Errorf("Log() has no kamailio output: %q", k.Log())
	}
}

// TestStartRetriesTakenPort makes the first port Start picks a taken one: kamailio exits
// with status 255 and Start must try again on another port.
func TestStartRetriesTakenPort(t *testing.T) { // not parallel: it replaces pickPort
	taken, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.LocalAddr().(*net.UDPAddr).Port

	orig := pickPort
	t.Cleanup(func() { pickPort = orig })
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return orig()
	}

	k := Start(t, Options{})
	if calls < 2 {
		t.Fatalf("pickPort called %d times, want a retry", calls)
	}
	if k.Addr == net.JoinHostPort("127.0.0.1", strconv.Itoa(takenPort)) {
		t.Errorf("Addr %s is the taken port", k.Addr)
	}
}
