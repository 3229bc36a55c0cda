package sipmsg

import (
	"fmt"
	"slices"
	"strconv"
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
	if err := walk(req.ProtoReflect(), "", checkVisitor{}); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return nil
}

// scrub %XX-escapes, in every string field of req, each character its rule forbids (see
// Check): Build's last line of defence, so that no control character and no invalid
// UTF-8 can reach the Requester whatever Build is given.
func scrub(req *requesterv2beta1.SendMessageRequest) {
	_ = walk(req.ProtoReflect(), "", scrubVisitor{})
}

// visitor sees every string of a message. set replaces the value (for scrubbing).
type visitor interface {
	str(path string, rule fieldRule, v string, set func(string)) error
	int(path string, fd protoreflect.FieldDescriptor, v int64) error
}

type checkVisitor struct{}

func (checkVisitor) str(path string, rule fieldRule, v string, _ func(string)) error {
	if err := rule.checkString(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (checkVisitor) int(path string, fd protoreflect.FieldDescriptor, v int64) error {
	if fd.FullName() == pbSIP+"SipURI.port" && v != -1 && (v < 1 || v > 65535) {
		return fmt.Errorf("%s: %d (want -1 for none, or 1-65535)", path, v)
	}
	return nil
}

type scrubVisitor struct{}

func (scrubVisitor) str(_ string, rule fieldRule, v string, set func(string)) error {
	if s := scrubText(v, rule.text); s != v {
		set(s)
	}
	return nil
}

func (scrubVisitor) int(string, protoreflect.FieldDescriptor, int64) error { return nil }

// walk visits every field of m in field number order: strings (also unset ones, which
// are empty, so that required values are checked), ints, set messages, list elements and
// map entries.
func walk(m protoreflect.Message, path string, vis visitor) error {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		p := fd.TextName()
		if path != "" {
			p = path + "." + p
		}
		switch {
		case fd.IsMap():
			if !m.Has(fd) {
				continue
			}
			if err := walkMap(m, fd, p, vis); err != nil {
				return err
			}
		case fd.IsList():
			if !m.Has(fd) {
				continue
			}
			if err := walkList(m.Mutable(fd).List(), fd, p, vis); err != nil {
				return err
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if !m.Has(fd) {
				continue
			}
			if err := walk(m.Get(fd).Message(), p, vis); err != nil {
				return err
			}
		case fd.Kind() == protoreflect.StringKind:
			if fd.ContainingOneof() != nil && !m.Has(fd) {
				continue
			}
			set := func(s string) { m.Set(fd, protoreflect.ValueOfString(s)) }
			if err := vis.str(p, ruleOf(fd), m.Get(fd).String(), set); err != nil {
				return err
			}
		case isInt(fd.Kind()):
			if !m.Has(fd) && fd.FullName() != pbSIP+"SipURI.port" {
				continue
			}
			if err := vis.int(p, fd, m.Get(fd).Int()); err != nil {
				return err
			}
		}
	}
	return nil
}

func isInt(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

func walkList(l protoreflect.List, fd protoreflect.FieldDescriptor, path string, vis visitor) error {
	for i := 0; i < l.Len(); i++ {
		p := path + "[" + strconv.Itoa(i) + "]"
		switch {
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			em := l.Get(i).Message()
			if err := walk(em, p, vis); err != nil {
				return withHeaderName(err, em)
			}
		case fd.Kind() == protoreflect.StringKind:
			set := func(s string) { l.Set(i, protoreflect.ValueOfString(s)) }
			if err := vis.str(p, ruleOf(fd), l.Get(i).String(), set); err != nil {
				return err
			}
		}
	}
	return nil
}

// withHeaderName adds the name of an extension to an error about it, when the name is a
// token (safe to show).
func withHeaderName(err error, m protoreflect.Message) error {
	if m.Descriptor().FullName() != pbSIP+"Extension" {
		return err
	}
	name := m.Get(m.Descriptor().Fields().ByName("name")).String()
	if checkToken(name) != nil {
		return err
	}
	return fmt.Errorf("%w (header %s)", err, name)
}

func walkMap(m protoreflect.Message, fd protoreflect.FieldDescriptor, path string, vis visitor) error {
	mp := m.Mutable(fd).Map()
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var entries []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k, v})
		return true
	})
	// Map order is random: visit the keys in sorted order, so the first error is stable.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k.String(), b.k.String()) })
	vd := fd.MapValue()
	for _, e := range entries {
		k := e.k
		p := path + "[" + strconv.Quote(k.String()) + "]"
		if fd.MapKey().Kind() == protoreflect.StringKind {
			set := func(s string) {
				mp.Clear(k)
				k = protoreflect.ValueOfString(s).MapKey()
				mp.Set(k, e.v)
			}
			if err := vis.str(p+" (key)", mapKeyRule, k.String(), set); err != nil {
				return err
			}
		}
		switch {
		case vd.Kind() == protoreflect.MessageKind || vd.Kind() == protoreflect.GroupKind:
			if err := walk(mp.Get(k).Message(), p, vis); err != nil {
				return err
			}
		case vd.Kind() == protoreflect.StringKind:
			set := func(s string) { mp.Set(k, protoreflect.ValueOfString(s)) }
			if err := vis.str(p, ruleOf(vd), mp.Get(k).String(), set); err != nil {
				return err
			}
		}
	}
	return nil
}
