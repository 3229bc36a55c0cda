package upstream

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// wireValid reports whether proto.Unmarshal reads b, the wire bytes of a message of
// type md, without error: the framing of every field (unknown ones included), the
// field numbers, the UTF-8 of proto3 strings and of map keys, nested messages and
// groups to proto's recursion limit. It decodes nothing and allocates nothing.
// FuzzWireValid holds it to proto.Unmarshal's verdict.
func wireValid(b []byte, md protoreflect.MessageDescriptor) bool {
	return messageValid(b, md, protowire.DefaultRecursionLimit)
}

// messageValid is wireValid with depth nested messages left (as proto counts them:
// the message itself is one).
func messageValid(b []byte, md protoreflect.MessageDescriptor, depth int) bool {
	if depth--; depth < 0 {
		return false
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber || typ == protowire.EndGroupType {
			return false
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd != nil && typ == wireTypeOf(fd) {
			n = fieldValid(b, fd, depth)
		} else if fd != nil && fd.IsList() && typ == protowire.BytesType && packable(fd) {
			n = packedValid(b, fd)
		} else {
			// Unknown, or known with another wire type: proto keeps it as unknown.
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// fieldValid checks one value of fd at the start of b (its tag consumed) and answers
// its length, negative when proto refuses it.
func fieldValid(b []byte, fd protoreflect.FieldDescriptor, depth int) int {
	switch fd.Kind() {
	case protoreflect.StringKind:
		v, n := protowire.ConsumeBytes(b)
		if n >= 0 && enforceUTF8(fd) && !utf8.Valid(v) {
			return -1
		}
		return n
	case protoreflect.MessageKind:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 || !messageValid(v, fd.Message(), depth) {
			return -1
		}
		return n
	case protoreflect.GroupKind:
		v, n := protowire.ConsumeGroup(fd.Number(), b)
		if n < 0 || !messageValid(v, fd.Message(), depth) {
			return -1
		}
		return n
	default:
		return protowire.ConsumeFieldValue(fd.Number(), wireTypeOf(fd), b)
	}
}

// packedValid checks a packed list of fd's scalars.
func packedValid(b []byte, fd protoreflect.FieldDescriptor) int {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return n
	}
	typ := wireTypeOf(fd)
	for len(v) > 0 {
		m := protowire.ConsumeFieldValue(fd.Number(), typ, v)
		if m < 0 {
			return m
		}
		v = v[m:]
	}
	return n
}

// enforceUTF8 reports whether proto checks the UTF-8 of fd's strings: proto3's
// (map keys and values too: a map's entry is declared in its message's file).
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	return fd.Syntax() == protoreflect.Proto3
}

// packable reports whether fd's values may be packed (scalars but strings and bytes).
func packable(fd protoreflect.FieldDescriptor) bool {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind:
		return false
	}
	return true
}

// wireTypeOf is the wire type of one value of fd.
func wireTypeOf(fd protoreflect.FieldDescriptor) protowire.Type {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	default:
		return protowire.VarintType
	}
}
