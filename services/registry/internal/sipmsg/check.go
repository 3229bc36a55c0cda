package sipmsg

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// fieldRule is what one string field of a request may hold.
type fieldRule struct {
	text     textRule
	grammar  func(string) error // checked when the value is not empty
	required bool               // empty is an error (when the enclosing message is set)
}

const pbSIP = "fonoster.routr.sipmessage.v2beta1."

// fieldRules are the rules of the string fields that have a grammar of their own; every
// other string field is ruleLine (valid UTF-8, no control character, not even HTAB).
var fieldRules = map[protoreflect.FullName]fieldRule{
	"fonoster.routr.requester.v2beta1.SendMessageRequest.target": {grammar: checkTarget, required: true},

	pbSIP + "SipURI.user":            {grammar: checkUser},
	pbSIP + "SipURI.user_password":   {grammar: grammarOf(isPasswordChar, "a password")},
	pbSIP + "SipURI.host":            {grammar: checkURIHost, required: true},
	pbSIP + "SipURI.transport_param": {grammar: checkToken},
	pbSIP + "SipURI.method_param":    {grammar: checkToken},
	pbSIP + "SipURI.user_param":      {grammar: checkToken},
	pbSIP + "SipURI.m_addr_param":    {grammar: checkURIHost},

	pbSIP + "CallID.call_id": {grammar: checkCallID, required: true},
	pbSIP + "From.tag":       {grammar: checkToken},
	pbSIP + "To.tag":         {grammar: checkToken},

	pbSIP + "Extension.name":  {grammar: checkToken, required: true},
	pbSIP + "Extension.value": {text: ruleText},

	// Routr writes the authorization field's values between quotes as they are.
	pbSIP + "Authorization.realm":     {text: ruleQuoted},
	pbSIP + "Authorization.nonce":     {text: ruleQuoted},
	pbSIP + "Authorization.opaque":    {text: ruleQuoted},
	pbSIP + "Authorization.username":  {text: ruleQuoted},
	pbSIP + "Authorization.uri":       {text: ruleQuoted},
	pbSIP + "Authorization.c_nonce":   {text: ruleQuoted},
	pbSIP + "Authorization.response":  {text: ruleQuoted},
	pbSIP + "Authorization.scheme":    {grammar: checkToken},
	pbSIP + "Authorization.algorithm": {grammar: checkToken},
	pbSIP + "Authorization.qop":       {grammar: checkToken},
	pbSIP + "Authorization.method":    {grammar: checkToken},

	pbSIP + "Address.display_name":     {text: ruleQuoted},
	pbSIP + "SIPMessage.reason_phrase": {text: ruleText},
	pbSIP + "Via.host":                 {grammar: checkURIHost, required: true},
	pbSIP + "Via.branch":               {grammar: checkToken},
	pbSIP + "Via.transport":            {grammar: checkToken},
	pbSIP + "Via.m_addr":               {grammar: checkURIHost},
}

// mapKeyRule is the rule of the keys of the parameters maps (Route, From, To, ...).
var mapKeyRule = fieldRule{grammar: checkToken, required: true}

func grammarOf(ok func(byte) bool, what string) func(string) error {
	return func(s string) error {
		if !isEscaped(s, ok) {
			return fmt.Errorf("%q is not %s (RFC 3261 §25.1)", s, what)
		}
		return nil
	}
}

// checkUser checks an escaped user part; it must not start with '/' (see escapeUser).
func checkUser(s string) error {
	if strings.HasPrefix(s, "/") || !isEscaped(s, isUserChar) {
		return fmt.Errorf("%q is not a user part (RFC 3261 §25.1)", s)
	}
	return nil
}

func ruleOf(fd protoreflect.FieldDescriptor) fieldRule {
	if r, ok := fieldRules[fd.FullName()]; ok {
		return r
	}
	return fieldRule{}
}

// checkString applies rule to one value.
func (r fieldRule) checkString(s string) error {
	if err := checkText(s, r.text); err != nil {
		return err
	}
	if s == "" {
		if r.required {
			return fmt.Errorf("empty")
		}
		return nil
	}
	if r.grammar != nil {
		return r.grammar(s)
	}
	return nil
}

// Check reports the first field of req that must not go to Routr's Requester, which
// copies every string into the SIP message as it is. It walks every string field of the
// request (protoreflect: nested messages, lists and map keys and values included, in field
// number order) and refuses invalid UTF-8 and any control character (CR, LF and NUL
// included; HTAB only in header text: extension values, the quoted authorization values,
// the reason phrase), an unescaped '"' or '\' in a value Routr quotes as is (the
// authorization field's), and values outside their RFC 3261 grammar: the target
// (host:port), SIP URI hosts (hostname, IPv4, [IPv6]), user parts (escaped), tokens
// (header names, tags, URI parameters, the authorization's scheme, algorithm, qop and
// method) and the Call-ID. A SIP URI port must be -1 (none) or 1..65535 (Routr writes 0
// as ":0").
//
// The error wraps ErrInvalidRequest and names the field, e.g.
// "message.extensions[1].value: control character U+000D (header User-Agent)"; it quotes
// values in Go syntax, so it is safe to log.
func Check(req *requesterv2beta1.SendMessageRequest) error {
	if req == nil {
		return fmt.Errorf("%w: no request", ErrInvalidRequest)
	}
	if req.GetMessage() == nil {
		return fmt.Errorf("%w: message: missing", ErrInvalidRequest)
	}
	if err := walk(req.ProtoReflect(), checkVisitor{}); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return nil
}

// scrub %XX-escapes, in every string field of req, each character its rule forbids (see
// Check): Build's last line of defence, so that no control character and no invalid
// UTF-8 can reach the Requester whatever Build is given.
func scrub(req *requesterv2beta1.SendMessageRequest) {
	_ = walk(req.ProtoReflect(), scrubVisitor{})
}

// visitor sees every string of a message. str returns the value to keep (repl != v
// replaces it, for scrubbing) or an error about v; the walk adds the field's path to
// an error on its way back up, so a request that passes costs no path.
type visitor interface {
	str(rule fieldRule, v string) (repl string, err error)
	// int sees an integer; port marks a SipURI's port.
	int(port bool, v int64) error
}

type checkVisitor struct{}

func (checkVisitor) str(rule fieldRule, v string) (string, error) {
	return v, rule.checkString(v)
}

func (checkVisitor) int(port bool, v int64) error {
	if port && v != -1 && (v < 1 || v > 65535) {
		return fmt.Errorf("%d (want -1 for none, or 1-65535)", v)
	}
	return nil
}

type scrubVisitor struct{}

func (scrubVisitor) str(rule fieldRule, v string) (string, error) {
	return scrubText(v, rule.text), nil
}

func (scrubVisitor) int(bool, int64) error { return nil }

// fieldError is an error about one field, with the path to it: segs holds the path's
// segments innermost first (a field's name, or "[i]" for an index, or "[key]"), as the
// walk adds them on its way back up; note is said after the error.
type fieldError struct {
	segs []string
	err  error
	note string
}

func (e *fieldError) Error() string {
	var b strings.Builder
	for i := len(e.segs) - 1; i >= 0; i-- {
		if seg := e.segs[i]; i < len(e.segs)-1 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(e.segs[i])
	}
	b.WriteString(": ")
	b.WriteString(e.err.Error())
	b.WriteString(e.note)
	return b.String()
}

func (e *fieldError) Unwrap() error { return e.err }

// at adds seg to the path of err (nil stays nil).
func at(err error, seg string) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*fieldError); ok {
		fe.segs = append(fe.segs, seg)
		return fe
	}
	return &fieldError{segs: []string{seg}, err: err}
}
