package siprequester_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/siprequester"
)

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
