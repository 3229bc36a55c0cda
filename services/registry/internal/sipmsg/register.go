// Package sipmsg builds the REGISTER requests the registry sends through Routr's
// Requester and reads the answers. It is pure: it knows RFC 3261 §10 and the Routr wire
// contract (shared WIRE.md), nothing about transports, stores or clocks.
package sipmsg

import (
	"net"
	"strconv"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/sipauth"
)

// MaxForwards is the Max-Forwards of every REGISTER.
const MaxForwards = 70

// GatewayAuthHeader carries base64(username:password) for Routr's EdgePort.
const GatewayAuthHeader = "X-Gateway-Auth"

// Register describes one REGISTER of one binding.
type Register struct {
	// Domain and Port are the registrar's (the trunk URI's host and port); Port 0 means 5060.
	Domain string
	Port   int
	// Transport is "udp" or "tcp".
	Transport string
	// User is the user part of the address-of-record sip:User@Domain.
	User string
	// CallID, FromTag and CSeq identify the binding and this request (RFC 3261 §10.2).
	CallID  string
	FromTag string
	CSeq    uint32
	// Expires is the lifetime asked for; 0 removes the binding.
	Expires int
	// EdgePortHost and EdgePortPort give the Route to Routr's EdgePort (none when empty).
	EdgePortHost string
	EdgePortPort int
	// Methods are sent as one Allow header each.
	Methods   []string
	UserAgent string
	// Gin adds Require: gin and Proxy-Require: gin (RFC 6140), as Routr's registry does.
	Gin bool
	// GatewayAuth is the X-Gateway-Auth value (base64 of username:password); none when empty.
	GatewayAuth string
	// Auth answers a digest challenge (direct mode); nil when none.
	Auth *sipauth.Authorization
}

// Target is the host:port the Requester sends to.
func (r Register) Target() string {
	port := r.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(r.Domain, strconv.Itoa(port))
}

// RequestURI is the Request-URI as Routr's Requester puts it on the wire
// (sip:target;transport=x, no user part): the uri a digest answer must name.
func (r Register) RequestURI() string {
	return "sip:" + r.Target() + ";transport=" + r.Transport
}

// AOR is the address-of-record, sip:user@domain.
func (r Register) AOR() string { return AOR(r.User, r.Domain) }

// AOR formats an address-of-record.
func AOR(user, domain string) string {
	if user == "" {
		return "sip:" + domain
	}
	return "sip:" + user + "@" + domain
}

// TransportProto maps "udp"/"tcp" to Routr's enum; ok is false for anything Routr's
// Requester cannot send (TLS, WS, WSS, SCTP fail there with UNKNOWN).
func TransportProto(t string) (commonv2beta1.Transport, bool) {
	switch t {
	case "udp":
		return commonv2beta1.Transport_UDP, true
	case "tcp":
		return commonv2beta1.Transport_TCP, true
	}
	return commonv2beta1.Transport_UDP, false
}

// Build makes the SendMessageRequest for r. Ports are -1 where unknown (Routr writes 0
// as ":0"), no Contact is sent (the Requester adds its own), and headers without a field
// of their own travel as extensions.
func Build(r Register) *requesterv2beta1.SendMessageRequest {
	transport, _ := TransportProto(r.Transport)
	aor := func() *sipmessagev2beta1.Address {
		return &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: r.User, Host: r.Domain, Port: -1}}
	}
	port := int32(r.Port)
	if port == 0 {
		port = 5060
	}
	msg := &sipmessagev2beta1.SIPMessage{
		MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{
			Host: r.Domain, Port: port, TransportParam: r.Transport,
		}},
		From:        &sipmessagev2beta1.From{Address: aor(), Tag: r.FromTag},
		To:          &sipmessagev2beta1.To{Address: aor()},
		CallId:      &sipmessagev2beta1.CallID{CallId: r.CallID},
		Expires:     &sipmessagev2beta1.Expires{Expires: int32(r.Expires)},
		MaxForwards: &sipmessagev2beta1.MaxForwards{MaxForwards: MaxForwards},
	}
	if r.EdgePortHost != "" {
		ep := int32(r.EdgePortPort)
		if ep == 0 {
			ep = -1
		}
		msg.Route = []*sipmessagev2beta1.Route{{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{
			Host: r.EdgePortHost, Port: ep, TransportParam: r.Transport, LrParam: true,
		}}}}
	}
	ext := func(name, value string) {
		msg.Extensions = append(msg.Extensions, &sipmessagev2beta1.Extension{Name: name, Value: value})
	}
	ext("CSeq", strconv.FormatUint(uint64(r.CSeq), 10)+" REGISTER")
	if r.UserAgent != "" {
		ext("User-Agent", r.UserAgent)
	}
	for _, m := range r.Methods {
		ext("Allow", m)
	}
	ext("Supported", "path")
	if r.Gin {
		ext("Require", "gin")
		ext("Proxy-Require", "gin")
	}
	if r.GatewayAuth != "" {
		ext(GatewayAuthHeader, r.GatewayAuth)
	}
	if r.Auth != nil {
		r.Auth.Apply(msg, "REGISTER")
	}
	return &requesterv2beta1.SendMessageRequest{
		Target:    r.Target(),
		Method:    processorv2beta1.Method_REGISTER,
		Transport: transport,
		Message:   msg,
	}
}
