package siprequester_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonpb "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorpb "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/internal/syncbuf"
	"sipreg.dev/tools/kamailio"
	"sipreg.dev/tools/siprequester"
)

// callTimeout is the gRPC deadline of a call that expects an answer; it is longer than
// the transaction timeouts used here.
const callTimeout = 20 * time.Second

// requester is a running siprequester with a gRPC client.
type requester struct {
	srv    *siprequester.Server
	client requesterpb.RequesterClient
}

func startRequester(t *testing.T, opts siprequester.Options) *requester {
	t.Helper()
	var logs syncbuf.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := siprequester.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("siprequester log:\n%s", logs.String())
		}
	})
	return &requester{srv: srv, client: requesterpb.NewRequesterClient(conn)}
}

func (r *requester) send(t *testing.T, in *requesterpb.SendMessageRequest) *sipmessagepb.SIPMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := r.client.SendMessage(ctx, in)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return res.GetMessage()
}

// binding is the identity of one registration: what stays the same across its REGISTERs.
type binding struct {
	user, domain, callID, fromTag string
	cseq                          int
	target                        string
	transport                     commonpb.Transport
}

// register builds the next REGISTER of b, as the registry does.
func (b *binding) register(expires int32, extra ...*sipmessagepb.Extension) *requesterpb.SendMessageRequest {
	b.cseq++
	aor := func() *sipmessagepb.Address {
		return &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{User: b.user, Host: b.domain, Port: -1}}
	}
	host, _, _ := net.SplitHostPort(b.target)
	return &requesterpb.SendMessageRequest{
		Target:    b.target,
		Method:    processorpb.Method_REGISTER,
		Transport: b.transport,
		Message: &sipmessagepb.SIPMessage{
			MessageType: &sipmessagepb.SIPMessage_RequestUri{RequestUri: &sipmessagepb.SipURI{Host: host, Port: -1}},
			From:        &sipmessagepb.From{Address: aor(), Tag: b.fromTag},
			To:          &sipmessagepb.To{Address: aor()},
			CallId:      &sipmessagepb.CallID{CallId: b.callID},
			MaxForwards: &sipmessagepb.MaxForwards{MaxForwards: 70},
			Expires:     &sipmessagepb.Expires{Expires: expires},
			Extensions: append([]*sipmessagepb.Extension{
				{Name: "CSeq", Value: fmt.Sprintf("%d REGISTER", b.cseq)},
				{Name: "User-Agent", Value: "siprequester-test"},
			}, extra...),
		},
	}
}

func (b *binding) requestURI() string {
	return "sip:" + b.target + ";transport=" + strings.ToLower(b.transport.String())
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// digest answers an MD5 qop=auth challenge for a REGISTER (RFC 2617 §3.2.2).
func digest(user, password, realm, nonce, uri string) (response, cnonce string) {
	return digestWith(md5hex, user, password, realm, nonce, uri)
}

// digestWith is digest with another hash (RFC 8760 for SHA-256).
func digestWith(h func(string) string, user, password, realm, nonce, uri string) (response, cnonce string) {
	cnonce = "0a4f113b"
	ha1 := h(user + ":" + realm + ":" + password)
	ha2 := h("REGISTER:" + uri)
	return h(ha1 + ":" + nonce + ":00000001:" + cnonce + ":auth:" + ha2), cnonce
}

// authorization answers the www_authenticate of a 401 with the authorization field,
// with MD5 or, when the challenge asks for it, SHA-256.
func (b *binding) authorization(password string, c *sipmessagepb.WWWAuthenticate) *sipmessagepb.Authorization {
	h, alg := md5hex, "MD5"
	if strings.EqualFold(c.GetAlgorithm(), "SHA-256") {
		h, alg = sha256hex, "SHA-256"
	}
	response, cnonce := digestWith(h, b.user, password, c.GetRealm(), c.GetNonce(), b.requestURI())
	return &sipmessagepb.Authorization{
		Scheme: "Digest", Username: b.user, Realm: c.GetRealm(), Nonce: c.GetNonce(), Uri: b.requestURI(),
		Response: response, Algorithm: alg, Qop: "auth", NonceCount: 1, CNonce: cnonce, Opaque: c.GetOpaque(),
	}
}

func extension(m *sipmessagepb.SIPMessage, name string) (string, bool) {
	for _, e := range m.GetExtensions() {
		if strings.EqualFold(e.GetName(), name) {
			return e.GetValue(), true
		}
	}
	return "", false
}

// registerWithAuth sends a REGISTER, expects a 401 and answers it with the authorization
// field (CSeq + 1); it returns the final answer.
func registerWithAuth(t *testing.T, r *requester, b *binding, password string, expires int32) *sipmessagepb.SIPMessage {
	t.Helper()
	res := r.send(t, b.register(expires))
	if res.GetResponseType() != sipmessagepb.ResponseType_UNAUTHORIZED {
		t.Fatalf("first REGISTER: %s %q, want UNAUTHORIZED", res.GetResponseType(), res.GetReasonPhrase())
	}
	c := res.GetWwwAuthenticate()
	if c.GetRealm() != "test.local" || c.GetNonce() == "" || c.GetQop() != "auth" || c.GetScheme() != "Digest" {
		t.Fatalf("www_authenticate %v", c)
	}
	if raw, ok := extension(res, "WWW-Authenticate"); !ok || !strings.Contains(raw, c.GetNonce()) {
		t.Errorf("raw WWW-Authenticate extension %q", raw)
	}
	in := b.register(expires)
	in.Message.Authorization = b.authorization(password, c)
	return r.send(t, in)
}

func TestKamailio(t *testing.T) {
	t.Parallel()
	for _, transport := range []commonpb.Transport{commonpb.Transport_UDP, commonpb.Transport_TCP} {
		t.Run(transport.String(), func(t *testing.T) {
			t.Parallel()
			k := kamailio.Start(t, kamailio.Options{Users: map[string]kamailio.User{
				"alice": {Password: "alicepw"},
				"bob":   {Password: "bobpw", Proxy: true},
				"carol": {Password: "carolpw"},
			}})
			r := startRequester(t, siprequester.Options{})
			contact := fmt.Sprintf("sip:%%s@%s;transport=%s", r.srv.SIPAddr(transport.String()), strings.ToLower(transport.String()))
			newBinding := func(user string) *binding {
				return &binding{user: user, domain: "test.local", callID: user + "-" + transport.String() + "@siprequester.test",
					fromTag: "tag-" + user, target: k.Addr, transport: transport}
			}

			alice := newBinding("alice")
			t.Run("register with digest", func(t *testing.T) {
				res := registerWithAuth(t, r, alice, "alicepw", 600)
				if res.GetResponseType() != sipmessagepb.ResponseType_OK {
					t.Fatalf("REGISTER with credentials: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if got := res.GetContact(); got.GetExpires() != 600 || got.GetAddress().GetUri().GetUser() != "alice" {
					t.Errorf("contact %v, want alice with expires 600", got)
				}
				if res.GetCallId().GetCallId() != alice.callID || res.GetFrom().GetTag() != alice.fromTag || res.GetTo().GetTag() == "" {
					t.Errorf("call-id %v from %v to %v", res.GetCallId(), res.GetFrom(), res.GetTo())
				}
				if cseq, _ := extension(res, "CSeq"); cseq != "2 REGISTER" {
					t.Errorf("CSeq extension %q, want 2 REGISTER", cseq)
				}
				bindings, err := k.Bindings("alice")
				if err != nil {
					t.Fatal(err)
				}
				if len(bindings) != 1 {
					t.Fatalf("bindings %+v, want one", bindings)
				}
				got := bindings[0]
				if got.CallID != alice.callID || got.CSeq != 2 || got.Address != fmt.Sprintf(contact, "alice") ||
					got.Expires <= 0 || got.Expires > 600 || got.UserAgent != "siprequester-test" {
					t.Errorf("binding %+v, want Call-ID %s, CSeq 2, address %s, expires <= 600", got, alice.callID, fmt.Sprintf(contact, "alice"))
				}
			})

			t.Run("proxy authentication", func(t *testing.T) {
				bob := newBinding("bob")
				res := r.send(t, bob.register(300))
				if res.GetResponseType() != sipmessagepb.ResponseType_PROXY_AUTHENTICATION_REQUIRED || res.GetWwwAuthenticate() != nil {
					t.Fatalf("first REGISTER: %s, www_authenticate %v", res.GetResponseType(), res.GetWwwAuthenticate())
				}
				challenge, ok := extension(res, "Proxy-Authenticate")
				nonce := regexp.MustCompile(`nonce="([^"]+)"`).FindStringSubmatch(challenge)
				if !ok || nonce == nil || !strings.Contains(challenge, `realm="test.local"`) {
					t.Fatalf("Proxy-Authenticate extension %q", challenge)
				}
				response, cnonce := digest("bob", "bobpw", "test.local", nonce[1], bob.requestURI())
				credentials := fmt.Sprintf(`Digest username="bob", realm="test.local", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"`,
					nonce[1], bob.requestURI(), response, cnonce)
				res = r.send(t, bob.register(300, &sipmessagepb.Extension{Name: "Proxy-Authorization", Value: credentials}))
				if res.GetResponseType() != sipmessagepb.ResponseType_OK || res.GetContact().GetExpires() != 300 {
					t.Fatalf("REGISTER with Proxy-Authorization: %s %q, contact %v", res.GetResponseType(), res.GetReasonPhrase(), res.GetContact())
				}
				if b, err := k.Bindings("bob"); err != nil || len(b) != 1 || b[0].CallID != bob.callID {
					t.Errorf("bob's bindings %+v, %v", b, err)
				}
			})

			t.Run("interval too brief", func(t *testing.T) {
				carol := newBinding("carol")
				res := registerWithAuth(t, r, carol, "carolpw", 30)
				if res.GetResponseType() != sipmessagepb.ResponseType_INTERVAL_TOO_BRIEF {
					t.Fatalf("REGISTER with Expires 30: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if v, ok := extension(res, "Min-Expires"); !ok || v != "60" {
					t.Errorf("Min-Expires extension %q, %v; want 60", v, ok)
				}
				if b, err := k.Bindings("carol"); err != nil || len(b) != 0 {
					t.Errorf("carol's bindings %+v, %v; want none", b, err)
				}
			})

			t.Run("unregister", func(t *testing.T) {
				res := registerWithAuth(t, r, alice, "alicepw", 0)
				if res.GetResponseType() != sipmessagepb.ResponseType_OK {
					t.Fatalf("REGISTER with Expires 0: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if b, err := k.Bindings("alice"); err != nil || len(b) != 0 {
					t.Errorf("alice's bindings after Expires 0: %+v, %v; want none", b, err)
				}
				d, err := k.Dump()
				if err != nil || len(d["bob"]) != 1 || len(d["alice"]) != 0 {
					t.Errorf("dump %+v, %v; want bob's binding only", d, err)
				}
			})

			t.Run("route to the registrar", func(t *testing.T) {
				host, port, _ := net.SplitHostPort(k.Addr)
				dave := newBinding("dave")
				dave.target = "test.local" // not resolvable: only the Route says where to go
				in := dave.register(300)
				in.Message.Route = []*sipmessagepb.Route{{Address: &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{
					Host: host, Port: atoi(t, port), LrParam: true, TransportParam: strings.ToLower(transport.String()),
				}}}}
				res := r.send(t, in)
				// dave is not in the user table: challenged like any unknown user.
				if res.GetResponseType() != sipmessagepb.ResponseType_UNAUTHORIZED {
					t.Errorf("REGISTER through a Route: %s %q, want UNAUTHORIZED", res.GetResponseType(), res.GetReasonPhrase())
				}
			})
		})
	}
}

// TestKamailioSHA256And403 runs against a registrar that offers SHA-256 and answers
// wrong credentials with 403.
func TestKamailioSHA256And403(t *testing.T) {
	t.Parallel()
	k := kamailio.Start(t, kamailio.Options{
		Users:      map[string]kamailio.User{"alice": {Password: "alicepw"}},
		AuthAlg:    "SHA-256",
		WrongPW403: true,
	})
	r := startRequester(t, siprequester.Options{})
	newBinding := func(callID string) *binding {
		return &binding{user: "alice", domain: "test.local", callID: callID, fromTag: "t", target: k.Addr}
	}

	res := registerWithAuth(t, r, newBinding("sha256"), "alicepw", 300)
	if res.GetResponseType() != sipmessagepb.ResponseType_OK {
		t.Errorf("SHA-256 credentials: %s %q", res.GetResponseType(), res.GetReasonPhrase())
	}

	res = registerWithAuth(t, r, newBinding("wrong"), "wrongpw", 300)
	if res.GetResponseType() != sipmessagepb.ResponseType_FORBIDDEN {
		t.Errorf("wrong password: %s %q, want FORBIDDEN", res.GetResponseType(), res.GetReasonPhrase())
	}
	if b, err := k.Bindings("alice"); err != nil || len(b) != 1 || b[0].CallID != "sha256" {
		t.Errorf("bindings %+v, %v; want the SHA-256 one only", b, err)
	}
}

func atoi(t *testing.T, s string) int32 {
	t.Helper()
	var n int32
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns a UDP or TCP port of 127.0.0.1 on which nothing listens.
func freePort(t *testing.T, network string) string {
	t.Helper()
	var addr string
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = c.LocalAddr().String()
		c.Close()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	return addr
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	r := startRequester(t, siprequester.Options{TransactionTimeout: 2 * time.Second})

	t.Run("nothing listens over UDP", func(t *testing.T) {
		t.Parallel()
		b := &binding{user: "alice", domain: "test.local", callID: "timeout-udp", fromTag: "t1",
			target: freePort(t, "udp"), transport: commonpb.Transport_UDP}
		res := r.send(t, b.register(300))
		if res.GetResponseType() != sipmessagepb.ResponseType_REQUEST_TIMEOUT || res.GetReasonPhrase() != "Request Timeout" {
			t.Errorf("answer %s %q, want REQUEST_TIMEOUT", res.GetResponseType(), res.GetReasonPhrase())
		}
		if res.GetCallId().GetCallId() != "timeout-udp" {
			t.Errorf("call-id %v", res.GetCallId())
		}
	})

	t.Run("nothing listens over TCP", func(t *testing.T) {
		t.Parallel()
		b := &binding{user: "alice", domain: "test.local", callID: "timeout-tcp", fromTag: "t2",
			target: freePort(t, "tcp"), transport: commonpb.Transport_TCP}
		res := r.send(t, b.register(300))
		if res.GetResponseType() != sipmessagepb.ResponseType_REQUEST_TIMEOUT {
			t.Errorf("answer %s %q, want REQUEST_TIMEOUT", res.GetResponseType(), res.GetReasonPhrase())
		}
	})

	t.Run("client deadline", func(t *testing.T) {
		t.Parallel()
		slow := startRequester(t, siprequester.Options{TransactionTimeout: time.Minute})
		b := &binding{user: "alice", domain: "test.local", callID: "deadline", fromTag: "t3",
			target: freePort(t, "udp"), transport: commonpb.Transport_UDP}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := slow.client.SendMessage(ctx, b.register(300))
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("error %v, want DeadlineExceeded", err)
		}
	})
}

func TestUnsupportedTransports(t *testing.T) {
	t.Parallel()
	r := startRequester(t, siprequester.Options{})
	for _, transport := range []commonpb.Transport{commonpb.Transport_TLS, commonpb.Transport_SCTP, commonpb.Transport_WS, commonpb.Transport_WSS} {
		b := &binding{user: "alice", domain: "test.local", callID: "tls", fromTag: "t", target: "127.0.0.1:5061", transport: transport}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := r.client.SendMessage(ctx, b.register(300))
		cancel()
		if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "only UDP and TCP") {
			t.Errorf("%s: error %v, want Unknown: ... only UDP and TCP", transport, err)
		}
	}

	// A malformed message is refused before anything is sent.
	b := &binding{user: "alice", domain: "test.local", callID: "bad", fromTag: "t", target: "127.0.0.1:5060", transport: commonpb.Transport_UDP}
	in := b.register(300)
	in.Message.CallId = nil
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := r.client.SendMessage(ctx, in); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no Call-ID: error %v, want InvalidArgument", err)
	}
}

// fakeRegistrar answers every request it receives on UDP with the scripted status codes
// (all but the last are sent first, as provisional or stray responses) and records the
// requests.
type fakeRegistrar struct {
	conn  net.PacketConn
	codes []int

	mu       sync.Mutex
	requests []string
	arrived  chan struct{} // one value per request received, dropped when full
}

func startFakeRegistrar(t *testing.T, codes ...int) *fakeRegistrar {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistrar{conn: conn, codes: codes, arrived: make(chan struct{}, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.requests = append(f.requests, string(buf[:n]))
			f.mu.Unlock()
			select {
			case f.arrived <- struct{}{}:
			default:
			}
			msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
			req, ok := msg.(*sip.Request)
			if err != nil || !ok {
				continue
			}
			req.SetSource(addr.String())
			for _, code := range f.codes {
				res := sip.NewResponseFromRequest(req, code, fmt.Sprintf("Status %d", code), nil)
				conn.WriteTo([]byte(res.String()), addr)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return f
}

func (f *fakeRegistrar) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func TestFakeRegistrar(t *testing.T) {
	t.Parallel()
	r := startRequester(t, siprequester.Options{TransactionTimeout: 2 * time.Second})

	t.Run("provisional responses are swallowed", func(t *testing.T) {
		t.Parallel()
		f := startFakeRegistrar(t, 100, 183, 403)
		b := &binding{user: "erin", domain: "test.local", callID: "prov", fromTag: "t", target: f.conn.LocalAddr().String()}
		res := r.send(t, b.register(300))
		if res.GetResponseType() != sipmessagepb.ResponseType_FORBIDDEN || res.GetReasonPhrase() != "Status 403" {
			t.Errorf("answer %s %q, want FORBIDDEN", res.GetResponseType(), res.GetReasonPhrase())
		}

		// What went on the wire.
		reqs := f.received()
		if len(reqs) == 0 {
			t.Fatal("nothing received")
		}
		wire := reqs[0]
		for _, want := range []string{
			"REGISTER sip:" + b.target + ";transport=udp SIP/2.0\r\n",
			"\r\nVia: SIP/2.0/UDP " + r.srv.SIPAddr("udp") + ";branch=z9hG4bK.",
			"\r\nContact: <sip:erin@" + r.srv.SIPAddr("udp") + ";transport=udp>\r\n",
			"\r\nFrom: <sip:erin@test.local>;tag=t\r\n",
			"\r\nTo: <sip:erin@test.local>\r\n",
			"\r\nCall-ID: prov\r\n",
			"\r\nCSeq: 1 REGISTER\r\n",
			"\r\nMax-Forwards: 70\r\n",
			"\r\nExpires: 300\r\n",
			"\r\nContent-Length: 0\r\n\r\n",
		} {
			if !strings.Contains(wire, want) {
				t.Errorf("request lacks %q:\n%s", want, wire)
			}
		}
		if strings.Count(wire, "\r\nContact:") != 1 {
			t.Errorf("request has more than one Contact:\n%s", wire)
		}
	})

	t.Run("unknown code", func(t *testing.T) {
		t.Parallel()
		f := startFakeRegistrar(t, 429)
		b := &binding{user: "erin", domain: "test.local", callID: "unknown", fromTag: "t", target: f.conn.LocalAddr().String()}
		res := r.send(t, b.register(300))
		if res.GetResponseType() != sipmessagepb.ResponseType_REQUEST_TIMEOUT || res.GetReasonPhrase() != "Request Timeout" {
			t.Errorf("429: answer %s %q, want REQUEST_TIMEOUT", res.GetResponseType(), res.GetReasonPhrase())
		}
	})
}

// TestStopWithCallInFlight stops the server while a SendMessage waits for an answer that
// never comes: the call ends with an error and Stop returns.
func TestStopWithCallInFlight(t *testing.T) {
	t.Parallel()
	r := startRequester(t, siprequester.Options{TransactionTimeout: time.Minute})
	f := startFakeRegistrar(t) // never answers
	b := &binding{user: "erin", domain: "test.local", callID: "stop", fromTag: "t", target: f.conn.LocalAddr().String()}

	result := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, err := r.client.SendMessage(ctx, b.register(300))
		result <- err
	}()
	select {
	case <-f.arrived:
	case <-time.After(callTimeout):
		t.Fatal("the REGISTER never arrived")
	}
	r.srv.Stop()
	if err := <-result; status.Code(err) == codes.OK || status.Code(err) == codes.DeadlineExceeded {
		t.Errorf("call in flight at Stop: error %v, want a cancellation or unavailability", err)
	}
}
