package fakerequester_test

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/fakerequester"
)

// start serves s on a loopback port and returns a client for it.
func start(t *testing.T, s *fakerequester.Server) requesterv2beta1.RequesterClient {
	t.Helper()
	return startB(t, s)
}

// startB is start for tests and benchmarks.
func startB(t testing.TB, s *fakerequester.Server) requesterv2beta1.RequesterClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return requesterv2beta1.NewRequesterClient(cc)
}

// reg describes a REGISTER to send.
type reg struct {
	user    string // AOR user
	target  string // "host:port"; default 10.0.0.1:5060
	expires int32  // asked; -1 sends no Expires
	cseq    string // default "1 REGISTER"
	exts    []*sipmessagev2beta1.Extension
	auth    *sipmessagev2beta1.Authorization
}

// request builds the SendMessageRequest the registry would send for r.
func (r reg) request() *requesterv2beta1.SendMessageRequest {
	if r.target == "" {
		r.target = "10.0.0.1:5060"
	}
	if r.cseq == "" {
		r.cseq = "1 REGISTER"
	}
	host, _, _ := net.SplitHostPort(r.target)
	aor := func() *sipmessagev2beta1.Address {
		return &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: r.user, Host: host, Port: -1}}
	}
	msg := &sipmessagev2beta1.SIPMessage{
		MessageType:   &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{Host: host, Port: -1}},
		From:          &sipmessagev2beta1.From{Address: aor(), Tag: "tag-" + r.user},
		To:            &sipmessagev2beta1.To{Address: aor()},
		CallId:        &sipmessagev2beta1.CallID{CallId: "call-" + r.user},
		MaxForwards:   &sipmessagev2beta1.MaxForwards{MaxForwards: 70},
		Authorization: r.auth,
		Extensions: append([]*sipmessagev2beta1.Extension{
			{Name: "CSeq", Value: r.cseq},
			{Name: "User-Agent", Value: "test"},
		}, r.exts...),
	}
	if r.expires >= 0 {
		msg.Expires = &sipmessagev2beta1.Expires{Expires: r.expires}
	}
	return &requesterv2beta1.SendMessageRequest{
		Target:    r.target,
		Method:    processorv2beta1.Method_REGISTER,
		Transport: commonv2beta1.Transport_UDP,
		Message:   msg,
	}
}

// ext returns the value of m's extension name, or "" when absent.
func ext(m *sipmessagev2beta1.SIPMessage, name string) string {
	for _, e := range m.GetExtensions() {
		if e.GetName() == name {
			return e.GetValue()
		}
	}
	return ""
}
