package fakerequester

import (
	"strconv"
	"strings"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// reasonPhrase is the SIP reason phrase of rt: its name in title case
// (INTERVAL_TOO_BRIEF → "Interval Too Brief"), "OK" for OK.
func reasonPhrase(rt sipmessagev2beta1.ResponseType) string {
	if rt == sipmessagev2beta1.ResponseType_OK {
		return "OK"
	}
	words := strings.Split(rt.String(), "_")
	for i, w := range words {
		words[i] = w[:1] + strings.ToLower(w[1:])
	}
	return strings.Join(words, " ")
}

// answer starts a response of type rt to msg as Routr's Requester gives it back:
// Call-ID, From and To copied, CSeq echoed as an extension.
func answer(msg *sipmessagev2beta1.SIPMessage, rt sipmessagev2beta1.ResponseType) *sipmessagev2beta1.SIPMessage {
	m := &sipmessagev2beta1.SIPMessage{
		MessageType:  &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: rt},
		ReasonPhrase: reasonPhrase(rt),
		CallId:       msg.GetCallId(),
		From:         msg.GetFrom(),
		To:           msg.GetTo(),
	}
	if cseq, ok := extension(msg, "CSeq"); ok {
		m.Extensions = append(m.Extensions, &sipmessagev2beta1.Extension{Name: "CSeq", Value: cseq})
	}
	return m
}

// withExtension adds the header name: value to m and returns m.
func withExtension(m *sipmessagev2beta1.SIPMessage, name, value string) *sipmessagev2beta1.SIPMessage {
	m.Extensions = append(m.Extensions, &sipmessagev2beta1.Extension{Name: name, Value: value})
	return m
}

// extension returns the value of msg's first extension called name (any case).
func extension(msg *sipmessagev2beta1.SIPMessage, name string) (string, bool) {
	for _, e := range msg.GetExtensions() {
		if strings.EqualFold(e.GetName(), name) {
			return e.GetValue(), true
		}
	}
	return "", false
}

// asked is the expiry msg asks for, or -1 when it carries no Expires.
func asked(msg *sipmessagev2beta1.SIPMessage) int32 {
	if e := msg.GetExpires(); e != nil && e.GetExpires() >= 0 {
		return e.GetExpires()
	}
	return -1
}

// okAnswer is a 200 OK to msg granting min(asked, max) seconds, max when nothing was
// asked; the Contact is sip:<user>@127.0.0.1:5060.
func okAnswer(msg *sipmessagev2beta1.SIPMessage, user string, max int32) *sipmessagev2beta1.SIPMessage {
	granted := max
	if a := asked(msg); a >= 0 && a < max {
		granted = a
	}
	m := answer(msg, sipmessagev2beta1.ResponseType_OK)
	m.Contact = &sipmessagev2beta1.Contact{
		Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "127.0.0.1", Port: 5060}},
		Expires: granted,
	}
	m.Expires = &sipmessagev2beta1.Expires{Expires: granted}
	return m
}

// requiresGin reports whether msg has a Require extension listing gin.
func requiresGin(msg *sipmessagev2beta1.SIPMessage) bool {
	for _, e := range msg.GetExtensions() {
		if !strings.EqualFold(e.GetName(), "Require") {
			continue
		}
		for opt := range strings.SplitSeq(e.GetValue(), ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "gin") {
				return true
			}
		}
	}
	return false
}

// errorAnswer is an answer of type rt, with Retry-After when retryAfter > 0.
func errorAnswer(msg *sipmessagev2beta1.SIPMessage, rt sipmessagev2beta1.ResponseType, retryAfter int32) *sipmessagev2beta1.SIPMessage {
	m := answer(msg, rt)
	if retryAfter > 0 {
		withExtension(m, "Retry-After", strconv.Itoa(int(retryAfter)))
	}
	return m
}
