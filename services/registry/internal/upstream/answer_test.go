package upstream

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// sameReading decodes raw with proto.Unmarshal and with the lean decoder and fails
// unless both give the same error, or answers that sipmsg.Read (for an unregister and
// two lifetimes) and sipauth.ChallengeFrom read the same. It also fails when the lean
// path is taken for an answer proto refuses, or is not taken for one proto reads and
// the lean decoder mirrors (no request URI). It reports whether the lean path was taken.
func sameReading(t *testing.T, raw []byte) bool {
	t.Helper()
	var full requesterv2beta1.SendMessageResponse
	fullErr := proto.Unmarshal(raw, &full)
	lean := answerShape.valid(raw, 0) && new(leanAnswer).lean(raw)
	a := new(leanAnswer)
	err := a.decode(raw)

	if lean && fullErr != nil {
		t.Fatalf("lean path taken for %x, which proto refuses: %v", raw, fullErr)
	}
	if !lean && fullErr == nil && !hasRequestURI(raw) {
		t.Fatalf("proto's path taken for %x, which proto reads and holds no request URI", raw)
	}
	if (err == nil) != (fullErr == nil) || err != nil && err.Error() != fullErr.Error() {
		t.Fatalf("%x: lean decode error %v, proto's %v", raw, err, fullErr)
	}
	if err != nil {
		return lean
	}
	for _, asked := range []int{0, 1, 600} {
		wantOut, wantErr := sipmsg.Read(&full, asked)
		gotOut, gotErr := sipmsg.Read(&a.resp, asked)
		if !reflect.DeepEqual(gotOut, wantOut) || errText(gotErr) != errText(wantErr) {
			t.Fatalf("%x: Read(asked %d) = %+v, %v; with proto's decode %+v, %v", raw, asked, gotOut, gotErr, wantOut, wantErr)
		}
	}
	wantCh, wantErr := sipauth.ChallengeFrom(full.GetMessage())
	gotCh, gotErr := sipauth.ChallengeFrom(a.resp.GetMessage())
	if gotCh != wantCh || errText(gotErr) != errText(wantErr) {
		t.Fatalf("%x: ChallengeFrom = %+v, %v; with proto's decode %+v, %v", raw, gotCh, gotErr, wantCh, wantErr)
	}
	return lean
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// hasRequestURI reports whether a message of raw (whose framing proto accepted) has a
// request_uri field, even one replaced by a later response_type.
func hasRequestURI(raw []byte) bool {
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeField(b)
		if num == fieldRespMessage && typ == protowire.BytesType {
			_, _, tl := protowire.ConsumeTag(b)
			m, _ := protowire.ConsumeBytes(b[tl:])
			for len(m) > 0 {
				num, typ, n := protowire.ConsumeField(m)
				if num == fieldRequestURI && typ == protowire.BytesType {
					return true
				}
				m = m[n:]
			}
		}
		b = b[n:]
	}
	return false
}

// FuzzDecodeAnswer: any bytes decode leanly to what sipmsg.Read and
// sipauth.ChallengeFrom read as they read proto's decode, with proto's error for
// bytes proto refuses, and never a panic.
func FuzzDecodeAnswer(f *testing.F) {
	raw, err := proto.Marshal(routrOK())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	g := newAnswerGen(1)
	for range 40 {
		f.Add(g.answer())
	}
	f.Fuzz(func(t *testing.T, raw []byte) { sameReading(t, raw) })
}

// TestDecodeAnswerRandom runs sameReading on many random answers, and checks that most
// take the lean path and that the odd ones are there (refused, request URIs).
func TestDecodeAnswerRandom(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	g := newAnswerGen(2)
	lean, refused := 0, 0
	for range n {
		raw := g.answer()
		if sameReading(t, raw) {
			lean++
		}
		if proto.Unmarshal(raw, new(requesterv2beta1.SendMessageResponse)) != nil {
			refused++
		}
	}
	t.Logf("%d answers: %d lean, %d refused by proto", n, lean, refused)
	if lean < n/2 || refused < n/20 {
		t.Errorf("%d lean and %d refused of %d: the generator no longer covers both", lean, refused, n)
	}
}

// TestDecodeAnswerCases pins answers whose reading hangs on a detail of proto's.
func TestDecodeAnswerCases(t *testing.T) {
	tag := protowire.AppendTag
	msg := func(in []byte) []byte {
		return protowire.AppendBytes(tag(nil, fieldRespMessage, protowire.BytesType), in)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	varint := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
	}
	ok := varint(nil, fieldResponseType, uint64(pb.ResponseType_OK))
	contact := func(exp uint64) []byte {
		return protowire.AppendBytes(tag(nil, fieldContact, protowire.BytesType), varint(nil, fieldContactExp, exp))
	}
	ext := func(name, value string) []byte {
		return protowire.AppendBytes(tag(nil, fieldExtensions, protowire.BytesType), str(str(nil, fieldExtName, name), fieldExtValue, value))
	}
	via := protowire.AppendBytes(tag(nil, 13, protowire.BytesType), str(nil, 1, "\xffhost"))
	cases := []struct {
		name string
		raw  []byte
		lean bool
	}{
		{"empty answer", nil, true},
		{"empty message", msg(nil), true},
		{"two messages merged", append(msg(append(ok, contact(300)...)), msg(str(nil, fieldReason, "Fine"))...), true},
		{"contacts merged", msg(append(append(ok, contact(300)...), protowire.AppendBytes(tag(nil, fieldContact, protowire.BytesType), nil)...)), true},
		{"enum beyond int32", msg(varint(nil, fieldResponseType, 1<<32|7)), true},
		{"expires beyond int32", msg(append(ok, contact(1<<32|300)...)), true},
		{"invalid UTF-8 in a Via", msg(append(ok, via...)), false},
		{"invalid UTF-8 in a dropped extension", msg(append(ok, ext("Server", "\xc0")...)), false},
		{"invalid UTF-8 in a kept extension", msg(append(ok, ext("Retry-After", "\xc0")...)), false},
		{"request URI then response type", msg(append(protowire.AppendBytes(tag(nil, fieldRequestURI, protowire.BytesType), nil), ok...)), false},
		{"response type as bytes", msg(str(nil, fieldResponseType, "x")), true},
		{"field number 0", []byte{0x00, 0x01}, false},
		{"field number out of range", varint(nil, protowire.MaxValidNumber+1, 1), false},
		{"cut length", msg(ok)[:2], false},
		{"unclosed group", msg(tag(nil, 40, protowire.StartGroupType)), false},
		{"stray end-group", msg(tag(nil, 40, protowire.EndGroupType)), false},
		{"stale in the field", msg(append(varint(nil, fieldResponseType, uint64(pb.ResponseType_UNAUTHORIZED)),
			protowire.AppendBytes(tag(nil, fieldWWWAuth, protowire.BytesType), varint(str(str(nil, 3, "Digest"), 4, "n"), 8, 2))...)), true},
		{"challenge as extension", msg(append(varint(nil, fieldResponseType, uint64(pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED)),
			ext(" proxy-authenticate", `Digest realm="r", nonce="n", algorithm=SHA-256`)...)), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if lean := sameReading(t, c.raw); lean != c.lean {
				t.Errorf("lean path %v, want %v", lean, c.lean)
			}
		})
	}
}

// TestAnswerFieldNumbers: the lean decoder's field numbers are the descriptors'.
func TestAnswerFieldNumbers(t *testing.T) {
	resp := (*requesterv2beta1.SendMessageResponse)(nil).ProtoReflect().Descriptor()
	msg := (*pb.SIPMessage)(nil).ProtoReflect().Descriptor()
	www := (*pb.WWWAuthenticate)(nil).ProtoReflect().Descriptor()
	for _, c := range []struct {
		md   protoreflect.MessageDescriptor
		name protoreflect.Name
		num  protowire.Number
	}{
		{resp, "message", fieldRespMessage},
		{msg, "response_type", fieldResponseType}, {msg, "request_uri", fieldRequestURI},
		{msg, "contact", fieldContact}, {msg, "expires", fieldExpires}, {msg, "www_authenticate", fieldWWWAuth},
		{msg, "extensions", fieldExtensions}, {msg, "reason_phrase", fieldReason},
		{(*pb.Contact)(nil).ProtoReflect().Descriptor(), "expires", fieldContactExp},
		{(*pb.Expires)(nil).ProtoReflect().Descriptor(), "expires", fieldExpiresExp},
		{(*pb.Extension)(nil).ProtoReflect().Descriptor(), "name", fieldExtName},
		{(*pb.Extension)(nil).ProtoReflect().Descriptor(), "value", fieldExtValue},
		{www, "realm", 1}, {www, "domain", 2}, {www, "scheme", 3}, {www, "nonce", 4},
		{www, "algorithm", 5}, {www, "qop", 6}, {www, "opaque", 7}, {www, "stale", 8},
	} {
		fd := c.md.Fields().ByName(c.name)
		if fd == nil || protowire.Number(fd.Number()) != c.num {
			t.Errorf("%s.%s is not field %d", c.md.FullName(), c.name, c.num)
		}
	}
	if www.Fields().Len() != 8 || www.Fields().ByNumber(8).Kind() != protoreflect.BoolKind {
		t.Error("WWWAuthenticate changed: review wwwAuthenticate")
	}
}

// TestAnswerShape: every type of the answer is mirrored (else every answer would take
// proto's path), and a shape of what it does not mirror is refused.
func TestAnswerShape(t *testing.T) {
	seen := map[*shape]bool{}
	var walk func(s *shape)
	walk = func(s *shape) {
		if seen[s] {
			return
		}
		seen[s] = true
		if s.unsupported {
			t.Error("a type of the answer is not mirrored")
		}
		for _, f := range s.fields {
			if f.sub != nil {
				walk(f.sub)
			}
		}
	}
	walk(answerShape)
	if len(seen) < 10 {
		t.Errorf("only %d types in the answer's shape", len(seen))
	}
	if !errors.Is(proto.Unmarshal([]byte{0x08}, new(pb.Expires)), proto.Error) || answerShape.valid([]byte{0x0a, 0x02, 0x08}, 0) {
		t.Error("a cut varint is read")
	}
}
