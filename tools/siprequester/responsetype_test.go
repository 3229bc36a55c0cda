package siprequester

import (
	"testing"

	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestResponseTypeTable(t *testing.T) {
	// Written out independently of responseTypes: the ResponseType enum's names and the
	// SIP codes of Routr's ResponseCode table.
	want := map[string]int{
		"TRYING": 100, "RINGING": 180, "CALL_IS_BEING_FORWARDED": 181, "QUEUED": 182,
		"SESSION_PROGRESS": 183, "OK": 200, "ACCEPTED": 202, "MULTIPLE_CHOICES": 300,
		"MOVED_PERMANENTLY": 301, "MOVED_TEMPORARILY": 302, "USE_PROXY": 305,
		"ALTERNATIVE_SERVICE": 380, "BAD_REQUEST": 400, "UNAUTHORIZED": 401,
		"PAYMENT_REQUIRED": 402, "FORBIDDEN": 403, "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405,
		"NOT_ACCEPTABLE": 406, "PROXY_AUTHENTICATION_REQUIRED": 407, "REQUEST_TIMEOUT": 408,
		"GONE": 410, "REQUEST_ENTITY_TOO_LARGE": 413, "REQUEST_URI_TOO_LONG": 414,
		"UNSUPPORTED_MEDIA_TYPE": 415, "UNSUPPORTED_URI_SCHEME": 416, "BAD_EXTENSION": 420,
		"EXTENSION_REQUIRED": 421, "INTERVAL_TOO_BRIEF": 423, "TEMPORARILY_UNAVAILABLE": 480,
		"CALL_OR_TRANSACTION_DOES_NOT_EXIST": 481, "LOOP_DETECTED": 482, "TOO_MANY_HOPS": 483,
		"ADDRESS_INCOMPLETE": 484, "AMBIGUOUS": 485, "BUSY_HERE": 486, "REQUEST_TERMINATED": 487,
		"NOT_ACCEPTABLE_HERE": 488, "BAD_EVENT": 489, "REQUEST_PENDING": 491,
		"UNDECIPHERABLE": 493, "SERVER_INTERNAL_ERROR": 500, "NOT_IMPLEMENTED": 501,
		"BAD_GATEWAY": 502, "SERVICE_UNAVAILABLE": 503, "SERVER_TIMEOUT": 504,
		"VERSION_NOT_SUPPORTED": 505, "MESSAGE_TOO_LARGE": 513, "BUSY_EVERYWHERE": 600,
		"DECLINE": 603, "DOES_NOT_EXIST_ANYWHERE": 604, "SESSION_NOT_ACCEPTABLE": 606,
	}
	noCode := map[string]bool{
		"UNKNOWN": true, "SUCCESS": true, "REDIRECTION": true, "CLIENT_ERROR": true,
		"SERVER_ERROR": true, "GLOBAL_ERROR": true,
	}
	if len(responseTypes) != len(want) {
		t.Errorf("table has %d rows, want %d", len(responseTypes), len(want))
	}

	for n, name := range sipmessagepb.ResponseType_name {
		rt := sipmessagepb.ResponseType(n)
		code, hasCode := want[name]
		switch {
		case noCode[name]:
			if got := statusCodeOf(rt); got != 0 {
				t.Errorf("statusCodeOf(%s) = %d, want 0 (no code)", name, got)
			}
		case !hasCode:
			t.Errorf("enum value %s is neither in the code table nor a class value", name)
		default:
			if got := statusCodeOf(rt); got != code {
				t.Errorf("statusCodeOf(%s) = %d, want %d", name, got, code)
			}
			if got, ok := responseTypeOf(code); !ok || got != rt {
				t.Errorf("responseTypeOf(%d) = %s, %v; want %s, true", code, got, ok, name)
			}
		}
	}

	// Codes Routr's table does not know end as REQUEST_TIMEOUT.
	for _, code := range []int{0, 199, 204, 412, 422, 429, 494, 599, 607, 699} {
		if got, ok := responseTypeOf(code); ok || got != sipmessagepb.ResponseType_REQUEST_TIMEOUT {
			t.Errorf("responseTypeOf(%d) = %s, %v; want REQUEST_TIMEOUT, false", code, got, ok)
		}
	}
}
