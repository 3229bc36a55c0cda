// Package sipmsg builds the REGISTER requests the registry sends through Routr's
// Requester and reads the answers. It is pure: it knows RFC 3261 §10 and the Routr wire
// contract (docs/wire.md), nothing about transports, stores or clocks.
package sipmsg

import (
	"fmt"
	"strconv"
	"strings"

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

// Target is the host:port the Requester sends to; an IPv6 Domain (bare or in brackets)
// is written in brackets: "[2001:db8::1]:5060".
func (r Register) Target() string {
	return HostPort(r.Domain, r.Port)
}

// RequestURI is the Request-URI as Routr's Requester puts it on the wire
// (sip:target;transport=x, no user part): the uri a digest answer must name.
func (r Register) RequestURI() string {
	return "sip:" + r.Target() + ";transport=" + r.Transport
}

// AOR is the address-of-record, sip:user@domain.
func (r Register) AOR() string { return AOR(r.User, r.Domain) }

// AOR formats an address-of-record: the user part escaped as in Build (EscapeUser; a
// control character is escaped too, never written raw), an IPv6 domain (bare or in
// brackets) in brackets: "sip:alice@sip.example.com", "sip:alice@[2001:db8::1]".
func AOR(user, domain string) string {
	if user == "" {
		return "sip:" + uriHost(domain)
	}
	return "sip:" + escapeUser(user) + "@" + uriHost(domain)
}

// IsAOR reports whether s is AOR(user, domain), without building it when the user
// part needs no escaping and the host no brackets (the usual case).
func IsAOR(s, user, domain string) bool {
	u, h := escapeUser(user), uriHost(domain)
	if user == "" {
		return len(s) == 4+len(h) && s[:4] == "sip:" && s[4:] == h
	}
	return len(s) == 5+len(u)+len(h) && s[:4] == "sip:" && s[4:4+len(u)] == u && s[4+len(u)] == '@' && s[5+len(u):] == h
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
// of their own travel as extensions. The user part is escaped (EscapeUser) and IPv6 hosts
// are written in brackets.
//
// Whatever r holds, no string field of the result holds a control character (CR, LF and
// NUL included; HTAB only where Check allows it) or invalid UTF-8: any such character
// left after building is %XX-escaped (so a bad value goes out visibly spoiled, never as a
// header of its own). Build never fails: it is what Explain shows. Before sending, use
// BuildChecked, which refuses such a Register instead.
func Build(r Register) *requesterv2beta1.SendMessageRequest {
	req := build(r)
	scrub(req)
	return req
}

// BuildChecked is Build for sending: it refuses (ErrInvalidRequest, naming the field)
// a Register whose values are outside their grammar (Validate), and a request that
// Check refuses. BuildPooled builds the same request in a block from a pool.
func BuildChecked(r Register) (*requesterv2beta1.SendMessageRequest, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := buildBlock(r)
	if r.Auth != nil || b.check() != nil {
		// The walk over every field: the digest answer's messages, or the error that
		// names the field (b.check only says whether there is one).
		if err := Check(&b.req); err != nil {
			return nil, err
		}
	}
	return &b.req, nil
}

// Validate checks every value of r that goes into the request against its RFC 3261
// grammar: Domain and EdgePortHost (hostname, IPv4, IPv6 bare or in brackets), the ports
// (0..65535), Transport (udp or tcp), User (no control character, valid UTF-8: the rest
// is escaped), CallID (word ["@" word]), FromTag and each of Methods (tokens),
// UserAgent (text: no control character but HTAB), GatewayAuth (no control character)
// and the digest answer's values (no control character, '"' or '\'; tokens for the
// algorithm and qop). The error wraps ErrInvalidRequest and names the field, e.g.
// "UserAgent: control character U+000D".
func (r Register) Validate() error {
	err := func(field string, e error) error {
		return fmt.Errorf("%w: %s: %v", ErrInvalidRequest, field, e)
	}
	if _, e := ParseHost(r.Domain); e != nil {
		return err("Domain", e)
	}
	if r.Port < 0 || r.Port > 65535 {
		return err("Port", fmt.Errorf("%d out of range", r.Port))
	}
	if _, ok := TransportProto(r.Transport); !ok {
		return err("Transport", fmt.Errorf("%q is not udp or tcp", r.Transport))
	}
	if _, e := EscapeUser(r.User); e != nil {
		return err("User", e)
	}
	if e := checkCallID(r.CallID); e != nil {
		return err("CallID", e)
	}
	if e := checkToken(r.FromTag); e != nil {
		return err("FromTag", e)
	}
	if r.EdgePortHost != "" {
		if _, e := ParseHost(r.EdgePortHost); e != nil {
			return err("EdgePortHost", e)
		}
	}
	if r.EdgePortPort < 0 || r.EdgePortPort > 65535 {
		return err("EdgePortPort", fmt.Errorf("%d out of range", r.EdgePortPort))
	}
	for i, m := range r.Methods {
		if e := checkToken(m); e != nil {
			return err(fmt.Sprintf("Methods[%d]", i), e)
		}
	}
	if e := checkText(r.UserAgent, ruleText); e != nil {
		return err("UserAgent", e)
	}
	if e := checkText(r.GatewayAuth, ruleLine); e != nil {
		return err("GatewayAuth", e)
	}
	if a := r.Auth; a != nil {
		for _, f := range []struct{ name, v string }{
			{"Username", a.Username}, {"Realm", a.Realm}, {"Nonce", a.Nonce}, {"URI", a.URI},
			{"Response", a.Response}, {"Cnonce", a.Cnonce}, {"Opaque", a.Opaque},
		} {
			if e := checkText(f.v, ruleQuoted); e != nil {
				return err("Auth."+f.name, e)
			}
		}
		for _, f := range []struct{ name, v string }{{"Algorithm", a.Algorithm}, {"Qop", a.Qop}} {
			if f.v == "" {
				continue
			}
			if e := checkToken(f.v); e != nil {
				return err("Auth."+f.name, e)
			}
		}
	}
	return nil
}

// blockExts is how many extensions a block holds: CSeq, User-Agent, Supported, Require,
// Proxy-Require and X-Gateway-Auth, and two Allow (none by default). More are allocated
// one by one.
const blockExts = 8

// block holds every message of one request, so that build allocates them at once (the
// REGISTER is built at every refresh of every binding). The messages are never copied out
// of it: the request points into it, and the block lives as long as any of them (a
// pooled block until its Release).
type block struct {
	req      requesterv2beta1.SendMessageRequest
	msg      sipmessagev2beta1.SIPMessage
	ruri     sipmessagev2beta1.SIPMessage_RequestUri
	ruriURI  sipmessagev2beta1.SipURI
	from     sipmessagev2beta1.From
	fromAddr sipmessagev2beta1.Address
	fromURI  sipmessagev2beta1.SipURI
	to       sipmessagev2beta1.To
	toAddr   sipmessagev2beta1.Address
	toURI    sipmessagev2beta1.SipURI
	callID   sipmessagev2beta1.CallID
	expires  sipmessagev2beta1.Expires
	maxFwd   sipmessagev2beta1.MaxForwards
	route    [1]*sipmessagev2beta1.Route
	routeMsg sipmessagev2beta1.Route
	epAddr   sipmessagev2beta1.Address
	epURI    sipmessagev2beta1.SipURI
	extPtrs  [blockExts]*sipmessagev2beta1.Extension
	exts     [blockExts]sipmessagev2beta1.Extension
}

// ext appends the extension name: value to the message, in the block while it has room.
func (b *block) ext(name, value string) {
	n := len(b.msg.Extensions)
	if n < blockExts {
		e := &b.exts[n]
		e.Name, e.Value = name, value
		b.msg.Extensions = append(b.msg.Extensions, e)
		return
	}
	b.msg.Extensions = append(b.msg.Extensions, &sipmessagev2beta1.Extension{Name: name, Value: value})
}

// build makes the request without scrubbing it: one allocation for its messages (block)
// and one for its strings (the target and the CSeq value share theirs).
func build(r Register) *requesterv2beta1.SendMessageRequest { return &buildBlock(r).req }

// buildBlock is build, answering the block the request is in.
func buildBlock(r Register) *block {
	b := new(block)
	b.fill(r)
	return b
}

// fill builds r's request in b, which must be zero (new, or cleared by Release).
func (b *block) fill(r Register) {
	transport, _ := TransportProto(r.Transport)
	user, domain := escapeUser(r.User), uriHost(r.Domain)
	target, cseq := targetAndCSeq(r)
	port := int32(r.Port)
	if port == 0 {
		port = 5060
	}
	b.ruriURI = sipmessagev2beta1.SipURI{Host: domain, Port: port, TransportParam: r.Transport}
	b.ruri.RequestUri = &b.ruriURI
	b.fromURI = sipmessagev2beta1.SipURI{User: user, Host: domain, Port: -1}
	b.fromAddr.Uri = &b.fromURI
	b.from.Address, b.from.Tag = &b.fromAddr, r.FromTag
	b.toURI = sipmessagev2beta1.SipURI{User: user, Host: domain, Port: -1}
	b.toAddr.Uri = &b.toURI
	b.to.Address = &b.toAddr
	b.callID.CallId = r.CallID
	b.expires.Expires = int32(r.Expires)
	b.maxFwd.MaxForwards = MaxForwards
	msg := &b.msg
	msg.MessageType = &b.ruri
	msg.From, msg.To, msg.CallId = &b.from, &b.to, &b.callID
	msg.Expires, msg.MaxForwards = &b.expires, &b.maxFwd
	if r.EdgePortHost != "" {
		ep := int32(r.EdgePortPort)
		if ep == 0 {
			ep = -1
		}
		b.epURI = sipmessagev2beta1.SipURI{Host: uriHost(r.EdgePortHost), Port: ep, TransportParam: r.Transport, LrParam: true}
		b.epAddr.Uri = &b.epURI
		b.routeMsg.Address = &b.epAddr
		b.route[0] = &b.routeMsg
		msg.Route = b.route[:]
	}
	msg.Extensions = b.extPtrs[:0]
	b.ext("CSeq", cseq)
	if r.UserAgent != "" {
		b.ext("User-Agent", r.UserAgent)
	}
	for _, m := range r.Methods {
		b.ext("Allow", m)
	}
	b.ext("Supported", "path")
	if r.Gin {
		b.ext("Require", "gin")
		b.ext("Proxy-Require", "gin")
	}
	if r.GatewayAuth != "" {
		b.ext(GatewayAuthHeader, r.GatewayAuth)
	}
	if r.Auth != nil {
		r.Auth.Apply(msg, "REGISTER")
	}
	b.req.Target = target
	b.req.Method = processorv2beta1.Method_REGISTER
	b.req.Transport = transport
	b.req.Message = msg
}

// targetAndCSeq returns r.Target() and the CSeq value ("7 REGISTER") from one string.
func targetAndCSeq(r Register) (target, cseq string) {
	host := bareHost(r.Domain)
	port := r.Port
	if port == 0 {
		port = 5060
	}
	var num [24]byte
	p := strconv.AppendInt(num[:0], int64(port), 10)
	bracket := strings.IndexByte(host, ':') >= 0 // as net.JoinHostPort does
	n := len(host) + 1 + len(p)
	if bracket {
		n += 2
	}
	var c [24]byte
	cs := strconv.AppendUint(c[:0], uint64(r.CSeq), 10)
	var sb strings.Builder
	sb.Grow(n + len(cs) + len(" REGISTER"))
	if bracket {
		sb.WriteByte('[')
	}
	sb.WriteString(host)
	if bracket {
		sb.WriteByte(']')
	}
	sb.WriteByte(':')
	sb.Write(p)
	sb.Write(cs)
	sb.WriteString(" REGISTER")
	s := sb.String()
	return s[:n], s[n:]
}
