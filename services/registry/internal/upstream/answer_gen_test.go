package upstream

import (
	"bytes"
	"math"
	mrand "math/rand/v2"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// answerGen makes random answers, the way a registrar and Routr might, and worse.
type answerGen struct{ r *mrand.Rand }

func newAnswerGen(seed uint64) answerGen { return answerGen{mrand.New(mrand.NewPCG(seed, 7))} }

func (g answerGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g answerGen) chance(p float64) bool { return g.r.Float64() < p }

// marker is a two-byte UTF-8 letter that broken() turns into invalid UTF-8 in place.
const marker = "é"

func (g answerGen) text() string {
	return g.pick("", "OK", "alice", "sip.provider.net", "10.0.0.7", " x ", "z9hG4bK776", "Ünïcødé",
		marker, "a"+marker+"b", strings.Repeat("long", 40))
}

func (g answerGen) headerName() string {
	return g.pick("Retry-After", "retry-after", " RETRY-AFTER", "Retry-After ", "Min-Expires", "min-expires",
		"Unsupported", "UNSUPPORTED\t", "WWW-Authenticate", "www-authenticate", " Www-Authenticate ",
		"Proxy-Authenticate", "proxy-authenticate", "\tProxy-Authenticate", "CSeq", "Server", "Allow",
		"Retry-After-X", "Min-Expires2", "", "Expires", "Require", "Supported", "WWW-Authenticate"+marker)
}

func (g answerGen) headerValue() string {
	return g.pick("", "120", "120;duration=3600", " 60 (maintenance)", "-5", "x", "3600", "1800", "0",
		"gin", "gin, path", " GIN ,,foo", "11 REGISTER",
		`Digest realm="sip.provider.net", nonce="abc123", algorithm=MD5, qop="auth"`,
		`Digest realm="sip.provider.net", nonce="n2", algorithm=SHA-256, qop="auth,auth-int", stale=true`,
		`Digest realm="r", nonce="abc123", algorithm=MD5, opaque="o"`,
		`Basic realm="x"`, `Digest realm="r", nonce="n", algorithm=SHA-512-256`, `Digest realm=`, `Digest nonce="n", qop="auth-int"`,
		marker)
}

func (g answerGen) int32() int32 {
	switch g.r.IntN(6) {
	case 0:
		return -1
	case 1:
		return 0
	case 2:
		return g.r.Int32N(4000)
	case 3:
		return math.MaxInt32
	case 4:
		return math.MinInt32
	}
	return 600
}

func (g answerGen) address() *pb.Address {
	if g.chance(0.2) {
		return nil
	}
	return &pb.Address{DisplayName: g.text(), Uri: &pb.SipURI{User: g.text(), Host: g.text(), Port: g.r.Int32N(70000), LrParam: g.chance(0.3)}}
}

func (g answerGen) params() map[string]string {
	if g.chance(0.5) {
		return nil
	}
	return map[string]string{g.text(): g.text(), "lr": ""}
}

func (g answerGen) wwwAuthenticate() *pb.WWWAuthenticate {
	return &pb.WWWAuthenticate{
		Realm: g.pick("", "sip.provider.net", "r"), Domain: g.text(), Scheme: g.pick("", "Digest", "digest ", "Basic"),
		Nonce: g.pick("", "abc123", "n2", "n"), Algorithm: g.pick("", "MD5", " SHA-256", "md5-sess", "SHA-512-256"),
		Qop: g.pick("", "auth", "auth,auth-int", "auth-int"), Opaque: g.text(), Stale: g.chance(0.3),
	}
}

// message is a random SIPMessage of an answer.
func (g answerGen) message() *pb.SIPMessage {
	m := &pb.SIPMessage{ReasonPhrase: g.pick("", "OK", "Unauthorized", "Interval Too Brief", "Bad Extension", "Trying", g.text())}
	switch g.r.IntN(20) {
	case 0:
		m.MessageType = &pb.SIPMessage_RequestUri{RequestUri: &pb.SipURI{Host: g.text()}}
	case 1:
	case 2:
		m.MessageType = &pb.SIPMessage_ResponseType{ResponseType: pb.ResponseType(g.r.Int32N(200) - 50)}
	default:
		types := []pb.ResponseType{pb.ResponseType_OK, pb.ResponseType_ACCEPTED, pb.ResponseType_UNAUTHORIZED,
			pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED, pb.ResponseType_INTERVAL_TOO_BRIEF, pb.ResponseType_BAD_EXTENSION,
			pb.ResponseType_FORBIDDEN, pb.ResponseType_REQUEST_TIMEOUT, pb.ResponseType_SERVICE_UNAVAILABLE, pb.ResponseType_TRYING,
			pb.ResponseType_DECLINE, pb.ResponseType_UNKNOWN}
		m.MessageType = &pb.SIPMessage_ResponseType{ResponseType: types[g.r.IntN(len(types))]}
	}
	if g.chance(0.6) {
		m.Contact = &pb.Contact{Address: g.address(), Expires: g.int32(), QValue: g.r.Float32()}
	}
	if g.chance(0.6) {
		m.Expires = &pb.Expires{Expires: g.int32()}
	}
	if g.chance(0.3) {
		m.WwwAuthenticate = g.wwwAuthenticate()
	}
	if g.chance(0.5) {
		m.From = &pb.From{Address: g.address(), Tag: g.text(), Parameters: g.params()}
		m.To = &pb.To{Address: g.address(), Tag: g.text(), Parameters: g.params()}
		m.CallId = &pb.CallID{CallId: g.text()}
		m.Via = []*pb.Via{{Host: g.text(), Port: 5060, Branch: g.text(), Received: g.text()}}
		m.Route = []*pb.Route{{Address: g.address(), Parameters: g.params()}}
	}
	if g.chance(0.2) {
		m.Authorization = &pb.Authorization{Realm: g.text(), Response: g.text(), NonceCount: g.int32()}
		m.MaxForwards = &pb.MaxForwards{MaxForwards: 70}
		m.Body = g.text()
	}
	for range g.r.IntN(7) {
		m.Extensions = append(m.Extensions, &pb.Extension{Name: g.headerName(), Value: g.headerValue()})
	}
	return m
}

// answer is a random encoded SendMessageResponse: a random message, then perhaps a
// second one (which proto merges into the first), odd fields, invalid UTF-8 in place of
// the marker, a flipped byte or a cut.
func (g answerGen) answer() []byte {
	var resp requesterv2beta1.SendMessageResponse
	if !g.chance(0.05) {
		resp.Message = g.message()
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(&resp)
	if err != nil {
		panic(err)
	}
	if g.chance(0.2) {
		second, _ := proto.Marshal(&requesterv2beta1.SendMessageResponse{Message: g.message()})
		raw = append(raw, second...)
	}
	if g.chance(0.2) {
		raw = g.oddField(raw)
	}
	if g.chance(0.15) {
		raw = bytes.ReplaceAll(raw, []byte(marker), []byte{0xff, 0xa9})
	}
	if len(raw) > 0 && g.chance(0.1) {
		raw[g.r.IntN(len(raw))] ^= byte(1 << g.r.IntN(8))
	}
	if len(raw) > 0 && g.chance(0.05) {
		raw = raw[:g.r.IntN(len(raw))]
	}
	return raw
}

// oddField appends a field proto reads in a way of its own: a known field of another
// wire type, an unknown field, a group, a number out of range, or a message holding one.
func (g answerGen) oddField(raw []byte) []byte {
	sub := func(inner []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, fieldRespMessage, protowire.BytesType), inner)
	}
	switch g.r.IntN(8) {
	case 0: // message as a varint
		return protowire.AppendVarint(protowire.AppendTag(raw, fieldRespMessage, protowire.VarintType), 7)
	case 1: // response_type as bytes, contact as a varint
		in := protowire.AppendBytes(protowire.AppendTag(nil, fieldResponseType, protowire.BytesType), []byte("x"))
		in = protowire.AppendVarint(protowire.AppendTag(in, fieldContact, protowire.VarintType), 9)
		return append(raw, sub(in)...)
	case 2: // a group, closed or not
		in := protowire.AppendTag(nil, 40, protowire.StartGroupType)
		in = protowire.AppendVarint(protowire.AppendTag(in, 1, protowire.VarintType), 1)
		if g.chance(0.7) {
			in = protowire.AppendTag(in, 40, protowire.EndGroupType)
		}
		return append(raw, sub(in)...)
	case 3: // a field number above the largest proto allows
		return protowire.AppendVarint(protowire.AppendTag(raw, protowire.MaxValidNumber+1, protowire.VarintType), 1)
	case 4: // an enum far out of int32
		in := protowire.AppendVarint(protowire.AppendTag(nil, fieldResponseType, protowire.VarintType), 1<<40|7)
		return append(raw, sub(in)...)
	case 5: // an extension with its name twice, the first a kept header
		e := protowire.AppendString(protowire.AppendTag(nil, fieldExtName, protowire.BytesType), "Retry-After")
		e = protowire.AppendString(protowire.AppendTag(e, fieldExtName, protowire.BytesType), g.headerName())
		e = protowire.AppendString(protowire.AppendTag(e, fieldExtValue, protowire.BytesType), "30")
		return append(raw, sub(protowire.AppendBytes(protowire.AppendTag(nil, fieldExtensions, protowire.BytesType), e))...)
	case 6: // a contact whose expires is a fixed64, then one with a varint
		c := protowire.AppendFixed64(protowire.AppendTag(nil, fieldContactExp, protowire.Fixed64Type), 5)
		c = protowire.AppendVarint(protowire.AppendTag(c, fieldContactExp, protowire.VarintType), uint64(g.r.Int64N(1<<34)))
		return append(raw, sub(protowire.AppendBytes(protowire.AppendTag(nil, fieldContact, protowire.BytesType), c))...)
	default: // an end-group out of place
		return protowire.AppendTag(raw, 3, protowire.EndGroupType)
	}
}
