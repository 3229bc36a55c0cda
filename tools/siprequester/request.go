package siprequester

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	processorpb "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// endpoint is one of the server's own SIP sockets. It goes into the top Via and into the
// Contact, so it is the binding a registrar stores.
type endpoint struct {
	transport string // "udp" or "tcp"
	host      string
	port      int
}

func (e endpoint) hostPort() string {
	return net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

// header is one header line of an outgoing request, in wire order.
type header struct {
	name, value string
}

// listHeaders may repeat: every extension of these names is sent. Any other header is
// single: the first one wins and later duplicates are dropped (docs/wire.md).
var listHeaders = map[string]bool{
	"allow": true, "supported": true, "require": true, "proxy-require": true,
	"allow-events": true, "accept": true, "accept-encoding": true, "accept-language": true,
	"unsupported": true, "route": true, "record-route": true, "warning": true,
	"proxy-authorization": true, "authorization": true, "path": true,
}

// ownHeaders are written by the requester itself; extensions of these names are dropped.
var ownHeaders = map[string]bool{"via": true, "contact": true, "content-length": true}

// requiredHeaders must be in every request (RFC 3261 §8.1.1); JAIN-SIP refuses to start
// a transaction without them, so Routr's Requester would never answer such a request.
var requiredHeaders = []string{"Call-ID", "From", "To", "CSeq", "Max-Forwards"}

// compactNames maps the compact header forms of RFC 3261 §7.3.3 (and friends) to their
// long names.
var compactNames = map[string]string{
	"i": "Call-ID", "f": "From", "t": "To", "m": "Contact", "v": "Via", "l": "Content-Length",
	"c": "Content-Type", "e": "Content-Encoding", "k": "Supported", "s": "Subject",
	"u": "Allow-Events", "o": "Event", "r": "Refer-To", "b": "Referred-By", "a": "Accept-Contact",
}

// requestParser turns the assembled text into a sipgo request. It parses only the headers
// sipgo's transaction and transport layers read eagerly; From, To, Route and the rest stay
// generic, so what goes on the wire is exactly the text built here (sipgo would, for
// instance, drop the ":0" of a zero port that Routr's Requester writes).
var requestParser = func() *sip.Parser {
	def := sip.DefaultHeadersParser()
	keep := make(map[string]sip.HeaderParser)
	for _, name := range []string{"via", "v", "cseq", "call-id", "i", "max-forwards", "content-length", "l"} {
		keep[name] = def[name]
	}
	return sip.NewParser(sip.WithHeadersParsers(keep))
}()

// buildRequest turns a SendMessageRequest into the SIP request Routr's Requester would
// send: see requestHeaders. The request has its transport and destination set (the first
// Route's host:port, else the target) and is ready for a client transaction.
func buildRequest(in *requesterpb.SendMessageRequest, self endpoint, branch string) (*sip.Request, error) {
	method, uri, hdrs, err := requestHeaders(in, self, branch)
	if err != nil {
		return nil, err
	}
	req, err := assemble(method, uri, hdrs, in.GetMessage().GetBody())
	if err != nil {
		return nil, err
	}
	req.SetTransport(strings.ToUpper(self.transport))

	host, port := req.Recipient.Host, req.Recipient.Port
	if route := req.Route(); route != nil {
		host, port = route.Address.Host, route.Address.Port
	} else if len(req.GetHeaders("Route")) > 0 {
		return nil, errors.New("route: cannot parse the first Route header")
	}
	if port <= 0 {
		port = sip.DefaultPort(self.transport)
	}
	req.SetDestination(net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)))
	return req, nil
}

// requestHeaders builds the request line and the header list, in wire order:
//
//   - Request-URI: sip:[request_uri.user@]target;transport=udp|tcp (the rest of
//     request_uri is ignored, as Routr does);
//   - the requester's own Via (branch, rport) on top, then the message's Vias;
//   - Max-Forwards, Route, From, To, Call-ID from their fields;
//   - the requester's own Contact <sip:[from-user@]host:port;transport=x>: the message's
//     contact field and Contact extensions are never sent;
//   - Expires and Authorization from their fields;
//   - every extension as a header: list headers (Allow, Supported, Require,
//     Proxy-Require, ...) repeat, single headers keep the first one, and a dedicated field
//     wins over an extension of the same name; CSeq and Proxy-Authorization come from here;
//   - Content-Length, computed from the body (content_length is ignored).
//
// A SipURI port of 0 is written as ":0" and a negative one is left out, as in Routr.
func requestHeaders(in *requesterpb.SendMessageRequest, self endpoint, branch string) (method, uri string, hdrs []header, err error) {
	msg := in.GetMessage()
	if msg == nil {
		return "", "", nil, errors.New("message is missing")
	}
	if in.GetMethod() == processorpb.Method_UNKNOWN || processorpb.Method_name[int32(in.GetMethod())] == "" {
		return "", "", nil, fmt.Errorf("method %v is not supported", in.GetMethod())
	}
	method = in.GetMethod().String()
	if in.GetTarget() == "" {
		return "", "", nil, errors.New("target is missing")
	}
	if user := msg.GetRequestUri().GetUser(); user != "" {
		uri = "sip:" + user + "@" + in.GetTarget() + ";transport=" + self.transport
	} else {
		uri = "sip:" + in.GetTarget() + ";transport=" + self.transport
	}

	seen := make(map[string]bool) // lower-case names of single headers already written
	add := func(name, value string) {
		hdrs = append(hdrs, header{name, value})
		seen[strings.ToLower(name)] = true
	}

	add("Via", fmt.Sprintf("SIP/2.0/%s %s;branch=%s;rport", strings.ToUpper(self.transport), self.hostPort(), branch))
	for i, v := range msg.GetVia() {
		if v.GetHost() == "" {
			return "", "", nil, fmt.Errorf("via[%d]: host is missing", i)
		}
		add("Via", renderVia(v))
	}
	if mf := msg.GetMaxForwards(); mf != nil {
		add("Max-Forwards", strconv.Itoa(int(mf.GetMaxForwards())))
	}
	for i, r := range msg.GetRoute() {
		a, err := renderAddress(r.GetAddress())
		if err != nil {
			return "", "", nil, fmt.Errorf("route[%d]: %w", i, err)
		}
		add("Route", a+renderParams(r.GetParameters()))
	}
	if f := msg.GetFrom(); f != nil {
		a, err := renderAddress(f.GetAddress())
		if err != nil {
			return "", "", nil, fmt.Errorf("from: %w", err)
		}
		add("From", a+renderTag(f.GetTag())+renderParams(f.GetParameters()))
	}
	if t := msg.GetTo(); t != nil {
		a, err := renderAddress(t.GetAddress())
		if err != nil {
			return "", "", nil, fmt.Errorf("to: %w", err)
		}
		add("To", a+renderTag(t.GetTag())+renderParams(t.GetParameters()))
	}
	if c := msg.GetCallId(); c != nil {
		if c.GetCallId() == "" {
			return "", "", nil, errors.New("call_id is empty")
		}
		add("Call-ID", c.GetCallId())
	}
	contactUser := ""
	if u := msg.GetFrom().GetAddress().GetUri().GetUser(); u != "" {
		contactUser = u + "@"
	}
	add("Contact", fmt.Sprintf("<sip:%s%s;transport=%s>", contactUser, self.hostPort(), self.transport))
	if e := msg.GetExpires(); e != nil {
		add("Expires", strconv.Itoa(int(e.GetExpires())))
	}
	if a := msg.GetAuthorization(); a != nil {
		add("Authorization", renderAuthorization(a))
	}

	for i, ext := range msg.GetExtensions() {
		name := canonicalName(ext.GetName())
		if !isToken(name) {
			return "", "", nil, fmt.Errorf("extensions[%d]: invalid header name %q", i, ext.GetName())
		}
		lower := strings.ToLower(name)
		switch {
		case ownHeaders[lower]:
			continue
		case lower == "authorization" && msg.GetAuthorization() != nil:
			continue // the dedicated field wins
		case listHeaders[lower]:
			hdrs = append(hdrs, header{name, ext.GetValue()})
		case seen[lower]:
			continue // a single header: the first one wins
		default:
			add(name, ext.GetValue())
		}
	}

	for _, name := range requiredHeaders {
		if !slices.ContainsFunc(hdrs, func(h header) bool { return strings.EqualFold(h.name, name) }) {
			return "", "", nil, fmt.Errorf("%s is missing (set its field, or for CSeq an extension %q)", name, "<n> "+method)
		}
	}
	hdrs = append(hdrs, header{"Content-Length", strconv.Itoa(len(msg.GetBody()))})
	return method, uri, hdrs, nil
}

// assemble writes the request as text and parses it back with requestParser, so that
// anything malformed fails here, with an error, rather than on the wire.
func assemble(method, uri string, hdrs []header, body string) (*sip.Request, error) {
	var b strings.Builder
	b.WriteString(method + " " + uri + " SIP/2.0\r\n")
	for _, h := range hdrs {
		if strings.ContainsAny(h.value, "\r\n") {
			return nil, fmt.Errorf("%s: value contains a line break", h.name)
		}
		b.WriteString(h.name + ": " + h.value + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)

	msg, err := requestParser.ParseSIP([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("malformed request: %w", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, errors.New("malformed request: not a request")
	}
	if req.CSeq() == nil || req.Via() == nil || req.CallID() == nil {
		return nil, errors.New("malformed request: cannot parse Via, CSeq or Call-ID")
	}
	if string(req.CSeq().MethodName) != method {
		return nil, fmt.Errorf("CSeq method %q does not match the request method %s", req.CSeq().MethodName, method)
	}
	return req, nil
}

func canonicalName(name string) string {
	name = strings.TrimSpace(name)
	if long, ok := compactNames[strings.ToLower(name)]; ok {
		return long
	}
	return name
}

// isToken reports whether s is a valid header name (RFC 3261 §25.1 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
