package upstream

import (
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// leanTrunks decodes the items of a FindBy answer without proto.Unmarshal's
// allocations (a message per trunk, per URI and per credentials, a string per field:
// 40 % of the allocations of a start at 100,000 trunks). It fills one message, reused
// from item to item, whose strings are views of the answer's bytes: the message is
// valid until the next decode, and whoever keeps a string of it copies it
// (trunk.FromProto does).
//
// It answers what proto.Unmarshal answers, but for the fields the engine never reads,
// which are checked and not decoded (access_control_list, inbound_credentials and
// extended are left nil, and so are the credentials' extended and unknown fields):
// wireValid first checks the whole item as proto would, so that an item proto refuses
// is refused here too; then each field is read as proto reads it (the last scalar
// wins, a message given twice is merged, a field of another wire type is unknown).
// FuzzLeanTrunk holds it to proto.Unmarshal.
type leanTrunks struct {
	t    trunksv2beta1.Trunk
	cred credentialsv2beta1.Credentials
	uris []trunksv2beta1.TrunkURI
	ptrs []*trunksv2beta1.TrunkURI
}

var trunkDescriptor = (&trunksv2beta1.Trunk{}).ProtoReflect().Descriptor()

// The field numbers leanTrunks reads.
const (
	trunkAPIVersion protowire.Number = iota + 2
	trunkName
	trunkSendRegister
	trunkInboundURI
	trunkCreatedAt
	trunkUpdatedAt
	trunkOutbound protowire.Number = 10
	trunkURIs     protowire.Number = 11
)

// decode answers the Trunk v encodes, or false when proto.Unmarshal refuses v.
func (d *leanTrunks) decode(v []byte) (*trunksv2beta1.Trunk, bool) {
	if !wireValid(v, trunkDescriptor) {
		return nil, false
	}
	d.t = trunksv2beta1.Trunk{}
	d.cred = credentialsv2beta1.Credentials{}
	d.uris = d.uris[:0]
	hasCred := false
	scan(v, func(num protowire.Number, s []byte, x uint64, bytes bool) {
		switch {
		case !bytes:
			switch num {
			case trunkSendRegister:
				d.t.SendRegister = x != 0
			case trunkCreatedAt:
				d.t.CreatedAt = int32(x)
			case trunkUpdatedAt:
				d.t.UpdatedAt = int32(x)
			}
		case num == trunkRef:
			d.t.Ref = view(s)
		case num == trunkAPIVersion:
			d.t.ApiVersion = view(s)
		case num == trunkName:
			d.t.Name = view(s)
		case num == trunkInboundURI:
			d.t.InboundUri = view(s)
		case num == trunkOutbound:
			hasCred = true
			credentialsInto(&d.cred, s)
		case num == trunkURIs:
			d.uris = append(d.uris, trunksv2beta1.TrunkURI{})
			uriInto(&d.uris[len(d.uris)-1], s)
		}
	})
	if hasCred {
		d.t.OutboundCredentials = &d.cred
	}
	if len(d.uris) > 0 {
		d.ptrs = d.ptrs[:0]
		for i := range d.uris {
			d.ptrs = append(d.ptrs, &d.uris[i])
		}
		d.t.Uris = d.ptrs
	}
	return &d.t, true
}

// credentialsInto merges the Credentials b encodes into c.
func credentialsInto(c *credentialsv2beta1.Credentials, b []byte) {
	scan(b, func(num protowire.Number, s []byte, x uint64, bytes bool) {
		switch {
		case !bytes && num == 6:
			c.CreatedAt = int32(x)
		case !bytes && num == 7:
			c.UpdatedAt = int32(x)
		case !bytes:
		case num == 1:
			c.ApiVersion = view(s)
		case num == 2:
			c.Ref = view(s)
		case num == 3:
			c.Name = view(s)
		case num == 4:
			c.Username = view(s)
		case num == 5:
			c.Password = view(s)
		}
	})
}

// uriInto reads the TrunkURI b encodes into u.
func uriInto(u *trunksv2beta1.TrunkURI, b []byte) {
	scan(b, func(num protowire.Number, s []byte, x uint64, bytes bool) {
		switch {
		case bytes && num == 1:
			u.Host = view(s)
		case bytes && num == 3:
			u.Transport = view(s)
		case bytes && num == 4:
			u.User = view(s)
		case bytes:
		case num == 2:
			u.Port = int32(x)
		case num == 5:
			u.Weight = int32(x)
		case num == 6:
			u.Priority = int32(x)
		case num == 7:
			u.Enabled = x != 0
		}
	})
}

// scan hands f each length-delimited field (its bytes, bytes true) and each varint
// field (its value) of b, which wireValid accepted; it skips the others.
func scan(b []byte, f func(num protowire.Number, s []byte, x uint64, bytes bool)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			s, m := protowire.ConsumeBytes(b)
			f(num, s, 0, true)
			n = m
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			f(num, nil, x, false)
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		b = b[n:]
	}
}

// view is s as a string, sharing its bytes.
func view(s []byte) string {
	return unsafe.String(unsafe.SliceData(s), len(s))
}
