package sipmsg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// Class is what an answer means for the binding.
type Class int

// The classes of answers. Each drives one transition of the registration state machine.
const (
	// ClassOK: 2xx, the binding is granted (or removed, for Expires 0).
	ClassOK Class = iota + 1
	// ClassChallenge: 401 or 407, digest credentials are asked for.
	ClassChallenge
	// ClassIntervalTooBrief: 423, retry with Min-Expires.
	ClassIntervalTooBrief
	// ClassBadExtension: 420, an extension we required is not supported (gin).
	ClassBadExtension
	// ClassRejected: a final refusal (403, 404, 3xx, other 4xx, 6xx): retry only much later.
	ClassRejected
	// ClassTransient: 408, 480, 5xx and anything that says "try again": back off.
	ClassTransient
)

func (c Class) String() string {
	switch c {
	case ClassOK:
		return "ok"
	case ClassChallenge:
		return "challenge"
	case ClassIntervalTooBrief:
		return "interval-too-brief"
	case ClassBadExtension:
		return "bad-extension"
	case ClassRejected:
		return "rejected"
	case ClassTransient:
		return "transient"
	}
	return "unknown"
}

// Outcome is a classified answer to a REGISTER.
type Outcome struct {
	Class  Class
	Type   sipmessagev2beta1.ResponseType
	Code   int
	Reason string
	// Granted is the lifetime granted by a 2xx (RFC 3261 §10.2.4): the Contact's
	// expires, else the Expires header, else what was asked.
	Granted int
	// MinExpires is the Min-Expires of a 423 (0 when absent or unreadable).
	MinExpires int
	// RetryAfter is the Retry-After of the answer (0 when absent).
	RetryAfter time.Duration
	// Unsupported lists the Unsupported header's option tags (420).
	Unsupported []string
}

// ErrMalformed marks an answer the registry cannot read.
var ErrMalformed = errors.New("malformed answer")

// Read classifies the Requester's answer to a REGISTER that asked for asked seconds.
// A nil or unreadable answer is an error wrapping ErrMalformed, never a panic.
func Read(resp *requesterv2beta1.SendMessageResponse, asked int) (Outcome, error) {
	msg := resp.GetMessage()
	if msg == nil {
		return Outcome{}, fmt.Errorf("%w: no message", ErrMalformed)
	}
	rtw, ok := msg.GetMessageType().(*sipmessagev2beta1.SIPMessage_ResponseType)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: not a response", ErrMalformed)
	}
	o := Outcome{Type: rtw.ResponseType, Code: Code(rtw.ResponseType), Reason: msg.GetReasonPhrase()}
	if o.Code == 0 {
		return o, fmt.Errorf("%w: unknown response type %d", ErrMalformed, int32(rtw.ResponseType))
	}
	if v, ok := Header(msg, "Retry-After"); ok {
		o.RetryAfter = parseRetryAfter(v)
	}
	switch c := o.Code; {
	case c >= 200 && c < 300:
		o.Class = ClassOK
		o.Granted = granted(msg, asked)
	case c == 401 || c == 407:
		o.Class = ClassChallenge
	case c == 423:
		o.Class = ClassIntervalTooBrief
		if v, ok := Header(msg, "Min-Expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
				o.MinExpires = n
			}
		}
		if o.MinExpires == 0 {
			// RFC 3261 §10.3 step 7: a 423 MUST carry Min-Expires. Without it the
			// registry cannot know what to ask for: a refusal.
			o.Class = ClassRejected
			o.Reason = strings.TrimSpace(o.Reason + " (423 without Min-Expires)")
		}
	case c == 420:
		o.Class = ClassBadExtension
		if v, ok := Header(msg, "Unsupported"); ok {
			for _, tag := range strings.Split(v, ",") {
				if tag = strings.TrimSpace(tag); tag != "" {
					o.Unsupported = append(o.Unsupported, strings.ToLower(tag))
				}
			}
		}
	case c == 408 || c == 480 || c == 481 || c == 491 || c >= 500 && c < 600:
		o.Class = ClassTransient
	case c < 200:
		// A provisional answer is never final; the Requester should not return one.
		o.Class = ClassTransient
	default:
		o.Class = ClassRejected
	}
	return o, nil
}

// granted applies RFC 3261 §10.2.4 as Routr reports it: the first Contact's expires
// when it has one (Routr writes -1 when the header has none), else Expires, else asked.
func granted(msg *sipmessagev2beta1.SIPMessage, asked int) int {
	if asked == 0 {
		return 0
	}
	if c := msg.GetContact(); c != nil && c.GetExpires() > 0 {
		return int(c.GetExpires())
	}
	if e := msg.GetExpires(); e != nil && e.GetExpires() > 0 {
		return int(e.GetExpires())
	}
	return asked
}

// Header returns the value of the first extension named name (case-insensitive).
func Header(msg *sipmessagev2beta1.SIPMessage, name string) (string, bool) {
	for _, e := range msg.GetExtensions() {
		if strings.EqualFold(e.GetName(), name) {
			return e.GetValue(), true
		}
	}
	return "", false
}

// parseRetryAfter reads "120", "120;duration=3600" or "120 (comment)" (RFC 3261 §20.33).
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end == 0 {
		return 0
	}
	if end > 0 {
		v = v[:end]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > 7*24*3600 {
		return 0
	}
	return time.Duration(n) * time.Second
}
