package sipmsg_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// FuzzRead builds SIPMessages from arbitrary bytes (proto.Unmarshal) and reads them as the
// answer to a REGISTER that asked for asked seconds. Read must not panic; it either
// refuses with ErrMalformed or returns a consistent Outcome. The seed corpus (a 200 with
// Contact and Expires, 401, 407, 423, 420, 503 with Retry-After, a request, an unknown
// type, truncated bytes) is in testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	for _, r := range []*requesterv2beta1.SendMessageResponse{
		response(pb.ResponseType_OK, contact(120), expires(300)),
		response(pb.ResponseType_INTERVAL_TOO_BRIEF, ext("Min-Expires", "3600")),
	} {
		b, err := proto.Marshal(r.GetMessage())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 600)
	}
	f.Fuzz(func(t *testing.T, data []byte, asked int) {
		var msg pb.SIPMessage
		if err := proto.Unmarshal(data, &msg); err != nil {
			return
		}
		o, err := sipmsg.Read(&requesterv2beta1.SendMessageResponse{Message: &msg}, asked)
		if err != nil {
			if !errors.Is(err, sipmsg.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if o.Code < 100 || o.Code > 699 || o.Code != sipmsg.Code(o.Type) {
			t.Fatalf("Code = %d for %v", o.Code, o.Type)
		}
		if o.Class.String() == "unknown" {
			t.Fatalf("Class = %d", o.Class)
		}
		if (o.Class == sipmsg.ClassOK) != (o.Code >= 200 && o.Code < 300) {
			t.Fatalf("Class %v for code %d", o.Class, o.Code)
		}
		if o.Class != sipmsg.ClassOK && o.Granted != 0 {
			t.Fatalf("Granted %d in a %v answer", o.Granted, o.Class)
		}
		if o.Class == sipmsg.ClassOK && asked == 0 && o.Granted != 0 {
			t.Fatalf("Granted %d for an unregister", o.Granted)
		}
		if o.Class == sipmsg.ClassOK && asked > 0 && o.Granted <= 0 {
			t.Fatalf("Granted %d for a REGISTER that asked %d", o.Granted, asked)
		}
		if (o.MinExpires != 0) != (o.Class == sipmsg.ClassIntervalTooBrief) || o.MinExpires < 0 {
			t.Fatalf("MinExpires %d in a %v answer", o.MinExpires, o.Class)
		}
		if len(o.Unsupported) != 0 && o.Class != sipmsg.ClassBadExtension {
			t.Fatalf("Unsupported %q in a %v answer", o.Unsupported, o.Class)
		}
		if o.RetryAfter < 0 || o.RetryAfter > 7*24*time.Hour {
			t.Fatalf("RetryAfter = %v", o.RetryAfter)
		}
	})
}
