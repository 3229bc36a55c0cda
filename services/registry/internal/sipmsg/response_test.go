package sipmsg_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
)

type opt func(*pb.SIPMessage)

// response builds the Requester's answer as Routr fills it: a response type, and the
// headers without a field of their own as extensions.
func response(typ pb.ResponseType, opts ...opt) *requesterv2beta1.SendMessageResponse {
	msg := &pb.SIPMessage{MessageType: &pb.SIPMessage_ResponseType{ResponseType: typ}}
	for _, o := range opts {
		o(msg)
	}
	return &requesterv2beta1.SendMessageResponse{Message: msg}
}

// contact sets the first Contact's expires (Routr writes -1 when the header has none).
func contact(expires int32) opt {
	return func(m *pb.SIPMessage) {
		m.Contact = &pb.Contact{Address: &pb.Address{Uri: &pb.SipURI{User: "alice", Host: "10.0.0.2", Port: 5060}}, Expires: expires}
	}
}

func expires(n int32) opt { return func(m *pb.SIPMessage) { m.Expires = &pb.Expires{Expires: n} } }

func ext(name, value string) opt {
	return func(m *pb.SIPMessage) {
		m.Extensions = append(m.Extensions, &pb.Extension{Name: name, Value: value})
	}
}

func reason(s string) opt { return func(m *pb.SIPMessage) { m.ReasonPhrase = s } }

func TestRead(t *testing.T) {
	type want struct {
		class       sipmsg.Class
		code        int
		granted     int
		minExpires  int
		retryAfter  time.Duration
		unsupported []string
		reason      string
	}
	tests := []struct {
		name  string
		resp  *requesterv2beta1.SendMessageResponse
		asked int
		want  want
	}{
		// §10.2.4: the Contact's expires, else Expires, else what was asked.
		{"ok contact expires", response(pb.ResponseType_OK, contact(120), expires(3600), reason("OK")), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 120, reason: "OK"}},
		{"ok contact without expires, Expires header", response(pb.ResponseType_OK, contact(-1), expires(300)), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 300}},
		{"ok Expires header only", response(pb.ResponseType_OK, expires(300)), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 300}},
		{"ok neither", response(pb.ResponseType_OK), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 600}},
		{"ok contact -1, no Expires", response(pb.ResponseType_OK, contact(-1)), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 600}},
		{"ok shorter than asked", response(pb.ResponseType_OK, contact(60)), 3600,
			want{class: sipmsg.ClassOK, code: 200, granted: 60}},
		{"ok longer than asked", response(pb.ResponseType_OK, contact(7200)), 3600,
			want{class: sipmsg.ClassOK, code: 200, granted: 7200}},
		// Routr's rule counts the Contact's expires when >= 0 (docs/wire.md); Read counts it
		// only when > 0, so a 200 whose Contact says 0 falls through to Expires (a granted 0
		// would have the reconciler refresh at once, in a loop). This case pins that choice.
		{"ok contact 0 falls through", response(pb.ResponseType_OK, contact(0), expires(300)), 600,
			want{class: sipmsg.ClassOK, code: 200, granted: 300}},
		// §10.2.2: an unregister is granted 0 whatever the answer says.
		{"unregister", response(pb.ResponseType_OK, contact(120), expires(300)), 0,
			want{class: sipmsg.ClassOK, code: 200, granted: 0}},
		{"unregister, nothing in the answer", response(pb.ResponseType_OK), 0,
			want{class: sipmsg.ClassOK, code: 200, granted: 0}},
		{"accepted", response(pb.ResponseType_ACCEPTED, contact(90)), 600,
			want{class: sipmsg.ClassOK, code: 202, granted: 90}},

		{"401", response(pb.ResponseType_UNAUTHORIZED, reason("Unauthorized")), 600,
			want{class: sipmsg.ClassChallenge, code: 401, reason: "Unauthorized"}},
		{"407", response(pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED, ext("Proxy-Authenticate", `Digest realm="r", nonce="n"`)), 600,
			want{class: sipmsg.ClassChallenge, code: 407}},

		{"423 with Min-Expires", response(pb.ResponseType_INTERVAL_TOO_BRIEF, ext("Min-Expires", "3600")), 600,
			want{class: sipmsg.ClassIntervalTooBrief, code: 423, minExpires: 3600}},
		{"423 Min-Expires any case, spaces", response(pb.ResponseType_INTERVAL_TOO_BRIEF, ext("min-expires", " 1800 ")), 600,
			want{class: sipmsg.ClassIntervalTooBrief, code: 423, minExpires: 1800}},
		{"423 without Min-Expires", response(pb.ResponseType_INTERVAL_TOO_BRIEF, reason("Interval Too Brief")), 600,
			want{class: sipmsg.ClassRejected, code: 423, reason: "Interval Too Brief (423 without Min-Expires)"}},
		{"423 with unreadable Min-Expires", response(pb.ResponseType_INTERVAL_TOO_BRIEF, ext("Min-Expires", "soon")), 600,
			want{class: sipmsg.ClassRejected, code: 423, reason: "(423 without Min-Expires)"}},
		{"423 with Min-Expires 0", response(pb.ResponseType_INTERVAL_TOO_BRIEF, ext("Min-Expires", "0")), 600,
			want{class: sipmsg.ClassRejected, code: 423, reason: "(423 without Min-Expires)"}},

		{"420 Unsupported gin", response(pb.ResponseType_BAD_EXTENSION, ext("Unsupported", "gin")), 600,
			want{class: sipmsg.ClassBadExtension, code: 420, unsupported: []string{"gin"}}},
		{"420 Unsupported list", response(pb.ResponseType_BAD_EXTENSION, ext("Unsupported", " GIN , path,")), 600,
			want{class: sipmsg.ClassBadExtension, code: 420, unsupported: []string{"gin", "path"}}},
		{"420 without Unsupported", response(pb.ResponseType_BAD_EXTENSION), 600,
			want{class: sipmsg.ClassBadExtension, code: 420}},

		{"403", response(pb.ResponseType_FORBIDDEN, reason("Forbidden")), 600,
			want{class: sipmsg.ClassRejected, code: 403, reason: "Forbidden"}},
		{"404", response(pb.ResponseType_NOT_FOUND), 600, want{class: sipmsg.ClassRejected, code: 404}},
		{"400", response(pb.ResponseType_BAD_REQUEST), 600, want{class: sipmsg.ClassRejected, code: 400}},
		{"302", response(pb.ResponseType_MOVED_TEMPORARILY), 600, want{class: sipmsg.ClassRejected, code: 302}},
		{"603", response(pb.ResponseType_DECLINE), 600, want{class: sipmsg.ClassRejected, code: 603}},
		{"600", response(pb.ResponseType_BUSY_EVERYWHERE), 600, want{class: sipmsg.ClassRejected, code: 600}},
		{"403 with Retry-After", response(pb.ResponseType_FORBIDDEN, ext("Retry-After", "3600")), 600,
			want{class: sipmsg.ClassRejected, code: 403, retryAfter: time.Hour}},

		{"408", response(pb.ResponseType_REQUEST_TIMEOUT), 600, want{class: sipmsg.ClassTransient, code: 408}},
		{"480", response(pb.ResponseType_TEMPORARILY_UNAVAILABLE), 600, want{class: sipmsg.ClassTransient, code: 480}},
		{"481", response(pb.ResponseType_CALL_OR_TRANSACTION_DOES_NOT_EXIST), 600, want{class: sipmsg.ClassTransient, code: 481}},
		{"491", response(pb.ResponseType_REQUEST_PENDING), 600, want{class: sipmsg.ClassTransient, code: 491}},
		{"500", response(pb.ResponseType_SERVER_INTERNAL_ERROR), 600, want{class: sipmsg.ClassTransient, code: 500}},
		{"504", response(pb.ResponseType_SERVER_TIMEOUT), 600, want{class: sipmsg.ClassTransient, code: 504}},
		{"503", response(pb.ResponseType_SERVICE_UNAVAILABLE), 600, want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After 120", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "120")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 120 * time.Second}},
		{"503 Retry-After with duration", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "120;duration=10")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 120 * time.Second}},
		{"503 Retry-After with comment", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "120 (later)")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 120 * time.Second}},
		{"503 retry-after lower case, spaces", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("retry-after", "  45  ")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 45 * time.Second}},
		{"503 Retry-After not a number", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "later")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After empty", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After 0", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "0")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After negative", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "-5")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After overflow", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "99999999999999999999999")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 Retry-After one week", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "604800")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 7 * 24 * time.Hour}},
		{"503 Retry-After over a week", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "604801")), 600,
			want{class: sipmsg.ClassTransient, code: 503}},
		{"503 first Retry-After wins", response(pb.ResponseType_SERVICE_UNAVAILABLE, ext("Retry-After", "10"), ext("Retry-After", "20")), 600,
			want{class: sipmsg.ClassTransient, code: 503, retryAfter: 10 * time.Second}},
		{"provisional", response(pb.ResponseType_TRYING), 600, want{class: sipmsg.ClassTransient, code: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sipmsg.Read(tt.resp, tt.asked)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			w := tt.want
			if got.Class != w.class {
				t.Errorf("Class = %v, want %v", got.Class, w.class)
			}
			if got.Type != tt.resp.GetMessage().GetResponseType() {
				t.Errorf("Type = %v", got.Type)
			}
			if got.Code != w.code {
				t.Errorf("Code = %d, want %d", got.Code, w.code)
			}
			if got.Granted != w.granted {
				t.Errorf("Granted = %d, want %d", got.Granted, w.granted)
			}
			if got.MinExpires != w.minExpires {
				t.Errorf("MinExpires = %d, want %d", got.MinExpires, w.minExpires)
			}
			if got.RetryAfter != w.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got.RetryAfter, w.retryAfter)
			}
			if !slices.Equal(got.Unsupported, w.unsupported) {
				t.Errorf("Unsupported = %q, want %q", got.Unsupported, w.unsupported)
			}
			if got.Reason != w.reason {
				t.Errorf("Reason = %q, want %q", got.Reason, w.reason)
			}
		})
	}
}

func TestReadMalformed(t *testing.T) {
	tests := []struct {
		name string
		resp *requesterv2beta1.SendMessageResponse
	}{
		{"nil response", nil},
		{"nil message", &requesterv2beta1.SendMessageResponse{}},
		{"no message type", &requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{ReasonPhrase: "OK"}}},
		{"request_uri instead of response_type", &requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{
			MessageType: &pb.SIPMessage_RequestUri{RequestUri: &pb.SipURI{Host: "example.com"}}}}},
		{"nil request_uri", &requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{
			MessageType: &pb.SIPMessage_RequestUri{}}}},
		{"UNKNOWN", response(pb.ResponseType_UNKNOWN)},
		{"type 999", response(pb.ResponseType(999))},
		{"type 58", response(pb.ResponseType(58))},
		{"negative type", response(pb.ResponseType(-1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sipmsg.Read(tt.resp, 600)
			if !errors.Is(err, sipmsg.ErrMalformed) {
				t.Fatalf("Read = %+v, %v; want ErrMalformed", got, err)
			}
			if got.Class != 0 || got.Granted != 0 {
				t.Errorf("an unreadable answer was classified: %+v", got)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	want := map[sipmsg.Class]string{
		sipmsg.ClassOK:               "ok",
		sipmsg.ClassChallenge:        "challenge",
		sipmsg.ClassIntervalTooBrief: "interval-too-brief",
		sipmsg.ClassBadExtension:     "bad-extension",
		sipmsg.ClassRejected:         "rejected",
		sipmsg.ClassTransient:        "transient",
		0:                            "unknown",
		99:                           "unknown",
	}
	for c, s := range want {
		if got := c.String(); got != s {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, s)
		}
	}
}

func TestHeader(t *testing.T) {
	msg := &pb.SIPMessage{Extensions: []*pb.Extension{
		{Name: "CSeq", Value: "1 REGISTER"}, {Name: "min-expires", Value: "60"}, {Name: "Min-Expires", Value: "120"}, {Name: "Empty"},
	}}
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"CSeq", "1 REGISTER", true},
		{"cseq", "1 REGISTER", true},
		{"MIN-EXPIRES", "60", true},
		{"Empty", "", true},
		{"Retry-After", "", false},
	}
	for _, tt := range tests {
		v, ok := sipmsg.Header(msg, tt.name)
		if v != tt.value || ok != tt.ok {
			t.Errorf("Header(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
	if v, ok := sipmsg.Header(nil, "CSeq"); v != "" || ok {
		t.Errorf("Header(nil) = %q, %v", v, ok)
	}
}
