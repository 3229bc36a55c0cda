package upstream

import (
	"bytes"
	"math"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// checkEncoding fails unless appendRequest gives proto's deterministic bytes for m,
// after a prefix (the bytes before are kept as they are).
func checkEncoding(t *testing.T, m *requesterv2beta1.SendMessageRequest) {
	t.Helper()
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte{0, 1, 2, 3, 4}
	got := appendRequest(append([]byte(nil), prefix...), m)
	if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		got = got[len(prefix):]
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("appendRequest: %d bytes, proto's %d; from byte %d:\n got %.64x\nwant %.64x", len(got), len(want), i, got[i:], want[i:])
	}
	out, err := marshalRequestTo(nil, m)
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("marshalRequestTo: %d bytes, %v", len(out), err)
	}
}

// TestAppendRequestREGISTER: the REGISTERs the registry sends, short and long (nested
// lengths of one, two and three bytes), encode as proto encodes them.
func TestAppendRequestREGISTER(t *testing.T) {
	for _, pad := range []int{0, 100, 300, 20000} {
		checkEncoding(t, sizedRequest(t, pad, 1+uint32(pad)))
	}
}

// FuzzAppendRequest: random SendMessageRequests, every field of every message type
// present or not, encode as proto does (deterministic: map keys sorted).
func FuzzAppendRequest(f *testing.F) {
	for _, seed := range []uint64{0, 1, 2, 3, 42, 1 << 40} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		r := mrand.New(mrand.NewPCG(seed, seed>>7))
		m := &requesterv2beta1.SendMessageRequest{}
		fill(r, m.ProtoReflect(), 0)
		checkEncoding(t, m)
	})
}

// fill sets a random choice of m's fields to random values, nested messages to depth 4.
func fill(r *mrand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(3) == 0 || (fd.Message() != nil && depth >= 4) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && m.WhichOneof(od) != nil {
			continue // another member is set
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range r.IntN(4) {
				mp.Set(protoreflect.ValueOfString(text(r)).MapKey(), protoreflect.ValueOfString(text(r)))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				v := l.NewElement()
				if fd.Message() != nil {
					fill(r, v.Message(), depth+1)
				} else {
					v = scalar(r, fd)
				}
				l.Append(v)
			}
		case fd.Message() != nil:
			fill(r, m.Mutable(fd).Message(), depth+1)
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func scalar(r *mrand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(text(r))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32([]int32{0, 1, -1, 127, 128, 5060, math.MaxInt32, math.MinInt32}[r.IntN(8)])
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32([]float32{0, float32(math.Copysign(0, -1)), 1, 0.5, -2.25, float32(math.NaN()), float32(math.Inf(1))}[r.IntN(7)])
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber([]int32{0, 1, 7, 32, 57, -3, 1000}[r.IntN(7)]))
	}
	panic("fill: no random value for " + fd.Kind().String())
}

func text(r *mrand.Rand) string {
	return []string{"", "a", "sip.provider.net", "Ünïcødé", strings.Repeat("x", 127), strings.Repeat("y", 128),
		strings.Repeat("z", 16384)}[r.IntN(7)]
}

// BenchmarkMarshalRequest is the REGISTER's encoding: /proto by proto.MarshalAppend
// (what gRPC's codec does), /hand by appendRequest.
func BenchmarkMarshalRequest(b *testing.B) {
	req := sizedRequest(b, 0, 1)
	buf := make([]byte, 0, 2048)
	b.Run("proto", func(b *testing.B) {
		for b.Loop() {
			out, err := proto.MarshalOptions{}.MarshalAppend(buf[:0], req)
			if err != nil || len(out) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			if out := appendRequest(buf[:0], req); len(out) == 0 {
				b.Fatal("no bytes")
			}
		}
	})
}
