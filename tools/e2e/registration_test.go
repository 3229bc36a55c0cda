package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakeapi"
	"sipreg.dev/tools/fakerequester"
)

// fakes are the in-process Routr API and Requester of one test.
type fakes struct {
	api     *fakeapi.Server
	apiAddr string
	req     *fakerequester.Server
	reqAddr string
}

func startFakes(t *testing.T, script fakerequester.Script, trunks []*trunksv2beta1.Trunk) *fakes {
	t.Helper()
	f := &fakes{api: fakeapi.New(fakeapi.Options{}), req: fakerequester.New(fakerequester.Options{Script: script})}
	f.api.SetTrunks(trunks)
	f.apiAddr = serve(t, f.api.Serve, f.api.Stop)
	f.reqAddr = serve(t, f.req.Serve, f.req.Stop)
	return f
}

func serve(t *testing.T, srv func(net.Listener) error, stop func()) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv(lis) }()
	t.Cleanup(stop)
	return lis.Addr().String()
}

func trunk(ref, host, user, pass string) *trunksv2beta1.Trunk {
	tr := &trunksv2beta1.Trunk{
		Ref: ref, Name: "Trunk " + ref, SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{{Host: host, Port: 5060, Transport: "UDP", User: user, Enabled: true}},
	}
	if pass != "" {
		tr.OutboundCredentials = &credentialsv2beta1.Credentials{Username: user, Password: pass}
	}
	return tr
}

// registry starts the registry binary with cfg and returns it with its HTTP address.
func registry(t *testing.T, cfg string, env ...string) (*proc, string) {
	t.Helper()
	path := writeFile(t, "registry.yaml", cfg)
	p := startProc(t, "registry", append([]string{"LOGS_FORMAT=json", "LOGS_LEVEL=debug"}, env...), "--config", path)
	start := p.logEntry("start line", 30*time.Second, "registry starting", nil)
	return p, fmt.Sprint(start["http"])
}

func ext(m *sipmessagev2beta1.SIPMessage, name string) []string {
	var out []string
	for _, e := range m.GetExtensions() {
		if strings.EqualFold(e.GetName(), name) {
			out = append(out, e.GetValue())
		}
	}
	return out
}

func cseq(t *testing.T, m *sipmessagev2beta1.SIPMessage) int {
	t.Helper()
	v := ext(m, "CSeq")
	if len(v) != 1 {
		t.Fatalf("CSeq headers %v", v)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v[0], " REGISTER"))
	if err != nil {
		t.Fatalf("CSeq %q", v[0])
	}
	return n
}

// forKey returns the recorded requests of one trunk (by AOR user), in order.
func forKey(recs []fakerequester.Recorded, user string) []fakerequester.Recorded {
	var out []fakerequester.Recorded
	for _, r := range recs {
		if r.Req.GetMessage().GetTo().GetAddress().GetUri().GetUser() == user {
			out = append(out, r)
		}
	}
	return out
}

func waitRecords(t *testing.T, f *fakes, what string, pred func([]fakerequester.Recorded) bool) []fakerequester.Recorded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.req.Wait(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return f.req.Requests()
}

func atLeast(user string, n int) func([]fakerequester.Recorded) bool {
	return func(recs []fakerequester.Recorded) bool { return len(forKey(recs, user)) >= n }
}

// TestRegisterMessageAndRefresh checks the exact REGISTER the registry sends through
// the Requester, and that refreshes keep the Call-ID and From-tag with CSeq + 1.
func TestRegisterMessageAndRefresh(t *testing.T) {
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "s3cret"), trunk("t2", "10.1.2.3", "bob", "")})
	reg, httpAddr := registry(t, registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 1", "startupSpread: 0s", "httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0"))
	recs := waitRecords(t, f, "three REGISTERs of alice", atLeast("alice", 3))
	alice := forKey(recs, "alice")
	m := alice[0].Req.GetMessage()
	r := alice[0].Req
	if r.GetTarget() != "sip.provider.net:5060" || r.GetMethod().String() != "REGISTER" || r.GetTransport().String() != "UDP" {
		t.Errorf("target/method/transport %s %s %s", r.GetTarget(), r.GetMethod(), r.GetTransport())
	}
	ru := m.GetRequestUri()
	if ru.GetUser() != "" || ru.GetHost() != "sip.provider.net" || ru.GetTransportParam() != "udp" {
		t.Errorf("Request-URI %v: want sip:sip.provider.net;transport=udp with no user", ru)
	}
	for name, a := range map[string]*sipmessagev2beta1.Address{"From": m.GetFrom().GetAddress(), "To": m.GetTo().GetAddress()} {
		if a.GetUri().GetUser() != "alice" || a.GetUri().GetHost() != "sip.provider.net" || a.GetUri().GetPort() != -1 {
			t.Errorf("%s %v: want sip:alice@sip.provider.net, port -1", name, a.GetUri())
		}
	}
	if m.GetFrom().GetTag() == "" || m.GetTo().GetTag() != "" {
		t.Errorf("From tag %q, To tag %q", m.GetFrom().GetTag(), m.GetTo().GetTag())
	}
	if m.GetContact() != nil {
		t.Errorf("the registry sent a Contact: %v", m.GetContact())
	}
	if m.GetMaxForwards().GetMaxForwards() != 70 || m.GetExpires().GetExpires() != 600 {
		t.Errorf("Max-Forwards %d Expires %d", m.GetMaxForwards().GetMaxForwards(), m.GetExpires().GetExpires())
	}
	if len(m.GetRoute()) != 1 || m.GetRoute()[0].GetAddress().GetUri().GetHost() != "edge.test" ||
		m.GetRoute()[0].GetAddress().GetUri().GetPort() != 5060 || !m.GetRoute()[0].GetAddress().GetUri().GetLrParam() {
		t.Errorf("Route %v: want the EdgePort with lr", m.GetRoute())
	}
	if got := ext(m, "Allow"); strings.Join(got, ",") != "INVITE,MESSAGE" {
		t.Errorf("Allow %v", got)
	}
	if got := ext(m, "Supported"); len(got) != 1 || got[0] != "path" {
		t.Errorf("Supported %v", got)
	}
	if got := ext(m, "User-Agent"); len(got) != 1 || got[0] == "" {
		t.Errorf("User-Agent %v", got)
	}
	if got := ext(m, "X-Gateway-Auth"); len(got) != 1 || got[0] != base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) {
		t.Errorf("X-Gateway-Auth %v", got)
	}
	for i := 1; i < len(alice); i++ {
		a, b := alice[i-1].Req.GetMessage(), alice[i].Req.GetMessage()
		if a.GetCallId().GetCallId() != b.GetCallId().GetCallId() || a.GetFrom().GetTag() != b.GetFrom().GetTag() {
			t.Errorf("refresh %d changed Call-ID or From-tag", i)
		}
		if cseq(t, b) != cseq(t, a)+1 {
			t.Errorf("refresh %d: CSeq %d after %d", i, cseq(t, b), cseq(t, a))
		}
		// Refresh before expiry: within the 4 s granted.
		if gap := alice[i].At.Sub(alice[i-1].At); gap >= 4*time.Second {
			t.Errorf("refresh %d came %s after the last REGISTER, past the 4 s granted", i, gap)
		}
	}
	if f.req.MaxInFlightPerKey() != 1 {
		t.Errorf("%d REGISTERs in flight for one trunk", f.req.MaxInFlightPerKey())
	}
	// The password never reaches the logs.
	if strings.Contains(reg.output(), "s3cret") || strings.Contains(reg.output(), base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))) {
		t.Error("a secret reached the registry's logs")
	}
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "OK" {
		t.Errorf("/healthz %d %q", resp.StatusCode, body)
	}
	if err := reg.stop(); err != nil {
		t.Errorf("registry exit on SIGTERM: %v", err)
	}
}

// TestRestartContinuesBinding restarts the registry on the same Redis: the Call-ID and
// From-tag stay, and CSeq keeps going up by one.
func TestRestartContinuesBinding(t *testing.T) {
	host, port, prefix := sharedRedis(t, "restart")
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 6}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "pw")})
	cfg := registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 1", "startupSpread: 0s", "httpAddr: 127.0.0.1:0",
		"controlAddr: 127.0.0.1:0", "keyPrefix: \""+prefix+"\"",
		"cache:", "  provider: redis", fmt.Sprintf("  parameters: host=%s,port=%s", host, port))
	reg, _ := registry(t, cfg)
	waitState(t, controlClient(reg.control(), ""), "t1", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
	if err := reg.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	before := forKey(f.req.Requests(), "alice")
	last := before[len(before)-1].Req.GetMessage()
	registry(t, cfg)
	recs := waitRecords(t, f, "REGISTER after restart", atLeast("alice", len(before)+1))
	next := forKey(recs, "alice")[len(before)].Req.GetMessage()
	if next.GetCallId().GetCallId() != last.GetCallId().GetCallId() || next.GetFrom().GetTag() != last.GetFrom().GetTag() {
		t.Errorf("restart changed the binding's identity: %s/%s -> %s/%s", last.GetCallId().GetCallId(), last.GetFrom().GetTag(),
			next.GetCallId().GetCallId(), next.GetFrom().GetTag())
	}
	// The next process continues above the CSeq ceiling the record holds (every CSeq
	// that can have been sent): higher, and within one reservation block.
	if c := cseq(t, next); c <= cseq(t, last) || c > cseq(t, last)+101 {
		t.Errorf("CSeq %d after restart, last before was %d", c, cseq(t, last))
	}
}

// TestUnregisterOnShutdown: with unregisterOnShutdown, SIGTERM removes every binding
// and the registry exits 0.
func TestUnregisterOnShutdown(t *testing.T) {
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.a.example", "alice", "pw"), trunk("t2", "sip.b.example", "bob", "pw")})
	reg, _ := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 0s", "httpAddr: 127.0.0.1:0",
		"controlAddr: 127.0.0.1:0", "unregisterOnShutdown: true"))
	waitRecords(t, f, "both registered", func(r []fakerequester.Recorded) bool {
		return len(forKey(r, "alice")) >= 1 && len(forKey(r, "bob")) >= 1
	})
	api := controlClient(reg.control(), "")
	waitState(t, api, "t1", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
	waitState(t, api, "t2", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
	if err := reg.stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		r := forKey(f.req.Requests(), u)
		if got := r[len(r)-1].Req.GetMessage().GetExpires().GetExpires(); got != 0 {
			t.Errorf("%s: last REGISTER has Expires %d, want 0", u, got)
		}
	}
}

// TestValidateCommand checks `registry validate` on good and bad files.
func TestValidateCommand(t *testing.T) {
	good := writeFile(t, "good.yaml", registryConfig("requester:51909", "apiserver:51907"))
	p := startProc(t, "registry", nil, "validate", "--config", good)
	if err := p.wait(30 * time.Second); err != nil {
		t.Fatalf("validate good file: %v\n%s", err, p.output())
	}
	bad := writeFile(t, "bad.yaml", strings.Replace(registryConfig("requester:51909", "apiserver:51907"), "edge.test:5060", "edge.test", 1))
	p = startProc(t, "registry", nil, "validate", "--config", bad)
	if err := p.wait(30 * time.Second); err == nil {
		t.Fatal("validate accepted an EdgePort without a port")
	}
	out := strings.TrimSpace(p.output())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "bad.yaml") || !strings.Contains(out, "spec.edgePorts[0].address") {
		t.Errorf("validate output %q: want one line naming the file and the field", out)
	}
}

func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s: %v", addr, err)
		}
		t.Skipf("redis at %s: %v", addr, err)
	}
	c.Close()
	return addr
}

// sharedRedis returns the shared Redis (see redisAddr) and a key prefix of the test's
// own, named after what; every key under it, and under the cluster keys' prefix
// derived from it, is deleted when the test ends (after the processes it starts stop).
func sharedRedis(t *testing.T, what string) (host, port, prefix string) {
	t.Helper()
	host, port, _ = net.SplitHostPort(redisAddr(t))
	prefix = fmt.Sprintf("e2e-%s-%d-%d:", what, os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		for _, pattern := range []string{prefix + "*", strings.TrimSuffix(prefix, ":") + "-cluster:*"} {
			out, err := exec.Command("redis-cli", "-h", host, "-p", port, "--scan", "--pattern", pattern).Output()
			if err != nil {
				t.Logf("cleanup: redis-cli --scan %s: %v", pattern, err)
				continue
			}
			for keys := range slices.Chunk(strings.Fields(string(out)), 500) {
				if out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port, "del"}, keys...)...).CombinedOutput(); err != nil {
					t.Logf("cleanup: redis-cli del: %v: %s", err, out)
				}
			}
		}
	})
	return host, port, prefix
}

var _ = codes.OK
