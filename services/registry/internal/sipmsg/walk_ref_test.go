package sipmsg

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// refWalk is walk as it was before its plans: the reference. It visits every field of m in field number order: strings (also unset ones, which
// are empty, so that required values are checked), ints, set messages, list elements and
// map entries.
func refWalk(m protoreflect.Message, vis visitor) error {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			if !m.Has(fd) {
				continue
			}
			if err := refWalkMap(m, fd, vis); err != nil {
				return at(err, fd.TextName())
			}
		case fd.IsList():
			if !m.Has(fd) {
				continue
			}
			if err := refWalkList(m.Mutable(fd).List(), fd, vis); err != nil {
				return at(err, fd.TextName())
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if !m.Has(fd) {
				continue
			}
			if err := refWalk(m.Get(fd).Message(), vis); err != nil {
				return at(err, fd.TextName())
			}
		case fd.Kind() == protoreflect.StringKind:
			if fd.ContainingOneof() != nil && !m.Has(fd) {
				continue
			}
			v := m.Get(fd).String()
			repl, err := vis.str(ruleOf(fd), v)
			if err != nil {
				return at(err, fd.TextName())
			}
			if repl != v {
				m.Set(fd, protoreflect.ValueOfString(repl))
			}
		case isInt(fd.Kind()):
			if !m.Has(fd) && fd.FullName() != pbSIP+"SipURI.port" {
				continue
			}
			if err := vis.int(fd.FullName() == pbSIP+"SipURI.port", m.Get(fd).Int()); err != nil {
				return at(err, fd.TextName())
			}
		}
	}
	return nil
}

func refWalkList(l protoreflect.List, fd protoreflect.FieldDescriptor, vis visitor) error {
	for i := 0; i < l.Len(); i++ {
		switch {
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			em := l.Get(i).Message()
			if err := refWalk(em, vis); err != nil {
				return at(withHeaderName(err, em), "["+strconv.Itoa(i)+"]")
			}
		case fd.Kind() == protoreflect.StringKind:
			v := l.Get(i).String()
			repl, err := vis.str(ruleOf(fd), v)
			if err != nil {
				return at(err, "["+strconv.Itoa(i)+"]")
			}
			if repl != v {
				l.Set(i, protoreflect.ValueOfString(repl))
			}
		}
	}
	return nil
}

func refWalkMap(m protoreflect.Message, fd protoreflect.FieldDescriptor, vis visitor) error {
	mp := m.Mutable(fd).Map()
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var entries []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k, v})
		return true
	})
	// Map order is random: visit the keys in sorted order, so the first error is stable.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k.String(), b.k.String()) })
	vd := fd.MapValue()
	for _, e := range entries {
		k := e.k
		seg := "[" + strconv.Quote(k.String()) + "]"
		if fd.MapKey().Kind() == protoreflect.StringKind {
			repl, err := vis.str(mapKeyRule, k.String())
			if err != nil {
				return at(err, seg+" (key)")
			}
			if repl != k.String() {
				mp.Clear(k)
				k = protoreflect.ValueOfString(repl).MapKey()
				mp.Set(k, e.v)
			}
		}
		switch {
		case vd.Kind() == protoreflect.MessageKind || vd.Kind() == protoreflect.GroupKind:
			if err := refWalk(mp.Get(k).Message(), vis); err != nil {
				return at(err, seg)
			}
		case vd.Kind() == protoreflect.StringKind:
			v := mp.Get(k).String()
			repl, err := vis.str(ruleOf(vd), v)
			if err != nil {
				return at(err, seg)
			}
			if repl != v {
				mp.Set(k, protoreflect.ValueOfString(repl))
			}
		}
	}
	return nil
}

// FuzzWalkReference holds walk (per-descriptor plans) to refWalk on arbitrary requests
// (proto.Unmarshal of fuzzed bytes): the same Check error, and the same request after
// scrubbing.
func FuzzWalkReference(f *testing.F) {
	for _, r := range []Register{
		{Domain: "sip.provider.net", Transport: "udp", User: "alice", CallID: "c@h", FromTag: "t", CSeq: 1,
			EdgePortHost: "ep", Methods: []string{"INVITE"}, UserAgent: "ua\r\n", GatewayAuth: "gw"},
		{Domain: "::1", Port: 70000, Transport: "t t", User: "\xff"},
	} {
		b, err := proto.Marshal(build(r))
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a, b requesterv2beta1.SendMessageRequest
		if proto.Unmarshal(data, &a) != nil || proto.Unmarshal(data, &b) != nil {
			return
		}
		e1, e2 := walk(a.ProtoReflect(), checkVisitor{}), refWalk(b.ProtoReflect(), checkVisitor{})
		if (e1 == nil) != (e2 == nil) || e1 != nil && e1.Error() != e2.Error() {
			t.Fatalf("walk: %v, reference %v", e1, e2)
		}
		_ = walk(a.ProtoReflect(), scrubVisitor{})
		_ = refWalk(b.ProtoReflect(), scrubVisitor{})
		if !proto.Equal(&a, &b) {
			t.Fatalf("scrubbed differently:\n got %v\nwant %v", &a, &b)
		}
	})
}
