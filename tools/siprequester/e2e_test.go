package siprequester_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonpb "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorpb "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/internal/syncbuf"
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
