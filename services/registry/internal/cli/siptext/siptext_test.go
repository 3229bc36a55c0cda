package siptext_test

import (
	"slices"
	"strings"
	"testing"

	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/cli/siptext"
)

// TestLines: the fields `registry explain`'s golden file leaves out (Via, Contact,
// Record-Route, display names, header parameters, sips, a body) render as SIP text.
func TestLines(t *testing.T) {
	aor := &sipmessagev2beta1.Address{DisplayName: "Acme Trunk", Uri: &sipmessagev2beta1.SipURI{User: "acme", Host: "sip.acme.example", Secure: true}}
	req := &requesterv2beta1.SendMessageRequest{
		Method: processorv2beta1.Method_REGISTER,
		Message: &sipmessagev2beta1.SIPMessage{
			MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{Host: "sip.acme.example", Secure: true}},
			Via:         []*sipmessagev2beta1.Via{{Transport: "tls", Host: "10.0.0.1", Port: 5061, Branch: "z9hG4bK1", RPortFlag: true, Received: "192.0.2.1"}},
			RecordRoute: []*sipmessagev2beta1.RecordRoute{{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{Host: "edge.test", LrParam: true}},
				Parameters: map[string]string{"b": "2", "a": ""}}},
			From:          &sipmessagev2beta1.From{Address: aor, Tag: "t1"},
			To:            &sipmessagev2beta1.To{Address: aor},
			Contact:       &sipmessagev2beta1.Contact{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: "acme", Host: "10.0.0.1", Port: 5061}}, Expires: 600, QValue: 0.5},
			ContentLength: &sipmessagev2beta1.ContentLength{ContentLength: 4},
			Body:          "body\r\n",
		},
	}
	want := []string{
		"REGISTER sips:sip.acme.example SIP/2.0",
		"Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK1;rport;received=192.0.2.1",
		"Record-Route: <sip:edge.test;lr>;a;b=2",
		`From: "Acme Trunk" <sips:acme@sip.acme.example>;tag=t1`,
		`To: "Acme Trunk" <sips:acme@sip.acme.example>`,
		"Contact: <sip:acme@10.0.0.1:5061>;expires=600;q=0.5",
		"Content-Length: 4",
		"",
		"body",
	}
	if got := siptext.Lines(req); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
