package upstream

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// SkippedItem is one trunk of a FindBy answer that could not be decoded.
type SkippedItem struct {
	// Index is the item's position among the answer's items (0 for the first).
	Index int
	// Ref is the item's ref when it can be read on its own (field 1 of the item, the
	// last one given, as proto would) and is a clean ref: valid UTF-8 without control,
	// format or line-separator characters, spaces trimmed. Else "".
	Ref string
	// Err is why the item could not be decoded (proto's error; it names the field, for
	// example "string field contains invalid UTF-8" for a name that is not UTF-8).
	Err error
}

func (s SkippedItem) String() string {
	if s.Ref == "" {
		return fmt.Sprintf("items[%d]: %v", s.Index, s.Err)
	}
	return fmt.Sprintf("items[%d] (ref %s): %v", s.Index, s.Ref, s.Err)
}

// findByItems is the field number of FindByResponse.items.
const findByItems protowire.Number = 1

// trunkRef is the field number of Trunk.ref.
const trunkRef protowire.Number = 1

// DecodeFindBy decodes a FindByResponse (its wire bytes, as FindRegisteringRaw answers
// them) one trunk at a time, so that one undecodable trunk (a name that is not valid
// UTF-8, which proto3 refuses, or a broken nested message) does not make the whole answer
// unreadable: such an item is left out and reported in skipped, in order, and the
// others are returned in the answer's order. err is set only when the answer's own
// framing is broken (a bad tag, a length beyond the end, an unmatched group); items and
// skipped are then nil.
//
// Fields other than items are ignored, and so is an items field of another wire type
// (proto.Unmarshal keeps both as unknown fields): when proto.Unmarshal reads raw without
// error, DecodeFindBy returns the same items and skips none.
func DecodeFindBy(raw []byte) (items []*trunksv2beta1.Trunk, skipped []SkippedItem, err error) {
	skipped, err = eachFindBy(raw, func(n int) { items = make([]*trunksv2beta1.Trunk, 0, n) },
		unmarshalTrunk, func(t *trunksv2beta1.Trunk) { items = append(items, t) })
	if err != nil {
		return nil, nil, err
	}
	return items, skipped, nil
}

// countFindBy checks the framing of a FindByResponse (its wire bytes) and counts its
// items, decoding none: the error DecodeFindBy returns for a broken answer, else the
// number of items (decodable or not).
func countFindBy(raw []byte) (int, error) {
	n := 0
	for b := raw; len(b) > 0; {
		num, typ, l := protowire.ConsumeField(b)
		if l < 0 {
			return 0, fmt.Errorf("trunks findBy: unreadable answer at byte %d: %w", len(raw)-len(b), protowire.ParseError(l))
		}
		if num > protowire.MaxValidNumber {
			// protowire reads it; proto refuses it.
			return 0, fmt.Errorf("trunks findBy: unreadable answer at byte %d: field number %d out of range", len(raw)-len(b), num)
		}
		if num == findByItems && typ == protowire.BytesType {
			n++
		}
		b = b[l:]
	}
	return n, nil
}

// EachFindBy is DecodeFindBy handing each decoded item to each, in the answer's order,
// instead of collecting them, so that a caller that converts the items can drop each
// once read: a large answer is then never held decoded at all. The message each is
// given is valid only until each returns: it is reused for the next item, and its
// strings are views of raw (leanTrunks), so whoever keeps one copies it
// (trunk.FromProto does); the fields the registry never reads (access_control_list,
// inbound_credentials, extended) are checked, not decoded, and left nil. sized is
// told first how many items the answer holds (decodable or not), from the pass that
// checks its framing, so that the caller can size what it fills. Nothing is handed
// over from an answer whose framing is broken.
func EachFindBy(raw []byte, sized func(n int), each func(*trunksv2beta1.Trunk)) (skipped []SkippedItem, err error) {
	var lean leanTrunks
	return eachFindBy(raw, sized, func(v []byte) (*trunksv2beta1.Trunk, error) {
		if t, ok := lean.decode(v); ok {
			return t, nil
		}
		return unmarshalTrunk(v) // refused: proto says why
	}, each)
}

func unmarshalTrunk(v []byte) (*trunksv2beta1.Trunk, error) {
	t := new(trunksv2beta1.Trunk)
	return t, proto.Unmarshal(v, t)
}

// eachFindBy walks the items of raw, decoding each with decode.
func eachFindBy(raw []byte, sized func(n int), decode func([]byte) (*trunksv2beta1.Trunk, error), each func(*trunksv2beta1.Trunk)) (skipped []SkippedItem, err error) {
	n, err := countFindBy(raw)
	if err != nil {
		return nil, err
	}
	sized(n)
	index := 0
	for b := raw; len(b) > 0; {
		num, typ, tl := protowire.ConsumeTag(b)
		b = b[tl:]
		if num != findByItems || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, vl := protowire.ConsumeBytes(b)
		b = b[vl:]
		if t, uerr := decode(v); uerr != nil {
			skipped = append(skipped, SkippedItem{Index: index, Ref: lenientRef(v), Err: uerr})
		} else {
			each(t)
		}
		index++
	}
	return skipped, nil
}

// lenientRef reads field 1 (ref) of an encoded Trunk without decoding the rest: the last
// occurrence, as proto.Unmarshal would take it. It gives "" when there is none, when the
// item's framing is broken before it, or when the ref is not clean.
func lenientRef(b []byte) string {
	var ref []byte
	for len(b) > 0 {
		num, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			break
		}
		b = b[tl:]
		if num == trunkRef && typ == protowire.BytesType {
			v, vl := protowire.ConsumeBytes(b)
			if vl < 0 {
				break
			}
			ref, b = v, b[vl:]
			continue
		}
		vl := protowire.ConsumeFieldValue(num, typ, b)
		if vl < 0 {
			break
		}
		b = b[vl:]
	}
	s := strings.Trim(string(ref), " ")
	if cleanRef(s) != nil {
		return ""
	}
	return s
}

// cleanRef refuses what a ref must not hold (the rule of trunk.FromProto).
func cleanRef(s string) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return errors.New("invalid UTF-8")
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("control character U+%04X", r)
		}
		i += n
	}
	return nil
}
