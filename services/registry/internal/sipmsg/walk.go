package sipmsg

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldKind is what walk does with a field.
type fieldKind uint8

const (
	kindOther fieldKind = iota // not visited (bools, enums, bytes, floats, unsigned)
	kindMap
	kindList
	kindMessage
	kindString
	kindInt
)

// fieldPlan is one field of a message as walk visits it, worked out once per descriptor
// (the rule lookup by full name, the kind tests) instead of at every request.
type fieldPlan struct {
	fd    protoreflect.FieldDescriptor
	kind  fieldKind
	name  string    // fd.TextName(), for errors
	rule  fieldRule // a string's rule (ruleOf), a list's elements', a map's values'
	oneof bool      // a string in a oneof: visited only when set
	port  bool      // SipURI.port: visited even when unset (0 is refused)
	elem  fieldKind // a list's elements, a map's values: kindMessage or kindString
	skey  bool      // a map with string keys
}

// plans maps a protoreflect.MessageDescriptor to its []fieldPlan.
var plans sync.Map

// planOf returns the plan of the fields of md, in field number order.
func planOf(md protoreflect.MessageDescriptor) []fieldPlan {
	if p, ok := plans.Load(md); ok {
		return p.([]fieldPlan)
	}
	fields := md.Fields()
	p := make([]fieldPlan, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		fp := fieldPlan{fd: fd, name: fd.TextName()}
		switch {
		case fd.IsMap():
			fp.kind, fp.skey = kindMap, fd.MapKey().Kind() == protoreflect.StringKind
			fp.elem, fp.rule = elemKind(fd.MapValue()), ruleOf(fd.MapValue())
		case fd.IsList():
			fp.kind, fp.elem, fp.rule = kindList, elemKind(fd), ruleOf(fd)
		case isMessage(fd.Kind()):
			fp.kind = kindMessage
		case fd.Kind() == protoreflect.StringKind:
			fp.kind, fp.rule, fp.oneof = kindString, ruleOf(fd), fd.ContainingOneof() != nil
		case isInt(fd.Kind()):
			fp.kind, fp.port = kindInt, fd.FullName() == pbSIP+"SipURI.port"
		}
		p = append(p, fp)
	}
	v, _ := plans.LoadOrStore(md, p)
	return v.([]fieldPlan)
}

func isMessage(k protoreflect.Kind) bool {
	return k == protoreflect.MessageKind || k == protoreflect.GroupKind
}

// elemKind is how walk visits the elements of a list or the values of a map.
func elemKind(fd protoreflect.FieldDescriptor) fieldKind {
	switch {
	case isMessage(fd.Kind()):
		return kindMessage
	case fd.Kind() == protoreflect.StringKind:
		return kindString
	}
	return kindOther
}

// walk visits every field of m in field number order: strings (also unset ones, which
// are empty, so that required values are checked), ints, set messages, list elements and
// map entries.
func walk(m protoreflect.Message, vis visitor) error {
	plan := planOf(m.Descriptor())
	for i := range plan {
		fp := &plan[i]
		fd := fp.fd
		switch fp.kind {
		case kindMap:
			if !m.Has(fd) {
				continue
			}
			if err := walkMap(m, fp, vis); err != nil {
				return at(err, fp.name)
			}
		case kindList:
			if !m.Has(fd) {
				continue
			}
			if err := walkList(m.Mutable(fd).List(), fp, vis); err != nil {
				return at(err, fp.name)
			}
		case kindMessage:
			if !m.Has(fd) {
				continue
			}
			if err := walk(m.Get(fd).Message(), vis); err != nil {
				return at(err, fp.name)
			}
		case kindString:
			if fp.oneof && !m.Has(fd) {
				continue
			}
			v := m.Get(fd).String()
			repl, err := vis.str(fp.rule, v)
			if err != nil {
				return at(err, fp.name)
			}
			if repl != v {
				m.Set(fd, protoreflect.ValueOfString(repl))
			}
		case kindInt:
			if !fp.port && !m.Has(fd) {
				continue
			}
			if err := vis.int(fp.port, m.Get(fd).Int()); err != nil {
				return at(err, fp.name)
			}
		}
	}
	return nil
}

func isInt(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

func walkList(l protoreflect.List, fp *fieldPlan, vis visitor) error {
	for i := 0; i < l.Len(); i++ {
		switch fp.elem {
		case kindMessage:
			em := l.Get(i).Message()
			if err := walk(em, vis); err != nil {
				return at(withHeaderName(err, em), "["+strconv.Itoa(i)+"]")
			}
		case kindString:
			v := l.Get(i).String()
			repl, err := vis.str(fp.rule, v)
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

// withHeaderName adds the name of an extension to an error about it, when the name is a
// token (safe to show).
func withHeaderName(err error, m protoreflect.Message) error {
	fe, ok := err.(*fieldError)
	if !ok || fe.note != "" || m.Descriptor().FullName() != pbSIP+"Extension" {
		return err
	}
	name := m.Get(m.Descriptor().Fields().ByName("name")).String()
	if checkToken(name) != nil {
		return err
	}
	fe.note = " (header " + name + ")"
	return fe
}

func walkMap(m protoreflect.Message, fp *fieldPlan, vis visitor) error {
	mp := m.Mutable(fp.fd).Map()
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
	for _, e := range entries {
		k := e.k
		seg := func() string { return "[" + strconv.Quote(k.String()) + "]" } // only for an error
		if fp.skey {
			repl, err := vis.str(mapKeyRule, k.String())
			if err != nil {
				return at(err, seg()+" (key)")
			}
			if repl != k.String() {
				mp.Clear(k)
				k = protoreflect.ValueOfString(repl).MapKey()
				mp.Set(k, e.v)
			}
		}
		switch {
		case fp.elem == kindMessage:
			if err := walk(mp.Get(k).Message(), vis); err != nil {
				return at(err, seg())
			}
		case fp.elem == kindString:
			v := mp.Get(k).String()
			repl, err := vis.str(fp.rule, v)
			if err != nil {
				return at(err, seg())
			}
			if repl != v {
				mp.Set(k, protoreflect.ValueOfString(repl))
			}
		}
	}
	return nil
}
