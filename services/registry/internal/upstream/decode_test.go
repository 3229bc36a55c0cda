package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

func goodTrunk(ref string) *trunksv2beta1.Trunk {
	return &trunksv2beta1.Trunk{Ref: ref, Name: "Trunk " + ref, SendRegister: true,
		Uris:                []*trunksv2beta1.TrunkURI{{Host: "sip." + ref + ".example", Port: 5060, Transport: "UDP", User: "alice", Enabled: true}},
		OutboundCredentials: &credentialsv2beta1.Credentials{Ref: "cred-" + ref, Username: "alice", Password: "pw"}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badNameItem encodes a Trunk whose name (field 3) is not valid UTF-8, as Routr's API
// (Node) can send it and Go's proto3 decoding refuses.
func badNameItem(ref string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, ref)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("Bad \xff\xfe name"))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// answer frames items as FindByResponse.items.
func answer(items ...[]byte) []byte {
	var b []byte
	for _, it := range items {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, it)
	}
	return b
}

// The case this exists for: one trunk with a name that is not UTF-8, between two good
// ones. proto.Unmarshal refuses the whole answer; DecodeFindBy keeps the good two.
func TestDecodeFindBySkipsBadItem(t *testing.T) {
	raw := answer(marshal(t, goodTrunk("t1")), badNameItem("t-bad"), marshal(t, goodTrunk("t3")))
	if err := proto.Unmarshal(raw, new(trunksv2beta1.FindByResponse)); err == nil {
		t.Fatal("proto.Unmarshal read the answer: the test proves nothing")
	}
	items, skipped, err := DecodeFindBy(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || !proto.Equal(items[0], goodTrunk("t1")) || !proto.Equal(items[1], goodTrunk("t3")) {
		t.Errorf("items = %v", items)
	}
	if len(skipped) != 1 || skipped[0].Index != 1 || skipped[0].Ref != "t-bad" || !strings.Contains(skipped[0].Err.Error(), "UTF-8") {
		t.Fatalf("skipped = %+v", skipped)
	}
	if s := skipped[0].String(); !strings.Contains(s, "items[1] (ref t-bad): ") {
		t.Errorf("String() = %q", s)
	}
}

func TestDecodeFindBy(t *testing.T) {
	good := [][]byte{marshal(t, goodTrunk("t1")), marshal(t, goodTrunk("t2"))}
	// A nested message (uris) whose length runs past the item's end.
	brokenURI := append(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "t-uri"),
		protowire.AppendTag(nil, 11, protowire.BytesType)...)
	brokenURI = append(brokenURI, 0x05, 0x0a)
	// Two refs, the last one wins (as in proto); the second is not clean.
	twoRefs := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "first")
	twoRefs = protowire.AppendString(protowire.AppendTag(twoRefs, 1, protowire.BytesType), "t\r\nX")
	twoRefs = protowire.AppendBytes(protowire.AppendTag(twoRefs, 3, protowire.BytesType), []byte{0xff})
	// A ref that is itself not UTF-8.
	badRef := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("t\xff"))

	tests := []struct {
		name        string
		raw         []byte
		wantRefs    []string
		wantSkipped []SkippedItem // Err not compared
		wantErr     bool
	}{
		{name: "empty answer", raw: nil},
		{name: "all good", raw: answer(good...), wantRefs: []string{"t1", "t2"}},
		{name: "broken nested message", raw: answer(good[0], brokenURI, good[1]), wantRefs: []string{"t1", "t2"},
			wantSkipped: []SkippedItem{{Index: 1, Ref: "t-uri"}}},
		{name: "unclean last ref", raw: answer(twoRefs), wantSkipped: []SkippedItem{{Index: 0}}},
		{name: "ref not UTF-8", raw: answer(badRef, good[0]), wantRefs: []string{"t1"}, wantSkipped: []SkippedItem{{Index: 0}}},
		{name: "every item bad", raw: answer(badNameItem("a"), badNameItem("b")),
			wantSkipped: []SkippedItem{{Index: 0, Ref: "a"}, {Index: 1, Ref: "b"}}},
		{name: "unknown fields and items of another wire type are ignored, as proto does",
			raw: append(append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), answer(good[0])...),
				protowire.AppendString(protowire.AppendTag(nil, 9, protowire.BytesType), "x")...),
			wantRefs: []string{"t1"}},
		{name: "truncated answer", raw: answer(good...)[:len(answer(good...))-3], wantErr: true},
		{name: "bad tag", raw: append(answer(good[0]), 0x00), wantErr: true},
		{name: "length past the end", raw: append(answer(good[0]), 0x0a, 0x7f, 0x01), wantErr: true},
		{name: "unmatched end group", raw: append(answer(good[0]), protowire.AppendTag(nil, 2, protowire.EndGroupType)...), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, skipped, err := DecodeFindBy(tt.raw)
			if tt.wantErr {
				if err == nil || items != nil || skipped != nil {
					t.Fatalf("DecodeFindBy = %v, %v, %v; want only an error", items, skipped, err)
				}
				if proto.Unmarshal(tt.raw, new(trunksv2beta1.FindByResponse)) == nil {
					t.Error("proto.Unmarshal reads what DecodeFindBy calls broken")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, it := range items {
				refs = append(refs, it.GetRef())
			}
			if fmt.Sprint(refs) != fmt.Sprint(tt.wantRefs) {
				t.Errorf("refs = %q, want %q", refs, tt.wantRefs)
			}
			if len(skipped) != len(tt.wantSkipped) {
				t.Fatalf("skipped = %+v, want %+v", skipped, tt.wantSkipped)
			}
			for i, s := range skipped {
				if s.Index != tt.wantSkipped[i].Index || s.Ref != tt.wantSkipped[i].Ref || s.Err == nil {
					t.Errorf("skipped[%d] = %+v, want %+v", i, s, tt.wantSkipped[i])
				}
			}
			if len(skipped) == 0 {
				var resp trunksv2beta1.FindByResponse
				if err := proto.Unmarshal(tt.raw, &resp); err != nil {
					t.Fatal(err)
				}
				if len(resp.GetItems()) != len(items) {
					t.Fatalf("proto.Unmarshal gives %d items, DecodeFindBy %d", len(resp.GetItems()), len(items))
				}
				for i := range items {
					if !proto.Equal(items[i], resp.GetItems()[i]) {
						t.Errorf("item %d differs from proto.Unmarshal's", i)
					}
				}
			}
		})
	}
}

// rawServer answers Trunks/FindBy with fixed wire bytes, as a server that is not Go can:
// Go's proto would refuse to marshal a name that is not UTF-8.
type rawServerCodec struct{}

type rawBytes []byte

func (rawServerCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case rawBytes:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return nil, fmt.Errorf("cannot marshal %T", v)
}

func (rawServerCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data.Materialize(), m)
}

func (rawServerCodec) Name() string { return "proto" }

func serveRaw(t *testing.T, answer []byte) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(rawServerCodec{}))
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: trunksv2beta1.Trunks_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "FindBy", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req trunksv2beta1.FindByRequest
			if err := dec(&req); err != nil {
				return nil, err
			}
			if req.GetFieldName() != "sendRegister" || req.GetFieldValue() != "true" {
				return nil, errors.New("unexpected query")
			}
			return rawBytes(answer), nil
		}}},
	}, struct{}{})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// FindRegisteringRaw then DecodeFindBy keeps the good trunks of an answer holding one
// that cannot be decoded, and names the one left out.
func TestFindRegisteringSkipsBadItem(t *testing.T) {
	raw := answer(marshal(t, goodTrunk("t1")), badNameItem("t-bad"), marshal(t, goodTrunk("t3")))
	api, err := DialAPI(serveRaw(t, raw), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ctx := context.Background()

	b, err := api.FindRegisteringRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items, skipped, err := DecodeFindBy(b)
	if err != nil || len(items) != 2 || items[0].GetRef() != "t1" || items[1].GetRef() != "t3" || len(skipped) != 1 || skipped[0].Ref != "t-bad" {
		t.Fatalf("DecodeFindBy(raw) = %v, %+v, %v", items, skipped, err)
	}
}

// FuzzDecodeFindBy: DecodeFindBy never panics; every item it returns re-marshals and
// reads back the same; an answer proto.Unmarshal reads gives the same items and skips
// none; an answer DecodeFindBy calls broken, proto.Unmarshal refuses too. The seed
// corpus is in testdata/fuzz/FuzzDecodeFindBy.
func FuzzDecodeFindBy(f *testing.F) {
	f.Add(answer(marshal(f, goodTrunk("t1")), badNameItem("t-bad"), marshal(f, goodTrunk("t3"))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		items, skipped, err := DecodeFindBy(raw)
		var resp trunksv2beta1.FindByResponse
		uerr := proto.Unmarshal(raw, &resp)
		if err != nil {
			if items != nil || skipped != nil {
				t.Fatalf("items %v, skipped %v returned with error %v", items, skipped, err)
			}
			if uerr == nil {
				t.Fatalf("DecodeFindBy: %v; proto.Unmarshal reads it", err)
			}
			return
		}
		for i, it := range items {
			b, merr := proto.Marshal(it)
			if merr != nil {
				t.Fatalf("item %d does not re-marshal: %v", i, merr)
			}
			back := new(trunksv2beta1.Trunk)
			if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, it) {
				t.Fatalf("item %d does not read back: %v", i, err)
			}
		}
		last := -1
		for _, s := range skipped {
			if s.Index <= last || s.Err == nil || cleanRef(s.Ref) != nil || strings.Trim(s.Ref, " ") != s.Ref {
				t.Fatalf("skipped %+v after index %d", s, last)
			}
			last = s.Index
		}
		if uerr == nil {
			if len(skipped) != 0 || len(items) != len(resp.GetItems()) {
				t.Fatalf("proto.Unmarshal reads %d items, DecodeFindBy %d and skips %d", len(resp.GetItems()), len(items), len(skipped))
			}
			for i := range items {
				if !proto.Equal(items[i], resp.GetItems()[i]) {
					t.Fatalf("item %d differs from proto.Unmarshal's", i)
				}
			}
		} else if len(skipped) == 0 {
			t.Fatalf("proto.Unmarshal fails (%v) but DecodeFindBy skips nothing", uerr)
		}
		checkEachFindBy(t, raw, items, skipped)
	})
}

// checkEachFindBy: EachFindBy (leanTrunks) hands over the items DecodeFindBy answers
// (without the fields it leaves out) and skips the same ones.
func checkEachFindBy(t *testing.T, raw []byte, items []*trunksv2beta1.Trunk, skipped []SkippedItem) {
	t.Helper()
	var got []*trunksv2beta1.Trunk
	skipped2, err := EachFindBy(raw, func(int) {}, func(it *trunksv2beta1.Trunk) {
		got = append(got, proto.Clone(it).(*trunksv2beta1.Trunk))
	})
	if err != nil {
		return // DecodeFindBy failed the same way (checked above)
	}
	if len(got) != len(items) || len(skipped2) != len(skipped) {
		t.Fatalf("EachFindBy: %d items, %d skipped; DecodeFindBy %d, %d", len(got), len(skipped2), len(items), len(skipped))
	}
	for i, it := range items {
		want := leanView(proto.Clone(it).(*trunksv2beta1.Trunk))
		if !proto.Equal(got[i], want) {
			t.Fatalf("EachFindBy item %d:\n%v\nDecodeFindBy's:\n%v", i, got[i], want)
		}
	}
	for i := range skipped {
		if skipped[i].Index != skipped2[i].Index || skipped[i].Ref != skipped2[i].Ref || skipped[i].Err.Error() != skipped2[i].Err.Error() {
			t.Fatalf("EachFindBy skipped %v, DecodeFindBy %v", skipped2[i], skipped[i])
		}
	}
}

// BenchmarkDecodeFindBy100k compares DecodeFindBy with proto.Unmarshal of the whole
// answer, for 100,000 trunks.
func BenchmarkDecodeFindBy100k(b *testing.B) {
	items := make([]*trunksv2beta1.Trunk, 100000)
	for i := range items {
		items[i] = goodTrunk(fmt.Sprintf("trunk-%06d", i))
	}
	raw := marshal(b, &trunksv2beta1.FindByResponse{Items: items})
	b.Run("DecodeFindBy", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := DecodeFindBy(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			if err := proto.Unmarshal(raw, new(trunksv2beta1.FindByResponse)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
