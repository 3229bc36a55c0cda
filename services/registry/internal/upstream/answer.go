package upstream

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// The lean answer.
//
// A SendMessage answer is a whole SIP response (Via, From, To, Call-ID, every other
// header as an extension), but the engine reads only a few things of it: sipmsg.Read
// the response type, the reason phrase, the Contact's and the Expires' expires and the
// extensions Retry-After, Min-Expires and Unsupported; sipauth.ChallengeFrom the
// www_authenticate field and the extensions WWW-Authenticate and Proxy-Authenticate.
// Decoding all of it with proto costs about fifty allocations per answer. The lean
// decoder checks the answer as proto would and fills only those parts, in one
// allocation (plus the strings kept).
//
// The answer it gives reads the same as proto's to those two functions: the same
// class, code, reason, lifetimes, options and challenge, and the same errors. An
// answer proto would refuse, or one the lean decoder does not mirror (a request URI
// in place of the response type), is handed to proto.Unmarshal itself, so its error,
// or its message, is proto's own. A reader of another field or header must be added
// here (readHeaders, leanAnswer.message), or it finds nothing.

// readHeaders are the extensions kept, compared as sipauth does (spaces trimmed, any
// case): the others are dropped. Dropping an extension no reader looks for changes
// no reader's result, since the kept ones stay in order.
var readHeaders = [][]byte{
	[]byte("Retry-After"), []byte("Min-Expires"), []byte("Unsupported"),
	[]byte("WWW-Authenticate"), []byte("Proxy-Authenticate"),
}

// Field numbers read by the lean decoder (checked against the descriptors by the tests).
const (
	fieldRespMessage  protowire.Number = 1  // SendMessageResponse.message
	fieldResponseType protowire.Number = 1  // SIPMessage.response_type
	fieldRequestURI   protowire.Number = 2  // SIPMessage.request_uri
	fieldContact      protowire.Number = 5  // SIPMessage.contact
	fieldExpires      protowire.Number = 8  // SIPMessage.expires
	fieldWWWAuth      protowire.Number = 9  // SIPMessage.www_authenticate
	fieldExtensions   protowire.Number = 12 // SIPMessage.extensions
	fieldReason       protowire.Number = 16 // SIPMessage.reason_phrase
	fieldContactExp   protowire.Number = 2  // Contact.expires
	fieldExpiresExp   protowire.Number = 1  // Expires.expires
	fieldExtName      protowire.Number = 1  // Extension.name
	fieldExtValue     protowire.Number = 2  // Extension.value
)

// leanAnswer is a SendMessageResponse and the parts of its message the engine reads,
// allocated together. Only resp is handed out; the others are what it points to.
type leanAnswer struct {
	resp    requesterv2beta1.SendMessageResponse
	msg     sipmessagev2beta1.SIPMessage
	typ     sipmessagev2beta1.SIPMessage_ResponseType
	contact sipmessagev2beta1.Contact
	expires sipmessagev2beta1.Expires
}

// Unmarshal is decode, for grpclite.
func (a *leanAnswer) Unmarshal(b []byte) error { return a.decode(b) }

// decode fills a from b, an encoded SendMessageResponse: leanly when proto would read
// b without error, else with proto.Unmarshal (whose error it returns).
func (a *leanAnswer) decode(b []byte) error {
	if answerShape.valid(b, 0) && a.lean(b) {
		return nil
	}
	return proto.Unmarshal(b, &a.resp)
}

// lean fills a from b, which answerShape found valid. false: b holds what the lean
// decoder does not mirror.
func (a *leanAnswer) lean(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num == fieldRespMessage && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			b = b[n:]
			// A message given twice is merged, as proto does.
			a.resp.Message = &a.msg
			if !a.message(v) {
				return false
			}
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	return true
}

// message reads the fields of a SIPMessage the engine reads. Of a field given twice,
// the last value counts, and messages are merged, as proto does; a field of another
// wire type than its own is an unknown field to proto, and skipped here.
func (a *leanAnswer) message(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if typ == protowire.VarintType && num == fieldResponseType {
			v, n := protowire.ConsumeVarint(b)
			b = b[n:]
			a.typ.ResponseType = sipmessagev2beta1.ResponseType(int32(v))
			a.msg.MessageType = &a.typ
			continue
		}
		if typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		switch num {
		case fieldRequestURI:
			return false
		case fieldContact:
			a.msg.Contact = &a.contact
			a.contact.Expires = lastInt32(v, fieldContactExp, a.contact.Expires)
		case fieldExpires:
			a.msg.Expires = &a.expires
			a.expires.Expires = lastInt32(v, fieldExpiresExp, a.expires.Expires)
		case fieldWWWAuth:
			if a.msg.WwwAuthenticate == nil {
				a.msg.WwwAuthenticate = new(sipmessagev2beta1.WWWAuthenticate)
			}
			wwwAuthenticate(v, a.msg.WwwAuthenticate)
		case fieldExtensions:
			if e := extension(v); e != nil {
				a.msg.Extensions = append(a.msg.Extensions, e)
			}
		case fieldReason:
			a.msg.ReasonPhrase = phrase(v)
		}
	}
	return true
}

// lastInt32 is the last varint field num of b as an int32, else was.
func lastInt32(b []byte, num protowire.Number, was int32) int32 {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(b)
			b = b[l:]
			was = int32(v)
			continue
		}
		b = b[protowire.ConsumeFieldValue(n, typ, b):]
	}
	return was
}

// wwwAuthenticate merges an encoded WWWAuthenticate into w.
func wwwAuthenticate(b []byte, w *sipmessagev2beta1.WWWAuthenticate) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num == 8 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			b = b[n:]
			w.Stale = protowire.DecodeBool(v)
			continue
		}
		if num < 1 || num > 7 || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		// The fields' numbers, in order: realm, domain, scheme, nonce, algorithm,
		// qop, opaque.
		*[...]*string{&w.Realm, &w.Domain, &w.Scheme, &w.Nonce, &w.Algorithm, &w.Qop, &w.Opaque}[num-1] = string(v)
	}
}

// extension decodes an encoded Extension when its name is one of readHeaders, else
// answers nil.
func extension(b []byte) *sipmessagev2beta1.Extension {
	var name, value []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldExtName || num == fieldExtValue) {
			v, n := protowire.ConsumeBytes(b)
			b = b[n:]
			if num == fieldExtName {
				name = v
			} else {
				value = v
			}
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	trimmed := bytes.TrimSpace(name)
	for _, h := range readHeaders {
		if bytes.EqualFold(trimmed, h) {
			return &sipmessagev2beta1.Extension{Name: string(name), Value: string(value)}
		}
	}
	return nil
}

// phrase is b as a string, the usual reason phrases of an answer to a REGISTER
// without an allocation.
func phrase(b []byte) string {
	switch string(b) {
	case "OK":
		return "OK"
	case "Unauthorized":
		return "Unauthorized"
	case "Proxy Authentication Required":
		return "Proxy Authentication Required"
	case "Request Timeout":
		return "Request Timeout"
	case "Forbidden":
		return "Forbidden"
	case "Not Found":
		return "Not Found"
	case "Interval Too Brief":
		return "Interval Too Brief"
	case "Service Unavailable":
		return "Service Unavailable"
	}
	return string(b)
}

// answerCodec marshals requests as gRPC's own proto codec does (the same bytes, in a
// pooled buffer: marshalRequest) and decodes answers into a leanAnswer. Its name is
// empty, so that the call's content-type stays "application/grpc", as with the default
// codec: gRPC names the content-subtype after a forced codec.
type answerCodec struct{}

func (answerCodec) Marshal(v any) (mem.BufferSlice, error) { return marshalRequest(v) }

func (answerCodec) Unmarshal(data mem.BufferSlice, v any) error {
	a, ok := v.(*leanAnswer)
	if !ok {
		return fmt.Errorf("answer codec: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return a.decode(buf.ReadOnlyData())
}

func (answerCodec) Name() string { return "" }

// answerShape is how proto reads a SendMessageResponse.
var answerShape = shapeOf((*requesterv2beta1.SendMessageResponse)(nil).ProtoReflect().Descriptor(),
	map[protoreflect.FullName]*shape{})

// shape is how proto reads one message type: for each field number, the wire type it
// takes and what it checks of the value.
type shape struct {
	fields []fieldShape // by field number; the zero fieldShape is an unknown field
	// unsupported: proto reads something of this type the shape does not mirror (a
	// group, a repeated scalar, which may come packed): valid is then always false.
	unsupported bool
}

type fieldShape struct {
	wire protowire.Type
	kind fieldKind
	sub  *shape // of a message (or a map's entry)
}

type fieldKind uint8

const (
	kindUnknown fieldKind = iota
	kindScalar            // any value of its wire type
	kindString            // valid UTF-8
	kindMessage           // a valid sub
)

// maxShapeDepth bounds valid's recursion; the answer's types nest five deep.
const maxShapeDepth = 64

// shapeOf builds md's shape (seen holds the shapes built, for recursive types).
func shapeOf(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*shape) *shape {
	if s, ok := seen[md.FullName()]; ok {
		return s
	}
	s := new(shape)
	seen[md.FullName()] = s
	fds := md.Fields()
	top := 0
	for i := range fds.Len() {
		top = max(top, int(fds.Get(i).Number()))
	}
	if top > 1024 {
		s.unsupported = true
		return s
	}
	s.fields = make([]fieldShape, top+1)
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := &s.fields[fd.Number()]
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
			protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
			f.wire, f.kind = protowire.VarintType, kindScalar
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			f.wire, f.kind = protowire.Fixed32Type, kindScalar
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			f.wire, f.kind = protowire.Fixed64Type, kindScalar
		case protoreflect.BytesKind:
			f.wire, f.kind = protowire.BytesType, kindScalar
		case protoreflect.StringKind:
			// Checked as UTF-8 whatever the file's syntax: a check proto would not
			// make only sends the answer to proto, never changes a result.
			f.wire, f.kind = protowire.BytesType, kindString
		case protoreflect.MessageKind:
			f.wire, f.kind, f.sub = protowire.BytesType, kindMessage, shapeOf(fd.Message(), seen)
		default:
			s.unsupported = true
		}
		if fd.IsList() && f.kind == kindScalar && f.wire != protowire.BytesType {
			s.unsupported = true
		}
	}
	return s
}

// valid reports whether proto.Unmarshal would read b as a message of shape s without
// an error: every tag readable and its field number in range, every value within b,
// every group closed, every string of a known field valid UTF-8, every message of a
// known field valid. A known field of another wire type is an unknown field to proto,
// skipped as such. It may refuse what proto reads (depth), never the reverse.
func (s *shape) valid(b []byte, depth int) bool {
	if s.unsupported || depth > maxShapeDepth {
		return false
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		b = b[n:]
		var f fieldShape
		if int(num) < len(s.fields) {
			f = s.fields[num]
		}
		if f.kind == kindUnknown || typ != f.wire {
			n = protowire.ConsumeFieldValue(num, typ, b)
		} else {
			switch typ {
			case protowire.VarintType:
				_, n = protowire.ConsumeVarint(b)
			case protowire.Fixed32Type:
				_, n = protowire.ConsumeFixed32(b)
			case protowire.Fixed64Type:
				_, n = protowire.ConsumeFixed64(b)
			default:
				var v []byte
				v, n = protowire.ConsumeBytes(b)
				if n >= 0 && (f.kind == kindString && !utf8.Valid(v) || f.kind == kindMessage && !f.sub.valid(v, depth+1)) {
					return false
				}
			}
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}
