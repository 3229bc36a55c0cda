package sipmsg

import (
	"errors"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// The rules Check applies to the strings of a request without a digest answer, looked
// up once.
var (
	ruleTarget    = fieldRules["fonoster.routr.requester.v2beta1.SendMessageRequest.target"]
	ruleURIUser   = fieldRules[pbSIP+"SipURI.user"]
	ruleURIHost   = fieldRules[pbSIP+"SipURI.host"]
	ruleURITransp = fieldRules[pbSIP+"SipURI.transport_param"]
	ruleCallID    = fieldRules[pbSIP+"CallID.call_id"]
	ruleTag       = fieldRules[pbSIP+"From.tag"]
	ruleExtName   = fieldRules[pbSIP+"Extension.name"]
	ruleExtValue  = fieldRules[pbSIP+"Extension.value"]
)

// errRefused is all check says: Check tells which field and why.
var errRefused = errors.New("refused")

// check answers whether Check refuses the request of b (nil when it accepts it), without
// its walk over every field of every message by reflection: it checks the strings and
// ports build sets, by the rules Check applies to them. Every other string field of
// the request is empty, which Check accepts (none of them is required). It holds for a
// request without a digest answer only (r.Auth nil): Apply adds messages of its own.
// FuzzBuildReference holds its verdict to Check's.
func (b *block) check() error {
	if b.req.Message != &b.msg || b.msg.MessageType != &b.ruri || b.msg.Authorization != nil {
		return errRefused // not as build left it: let Check say
	}
	if ruleTarget.checkString(b.req.Target) != nil || ruleCallID.checkString(b.callID.CallId) != nil ||
		ruleTag.checkString(b.from.Tag) != nil || ruleTag.checkString(b.to.Tag) != nil {
		return errRefused
	}
	// The URIs share their host (and From and To their user): a value already passed
	// for the same field of an earlier URI is not checked again.
	if !uriOK(&b.ruriURI, nil) || !uriOK(&b.fromURI, &b.ruriURI) || !uriOK(&b.toURI, &b.fromURI) ||
		len(b.msg.Route) > 0 && !uriOK(&b.epURI, &b.ruriURI) {
		return errRefused
	}
	for _, e := range b.msg.Extensions {
		if ruleExtName.checkString(e.Name) != nil || ruleExtValue.checkString(e.Value) != nil {
			return errRefused
		}
	}
	return nil
}

// uriOK applies Check's rules to the strings and the port of u; a string equal to the
// same field of prev (nil: none), which passed, passes.
func uriOK(u, prev *sipmessagev2beta1.SipURI) bool {
	p := prev != nil
	return (p && u.User == prev.User || ruleURIUser.checkString(u.User) == nil) &&
		(p && u.Host == prev.Host || ruleURIHost.checkString(u.Host) == nil) &&
		(p && u.TransportParam == prev.TransportParam || ruleURITransp.checkString(u.TransportParam) == nil) &&
		(u.Port == -1 || u.Port >= 1 && u.Port <= 65535)
}
