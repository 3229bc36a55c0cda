package upstream

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/structpb"

	aclv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/acl/v2beta1"
	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// leanSeeds are Trunk encodings that reach every branch of leanTrunks and wireValid:
// what Routr's API sends (ACL, inbound credentials, extended), fields given twice,
// fields of another wire type, unknown fields and groups, and what proto refuses
// in a field the engine never reads.
func leanSeeds(t testing.TB) [][]byte {
	full := goodTrunk("full")
	full.ApiVersion, full.InboundUri, full.CreatedAt, full.UpdatedAt = "v2beta1", "sip:in.example", 1700000000, -1
	full.AccessControlList = &aclv2beta1.AccessControlList{Ref: "acl", Allow: []string{"10.0.0.0/8"}, Deny: []string{"0.0.0.0/0"}}
	full.InboundCredentials = &credentialsv2beta1.Credentials{Username: "in", Password: "secret"}
	ext, err := structpb.NewStruct(map[string]any{"region": "eu", "n": 1.5, "list": []any{"a", true, nil, map[string]any{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	full.Extended = ext
	full.OutboundCredentials.Extended = ext
	full.Uris = append(full.Uris, &trunksv2beta1.TrunkURI{Host: "[::1]", Port: 5080, Transport: "tcp", Weight: 10, Priority: 1})

	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	varint := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
	}
	good := marshal(t, goodTrunk("t1"))
	// The credentials twice (merged), the ref twice (the last wins), a URI's port as
	// bytes and the ref as a varint (unknown fields), an unknown field and a group.
	twice := str(nil, 10, string(str(nil, 4, "first")))
	twice = str(twice, 1, "old-ref")
	twice = append(twice, good...)
	twice = str(twice, 10, string(varint(str(nil, 5, "pw2"), 6, 7)))
	twice = str(twice, 11, string(str(str(nil, 2, "x"), 1, "h.example")))
	twice = varint(twice, 1, 5)
	twice = varint(twice, 99, 1<<40)
	twice = append(tag(twice, 50, protowire.StartGroupType), tag(str(nil, 1, "g"), 50, protowire.EndGroupType)...)
	twice = varint(twice, 4, 0)
	badACL := str(good, 8, string(str(nil, 3, "bad \xff")))
	badExt := str(good, 12, string(str(nil, 1, string(str(nil, 1, "\xc3")))))
	return [][]byte{good, marshal(t, full), twice, badACL, badExt, badNameItem("bad"),
		nil, {0x08}, tag(nil, 1, protowire.EndGroupType), str(nil, 536870912, "x")}
}

// FuzzLeanTrunk: leanTrunks answers what proto.Unmarshal answers: it refuses what
// proto refuses, and what proto reads it reads the same, but for the fields it leaves
// out (ACL, inbound credentials, extended, unknown fields). The seed corpus is
// leanSeeds and testdata/fuzz/FuzzLeanTrunk.
func FuzzLeanTrunk(f *testing.F) {
	for _, s := range leanSeeds(f) {
		f.Add(s)
	}
	var d leanTrunks
	f.Fuzz(func(t *testing.T, b []byte) {
		want := new(trunksv2beta1.Trunk)
		uerr := proto.Unmarshal(b, want)
		got, ok := d.decode(b)
		if ok != (uerr == nil) {
			t.Fatalf("leanTrunks ok=%v, proto.Unmarshal: %v", ok, uerr)
		}
		if !ok {
			return
		}
		if !proto.Equal(got, leanView(want)) {
			t.Fatalf("leanTrunks read\n%v\nproto.Unmarshal\n%v", got, want)
		}
	})
}

// FuzzWireValid: wireValid's verdict is proto.Unmarshal's, for the messages of the
// FindBy answer and for one with proto2 fields, packed lists and nested groups
// (descriptorpb's). The first byte picks the message type.
func FuzzWireValid(f *testing.F) {
	types := []protoreflect.MessageType{
		(&trunksv2beta1.Trunk{}).ProtoReflect().Type(),
		(&trunksv2beta1.FindByResponse{}).ProtoReflect().Type(),
		(&structpb.Struct{}).ProtoReflect().Type(),
		(&descriptorpb.FileDescriptorProto{}).ProtoReflect().Type(),
	}
	for _, s := range leanSeeds(f) {
		f.Add(append([]byte{0}, s...))
		f.Add(append([]byte{1}, answer(s)...))
	}
	fd := marshal(f, protoFileOf(f))
	f.Add(append([]byte{3}, fd...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		mt := types[int(b[0])%len(types)]
		err := proto.Unmarshal(b[1:], mt.New().Interface())
		if got := wireValid(b[1:], mt.Descriptor()); got != (err == nil) {
			t.Fatalf("wireValid %v for %s; proto.Unmarshal: %v", got, mt.Descriptor().FullName(), err)
		}
	})
}

// protoFileOf is a FileDescriptorProto with packed options and nested messages.
func protoFileOf(t testing.TB) *descriptorpb.FileDescriptorProto {
	t.Helper()
	return &descriptorpb.FileDescriptorProto{
		Name: proto.String("x.proto"), Dependency: []string{"a.proto"}, PublicDependency: []int32{0, 1, 300},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("f"), Number: proto.Int32(1), Options: &descriptorpb.FieldOptions{Packed: proto.Bool(true)}}}}},
	}
}

// leanView is m without what leanTrunks leaves out.
func leanView(m *trunksv2beta1.Trunk) *trunksv2beta1.Trunk {
	m.AccessControlList, m.InboundCredentials, m.Extended = nil, nil, nil
	m.ProtoReflect().SetUnknown(nil)
	if c := m.OutboundCredentials; c != nil {
		c.Extended = nil
		c.ProtoReflect().SetUnknown(nil)
	}
	for _, u := range m.Uris {
		u.ProtoReflect().SetUnknown(nil)
	}
	return m
}
