package siprequester

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// canonicalNames spells the extension names of well-known headers the way JAIN-SIP (and
// so Routr) does, whatever case the registrar used. Other names are kept as received.
var canonicalNames = func() map[string]string {
	m := make(map[string]string)
	for _, n := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
		"Authentication-Info", "Call-Info", "Content-Disposition", "Content-Encoding",
		"Content-Language", "Content-Type", "CSeq", "Date", "Error-Info", "Event",
		"Min-Expires", "MIME-Version", "Organization", "Path", "Priority",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason", "Reply-To",
		"Require", "Retry-After", "Server", "Service-Route", "Subject", "Supported",
		"Timestamp", "Unsupported", "User-Agent", "Warning", "WWW-Authenticate",
	} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

// responseMessage converts a final SIP response into the SIPMessage Routr's EdgePort and
// Requester produce: response_type (see responseTypeOf) and reason_phrase; the dedicated
// fields Call-ID, From, To, the first Contact (expires -1 when it has no expires
// parameter), Expires, Via, Content-Length, Max-Forwards, Route, Record-Route,
// Authorization and WWW-Authenticate; every other header as an extension. Unlike Routr,
// www_authenticate carries stale, and the raw WWW-Authenticate header is kept as an
// extension as well. A 407's Proxy-Authenticate travels only as an extension.
//
// A code that Routr's table does not know becomes REQUEST_TIMEOUT "Request Timeout",
// since Routr's EdgePort drops such a response and its Requester times out.
func responseMessage(res *sip.Response) *sipmessagepb.SIPMessage {
	rt, known := responseTypeOf(res.StatusCode)
	reason := res.Reason
	if !known {
		reason = "Request Timeout"
	}
	msg := &sipmessagepb.SIPMessage{
		MessageType:  &sipmessagepb.SIPMessage_ResponseType{ResponseType: rt},
		ReasonPhrase: reason,
		Body:         string(res.Body()),
	}

	for _, h := range res.Headers() {
		lower := strings.ToLower(canonicalName(h.Name()))
		switch lower {
		case "via":
			if v, ok := h.(*sip.ViaHeader); ok {
				msg.Via = append(msg.Via, viaMessage(v))
			}
		case "from":
			if f, ok := h.(*sip.FromHeader); ok && msg.From == nil {
				tag, params := splitTag(f.Params)
				msg.From = &sipmessagepb.From{Address: addressMessage(f.DisplayName, &f.Address), Tag: tag, Parameters: params}
			}
		case "to":
			if t, ok := h.(*sip.ToHeader); ok && msg.To == nil {
				tag, params := splitTag(t.Params)
				msg.To = &sipmessagepb.To{Address: addressMessage(t.DisplayName, &t.Address), Tag: tag, Parameters: params}
			}
		case "call-id":
			if msg.CallId == nil {
				msg.CallId = &sipmessagepb.CallID{CallId: h.Value()}
			}
		case "contact":
			// Only the first Contact, as Routr. (sipgo's res.Contact() is the last one.)
			if c, ok := h.(*sip.ContactHeader); ok && msg.Contact == nil {
				msg.Contact = contactMessage(c)
			}
		case "expires":
			if msg.Expires == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
					msg.Expires = &sipmessagepb.Expires{Expires: int32(n)}
				}
			}
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
				msg.ContentLength = &sipmessagepb.ContentLength{ContentLength: int32(n)}
			}
		case "max-forwards":
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
				msg.MaxForwards = &sipmessagepb.MaxForwards{MaxForwards: int32(n)}
			}
		case "route":
			if r, ok := h.(*sip.RouteHeader); ok {
				msg.Route = append(msg.Route, &sipmessagepb.Route{Address: addressMessage("", &r.Address)})
			}
		case "record-route":
			if r, ok := h.(*sip.RecordRouteHeader); ok {
				msg.RecordRoute = append(msg.RecordRoute, &sipmessagepb.RecordRoute{Address: addressMessage("", &r.Address)})
			}
		case "www-authenticate":
			if msg.WwwAuthenticate == nil {
				if c, err := parseChallenge(h.Value()); err == nil {
					msg.WwwAuthenticate = c
				}
			}
			msg.Extensions = append(msg.Extensions, extension(h))
		case "authorization":
			if msg.Authorization == nil {
				msg.Authorization = authorizationMessage(h.Value())
			}
		default:
			msg.Extensions = append(msg.Extensions, extension(h))
		}
	}
	return msg
}

func extension(h sip.Header) *sipmessagepb.Extension {
	name := canonicalName(h.Name())
	if c, ok := canonicalNames[strings.ToLower(name)]; ok {
		name = c
	}
	return &sipmessagepb.Extension{Name: name, Value: h.Value()}
}

// timeoutResponse is the 408 answered when the transaction times out, built as JAIN-SIP's
// createResponse does from the request: its Via, From, To, Call-ID and CSeq.
func timeoutResponse(req *sip.Request) *sipmessagepb.SIPMessage {
	var b strings.Builder
	b.WriteString("SIP/2.0 408 Request Timeout\r\n")
	for _, h := range req.Headers() {
		switch strings.ToLower(canonicalName(h.Name())) {
		case "via", "from", "to", "call-id", "cseq":
			b.WriteString(h.Name() + ": " + h.Value() + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	parsed, err := sip.ParseMessage([]byte(b.String()))
	res, ok := parsed.(*sip.Response)
	if err != nil || !ok {
		// Cannot happen for a request that assemble accepted; answer the bare timeout.
		return &sipmessagepb.SIPMessage{
			MessageType:  &sipmessagepb.SIPMessage_ResponseType{ResponseType: sipmessagepb.ResponseType_REQUEST_TIMEOUT},
			ReasonPhrase: "Request Timeout",
		}
	}
	return responseMessage(res)
}

func uriMessage(u *sip.Uri) *sipmessagepb.SipURI {
	m := &sipmessagepb.SipURI{
		User:         u.User,
		UserPassword: u.Password,
		Host:         u.Host,
		Port:         -1,
		TtlParam:     -1,
		Secure:       u.IsEncrypted(),
	}
	if u.Port > 0 {
		m.Port = int32(u.Port)
	}
	if u.UriParams != nil {
		m.TransportParam, _ = u.UriParams.Get("transport")
		m.UserParam, _ = u.UriParams.Get("user")
		m.MethodParam, _ = u.UriParams.Get("method")
		m.MAddrParam, _ = u.UriParams.Get("maddr")
		if ttl, ok := u.UriParams.Get("ttl"); ok {
			if n, err := strconv.Atoi(ttl); err == nil {
				m.TtlParam = int32(n)
			}
		}
		m.LrParam = u.UriParams.Has("lr")
		m.BncParam = u.UriParams.Has("bnc")
	}
	return m
}

func addressMessage(displayName string, u *sip.Uri) *sipmessagepb.Address {
	return &sipmessagepb.Address{
		Uri:         uriMessage(u),
		DisplayName: displayName,
		Wildcard:    u.Wildcard,
	}
}

// splitTag separates the tag from the other header parameters.
func splitTag(params sip.HeaderParams) (tag string, rest map[string]string) {
	for _, kv := range params {
		if strings.EqualFold(kv.K, "tag") {
			tag = kv.V
			continue
		}
		if rest == nil {
			rest = make(map[string]string)
		}
		rest[kv.K] = kv.V
	}
	return tag, rest
}

func contactMessage(c *sip.ContactHeader) *sipmessagepb.Contact {
	m := &sipmessagepb.Contact{
		Address: addressMessage(c.DisplayName, &c.Address),
		Expires: -1,
		QValue:  -1,
	}
	if v, ok := c.Params.Get("expires"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			m.Expires = int32(n)
		}
	}
	if v, ok := c.Params.Get("q"); ok {
		if q, err := strconv.ParseFloat(v, 32); err == nil {
			m.QValue = float32(q)
		}
	}
	return m
}

func viaMessage(v *sip.ViaHeader) *sipmessagepb.Via {
	m := &sipmessagepb.Via{
		Host:      v.Host,
		Port:      -1,
		Transport: v.Transport,
		RPort:     -1,
		Ttl:       -1,
	}
	if v.Port > 0 {
		m.Port = int32(v.Port)
	}
	if v.Params != nil {
		m.Branch, _ = v.Params.Get("branch")
		m.Received, _ = v.Params.Get("received")
		m.MAddr, _ = v.Params.Get("maddr")
		if rport, ok := v.Params.Get("rport"); ok {
			m.RPortFlag = true
			if n, err := strconv.Atoi(rport); err == nil {
				m.RPort = int32(n)
			}
		}
		if ttl, ok := v.Params.Get("ttl"); ok {
			if n, err := strconv.Atoi(ttl); err == nil {
				m.Ttl = int32(n)
			}
		}
	}
	return m
}

// parseChallenge reads a WWW-Authenticate (or Proxy-Authenticate) value.
func parseChallenge(value string) (*sipmessagepb.WWWAuthenticate, error) {
	scheme, params, err := parseAuthParams(value)
	if err != nil {
		return nil, err
	}
	return &sipmessagepb.WWWAuthenticate{
		Scheme:    scheme,
		Realm:     params["realm"],
		Domain:    params["domain"],
		Nonce:     params["nonce"],
		Algorithm: params["algorithm"],
		Qop:       params["qop"],
		Opaque:    params["opaque"],
		Stale:     strings.EqualFold(params["stale"], "true"),
	}, nil
}

// authorizationMessage reads an Authorization value; nil when it cannot be parsed.
func authorizationMessage(value string) *sipmessagepb.Authorization {
	scheme, params, err := parseAuthParams(value)
	if err != nil {
		return nil
	}
	a := &sipmessagepb.Authorization{
		Scheme:    scheme,
		Realm:     params["realm"],
		CNonce:    params["cnonce"],
		Nonce:     params["nonce"],
		Algorithm: params["algorithm"],
		Qop:       params["qop"],
		Opaque:    params["opaque"],
		Response:  params["response"],
		Username:  params["username"],
		Uri:       params["uri"],
	}
	if nc, err := strconv.ParseUint(params["nc"], 16, 32); err == nil {
		a.NonceCount = int32(nc)
	}
	return a
}

// parseAuthParams splits `Scheme k1=v1, k2="v 2", ...` into the scheme and lower-case keyed
// parameters, unquoting quoted strings (RFC 3261 §25.1 quoted-pair included).
func parseAuthParams(value string) (scheme string, params map[string]string, err error) {
	value = strings.TrimSpace(value)
	i := strings.IndexAny(value, " \t")
	if i <= 0 {
		return "", nil, errors.New("challenge has no parameters")
	}
	scheme, rest := value[:i], value[i:]
	params = make(map[string]string)
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return scheme, params, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", nil, errors.New("challenge parameter without a value")
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
				}
				b.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return "", nil, errors.New("unterminated quoted string in challenge")
			}
			val, rest = b.String(), rest[j+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		params[key] = val
	}
}
