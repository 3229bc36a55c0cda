package sipmsg

import "errors"

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
	if !uriOK(b.ruriURI.User, b.ruriURI.Host, b.ruriURI.TransportParam, b.ruriURI.Port) ||
		!uriOK(b.fromURI.User, b.fromURI.Host, b.fromURI.TransportParam, b.fromURI.Port) ||
		!uriOK(b.toURI.User, b.toURI.Host, b.toURI.TransportParam, b.toURI.Port) ||
		len(b.msg.Route) > 0 && !uriOK(b.epURI.User, b.epURI.Host, b.epURI.TransportParam, b.epURI.Port) {
		return errRefused
	}
	for _, e := range b.msg.Extensions {
		if ruleExtName.checkString(e.Name) != nil || ruleExtValue.checkString(e.Value) != nil {
			return errRefused
		}
	}
	return nil
}

// uriOK applies Check's rules to the strings and the port of a SipURI.
func uriOK(user, host, transport string, port int32) bool {
	return ruleURIUser.checkString(user) == nil && ruleURIHost.checkString(host) == nil &&
		ruleURITransp.checkString(transport) == nil && (port == -1 || port >= 1 && port <= 65535)
}
