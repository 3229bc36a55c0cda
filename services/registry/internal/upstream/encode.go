package upstream

import (
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// The request's encoding.
//
// protobuf-go's generated-code path walks a SendMessageRequest twice (its size, then
// its bytes) through tables of field coders: about a tenth of a big start's CPU. The
// REGISTER is a fixed set of message types without unknown fields (sipmsg builds it),
// so appendRequest encodes it by hand, in one pass: a nested message's length is
// written after its content (one byte reserved, the content moved when the length
// takes more). The bytes are proto's deterministic encoding of the same message (fields
// in number order but a oneof last, proto3 zero values left out, oneof members and map
// entries written in full, map keys sorted), which FuzzAppendRequest checks against
// proto.Marshal.

// marshalRequestTo appends req's encoding to b: by hand for a SendMessageRequest,
// with proto otherwise.
func marshalRequestTo(b []byte, req proto.Message) ([]byte, error) {
	if m, ok := req.(*requesterv2beta1.SendMessageRequest); ok {
		return appendRequest(b, m), nil
	}
	return proto.MarshalOptions{}.MarshalAppend(b, req)
}

func appendRequest(b []byte, m *requesterv2beta1.SendMessageRequest) []byte {
	b = appendString(b, 1, m.Target)
	b = appendInt32(b, 2, int32(m.Method))
	b = appendInt32(b, 3, int32(m.Transport))
	if m.Message != nil {
		b = beginMessage(b, 4)
		at := len(b) - 1
		return endMessage(appendSIPMessage(b, m.Message), at)
	}
	return b
}

func appendSIPMessage(b []byte, m *pb.SIPMessage) []byte {
	if m.From != nil {
		b = appendNameAddr(b, 3, m.From.Address, m.From.Tag, m.From.Parameters)
	}
	if m.To != nil {
		b = appendNameAddr(b, 4, m.To.Address, m.To.Tag, m.To.Parameters)
	}
	if c := m.Contact; c != nil {
		b = beginMessage(b, 5)
		at := len(b) - 1
		b = appendAddressField(b, 1, c.Address)
		b = appendInt32(b, 2, c.Expires)
		if c.QValue != 0 || math.Signbit(float64(c.QValue)) {
			b = protowire.AppendTag(b, 3, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(c.QValue))
		}
		b = endMessage(b, at)
	}
	if m.CallId != nil {
		b = beginMessage(b, 6)
		at := len(b) - 1
		b = endMessage(appendString(b, 1, m.CallId.CallId), at)
	}
	if m.ContentLength != nil {
		b = appendInt32Message(b, 7, m.ContentLength.ContentLength)
	}
	if m.Expires != nil {
		b = appendInt32Message(b, 8, m.Expires.Expires)
	}
	if w := m.WwwAuthenticate; w != nil {
		b = beginMessage(b, 9)
		at := len(b) - 1
		b = appendStrings(b, w.Realm, w.Domain, w.Scheme, w.Nonce, w.Algorithm, w.Qop, w.Opaque)
		b = endMessage(appendBool(b, 8, w.Stale), at)
	}
	if m.MaxForwards != nil {
		b = appendInt32Message(b, 10, m.MaxForwards.MaxForwards)
	}
	if a := m.Authorization; a != nil {
		b = beginMessage(b, 11)
		at := len(b) - 1
		b = appendStrings(b, a.Realm, a.Scheme, a.CNonce, a.Nonce, a.Algorithm, a.Qop, a.Opaque, a.Response, a.Username, a.Uri, a.Method)
		b = endMessage(appendInt32(b, 12, a.NonceCount), at)
	}
	for _, x := range m.Extensions {
		b = beginMessage(b, 12)
		at := len(b) - 1
		b = appendString(b, 1, x.GetName())
		b = endMessage(appendString(b, 2, x.GetValue()), at)
	}
	for _, v := range m.Via {
		b = beginMessage(b, 13)
		at := len(b) - 1
		b = endMessage(appendVia(b, v), at)
	}
	for _, r := range m.Route {
		b = appendRoute(b, 14, r)
	}
	for _, r := range m.RecordRoute {
		b = appendRoute(b, 15, r)
	}
	b = appendString(b, 16, m.ReasonPhrase)
	b = appendString(b, 17, m.Body)
	// proto writes a oneof after the other fields.
	switch t := m.MessageType.(type) {
	case *pb.SIPMessage_ResponseType:
		if t != nil {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(t.ResponseType)))
		}
	case *pb.SIPMessage_RequestUri:
		b = beginMessage(b, 2)
		at := len(b) - 1
		b = endMessage(appendSipURI(b, t.RequestUri), at)
	}
	return b
}

// appendNameAddr appends a From or To (the same fields) as field num.
func appendNameAddr(b []byte, num protowire.Number, addr *pb.Address, tag string, params map[string]string) []byte {
	b = beginMessage(b, num)
	at := len(b) - 1
	b = appendAddressField(b, 1, addr)
	b = appendString(b, 2, tag)
	return endMessage(appendParams(b, 3, params), at)
}

// route is a Route or a RecordRoute (the same fields).
type route interface {
	GetAddress() *pb.Address
	GetParameters() map[string]string
}

// appendRoute appends a Route or a RecordRoute as field num.
func appendRoute(b []byte, num protowire.Number, r route) []byte {
	b = beginMessage(b, num)
	at := len(b) - 1
	b = appendAddressField(b, 1, r.GetAddress())
	return endMessage(appendParams(b, 2, r.GetParameters()), at)
}

func appendVia(b []byte, v *pb.Via) []byte {
	if v == nil {
		return b
	}
	b = appendString(b, 1, v.Host)
	b = appendInt32(b, 2, v.Port)
	b = appendString(b, 3, v.Branch)
	b = appendString(b, 4, v.Transport)
	b = appendBool(b, 5, v.RPortFlag)
	b = appendInt32(b, 6, v.RPort)
	b = appendString(b, 7, v.Received)
	b = appendString(b, 8, v.MAddr)
	return appendInt32(b, 9, v.Ttl)
}

func appendAddressField(b []byte, num protowire.Number, a *pb.Address) []byte {
	if a == nil {
		return b
	}
	b = beginMessage(b, num)
	at := len(b) - 1
	if a.Uri != nil {
		b = beginMessage(b, 1)
		uat := len(b) - 1
		b = endMessage(appendSipURI(b, a.Uri), uat)
	}
	b = appendString(b, 2, a.DisplayName)
	return endMessage(appendBool(b, 3, a.Wildcard), at)
}

func appendSipURI(b []byte, u *pb.SipURI) []byte {
	if u == nil {
		return b
	}
	b = appendStrings(b, u.User, u.UserPassword, u.Host, u.TransportParam, u.MAddrParam, u.MethodParam, u.UserParam)
	b = appendInt32(b, 8, u.TtlParam)
	b = appendInt32(b, 9, u.Port)
	b = appendBool(b, 10, u.LrParam)
	b = appendBool(b, 11, u.BncParam)
	return appendBool(b, 12, u.Secure)
}

// appendParams appends a map<string, string> as field num, keys sorted; every entry
// has its key and value, even empty ones (as proto writes map entries).
func appendParams(b []byte, num protowire.Number, params map[string]string) []byte {
	if len(params) == 0 {
		return b
	}
	keys := slices.Sorted(maps.Keys(params))
	for _, k := range keys {
		b = beginMessage(b, num)
		at := len(b) - 1
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, params[k])
		b = endMessage(b, at)
	}
	return b
}

// appendInt32Message appends field num, a message of one int32 field.
func appendInt32Message(b []byte, num protowire.Number, v int32) []byte {
	b = beginMessage(b, num)
	at := len(b) - 1
	return endMessage(appendInt32(b, 1, v), at)
}

// appendStrings appends strings as fields 1, 2, ... in order.
func appendStrings(b []byte, ss ...string) []byte {
	for i, s := range ss {
		b = appendString(b, protowire.Number(i+1), s)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendInt32 appends an int32 or an enum (negative ones take ten bytes, as in proto).
func appendInt32(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return append(b, 1)
}

// beginMessage appends field num's tag and one byte for its length: the last byte of
// what it answers, whose index goes to endMessage.
func beginMessage(b []byte, num protowire.Number) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0)
}

// endMessage writes the length of the content appended after the byte at (reserved by
// beginMessage), moving the content when its length takes more than that byte.
func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	for range k - 1 {
		b = append(b, 0)
	}
	copy(b[at+k:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}
