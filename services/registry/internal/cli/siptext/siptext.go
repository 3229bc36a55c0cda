// Package siptext renders the SIP message of a Requester SendMessageRequest as SIP text
// (request line, headers, body), as `registry explain` shows the next REGISTER. It
// renders what it is given: redact the message (sipauth.Redact) before.
package siptext

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// Lines renders the request's SIP message as SIP text: request line, then headers
// (Routr's Requester writes the wire message; this shows every field it is given).
func Lines(req *requesterv2beta1.SendMessageRequest) []string {
	m := req.GetMessage()
	method := req.GetMethod().String()
	lines := []string{fmt.Sprintf("%s %s SIP/2.0", method, sipURI(m.GetRequestUri()))}
	add := func(name, value string) { lines = append(lines, name+": "+value) }
	for _, v := range m.GetVia() {
		add("Via", via(v))
	}
	for _, r := range m.GetRoute() {
		add("Route", address(r.GetAddress())+params(r.GetParameters()))
	}
	for _, r := range m.GetRecordRoute() {
		add("Record-Route", address(r.GetAddress())+params(r.GetParameters()))
	}
	if f := m.GetFrom(); f != nil {
		add("From", address(f.GetAddress())+tag(f.GetTag())+params(f.GetParameters()))
	}
	if t := m.GetTo(); t != nil {
		add("To", address(t.GetAddress())+tag(t.GetTag())+params(t.GetParameters()))
	}
	if c := m.GetCallId(); c != nil {
		add("Call-ID", c.GetCallId())
	}
	for _, e := range m.GetExtensions() {
		add(e.GetName(), e.GetValue())
	}
	if c := m.GetContact(); c != nil {
		add("Contact", contact(c))
	}
	if e := m.GetExpires(); e != nil {
		add("Expires", strconv.Itoa(int(e.GetExpires())))
	}
	if mf := m.GetMaxForwards(); mf != nil {
		add("Max-Forwards", strconv.Itoa(int(mf.GetMaxForwards())))
	}
	if a := m.GetAuthorization(); a != nil {
		add("Authorization", authorization(a))
	}
	if cl := m.GetContentLength(); cl != nil {
		add("Content-Length", strconv.Itoa(int(cl.GetContentLength())))
	}
	if body := m.GetBody(); body != "" {
		lines = append(lines, "")
		lines = append(lines, strings.Split(strings.TrimRight(body, "\r\n"), "\n")...)
	}
	return lines
}

// sipURI renders sip:user@host:port;params (a port of 0 or -1 is left out).
func sipURI(u *sipmessagev2beta1.SipURI) string {
	if u == nil {
		return "-"
	}
	var b strings.Builder
	if u.GetSecure() {
		b.WriteString("sips:")
	} else {
		b.WriteString("sip:")
	}
	if u.GetUser() != "" {
		b.WriteString(u.GetUser() + "@")
	}
	b.WriteString(u.GetHost())
	if u.GetPort() > 0 {
		b.WriteString(":" + strconv.Itoa(int(u.GetPort())))
	}
	param := func(name, v string) {
		if v != "" {
			b.WriteString(";" + name + "=" + v)
		}
	}
	param("transport", strings.ToLower(u.GetTransportParam()))
	param("user", u.GetUserParam())
	param("method", u.GetMethodParam())
	param("maddr", u.GetMAddrParam())
	if u.GetTtlParam() > 0 {
		param("ttl", strconv.Itoa(int(u.GetTtlParam())))
	}
	if u.GetLrParam() {
		b.WriteString(";lr")
	}
	if u.GetBncParam() {
		b.WriteString(";bnc")
	}
	return b.String()
}

func address(a *sipmessagev2beta1.Address) string {
	if a.GetWildcard() {
		return "*"
	}
	s := "<" + sipURI(a.GetUri()) + ">"
	if d := a.GetDisplayName(); d != "" {
		s = strconv.Quote(d) + " " + s
	}
	return s
}

func tag(t string) string {
	if t == "" {
		return ""
	}
	return ";tag=" + t
}

// params renders header parameters in name order.
func params(p map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		b.WriteString(";" + k)
		if v := p[k]; v != "" {
			b.WriteString("=" + v)
		}
	}
	return b.String()
}

func via(v *sipmessagev2beta1.Via) string {
	s := "SIP/2.0/" + strings.ToUpper(orDash(v.GetTransport())) + " " + v.GetHost()
	if v.GetPort() > 0 {
		s += ":" + strconv.Itoa(int(v.GetPort()))
	}
	if v.GetBranch() != "" {
		s += ";branch=" + v.GetBranch()
	}
	if v.GetRPortFlag() {
		s += ";rport"
		if v.GetRPort() > 0 {
			s += "=" + strconv.Itoa(int(v.GetRPort()))
		}
	}
	if v.GetReceived() != "" {
		s += ";received=" + v.GetReceived()
	}
	return s
}

func contact(c *sipmessagev2beta1.Contact) string {
	s := address(c.GetAddress())
	if c.GetExpires() > 0 {
		s += ";expires=" + strconv.Itoa(int(c.GetExpires()))
	}
	if c.GetQValue() > 0 {
		s += ";q=" + strconv.FormatFloat(float64(c.GetQValue()), 'f', -1, 32)
	}
	return s
}

// authorization renders the Authorization field as Digest credentials (its response is
// redacted by then).
func authorization(a *sipmessagev2beta1.Authorization) string {
	scheme := a.GetScheme()
	if scheme == "" {
		scheme = "Digest"
	}
	var parts []string
	quoted := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	plain := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	quoted("username", a.GetUsername())
	quoted("realm", a.GetRealm())
	quoted("nonce", a.GetNonce())
	quoted("uri", a.GetUri())
	quoted("response", a.GetResponse())
	plain("algorithm", a.GetAlgorithm())
	plain("qop", a.GetQop())
	if a.GetNonceCount() > 0 {
		plain("nc", fmt.Sprintf("%08x", a.GetNonceCount()))
	}
	quoted("cnonce", a.GetCNonce())
	quoted("opaque", a.GetOpaque())
	return scheme + " " + strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
