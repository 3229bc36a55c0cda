package upstream

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

type bigTrunks struct {
	trunksv2beta1.UnimplementedTrunksServer
	items []*trunksv2beta1.Trunk
	delay time.Duration
}

func (b *bigTrunks) FindBy(ctx context.Context, req *trunksv2beta1.FindByRequest) (*trunksv2beta1.FindByResponse, error) {
	if req.GetFieldName() != "sendRegister" || req.GetFieldValue() != "true" {
		return nil, status.Errorf(codes.InvalidArgument, "unexpected query %s=%s", req.GetFieldName(), req.GetFieldValue())
	}
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &trunksv2beta1.FindByResponse{Items: b.items}, nil
}

func serveTrunks(t *testing.T, srv *bigTrunks) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.MaxSendMsgSize(MaxAPIAnswer))
	trunksv2beta1.RegisterTrunksServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestFindBy100kTrunks: one answer with 100,000 trunks is far above gRPC's default
// 4 MiB receive limit; the API client takes it.
func TestFindBy100kTrunks(t *testing.T) {
	const n = 100000
	items := make([]*trunksv2beta1.Trunk, n)
	for i := range n {
		items[i] = &trunksv2beta1.Trunk{Ref: fmt.Sprintf("trunk-%06d", i), Name: fmt.Sprintf("Trunk number %d", i), SendRegister: true,
			Uris:                []*trunksv2beta1.TrunkURI{{Host: fmt.Sprintf("sip%06d.provider.example.net", i), Port: 5060, Transport: "UDP", User: fmt.Sprintf("user%06d", i), Enabled: true}},
			OutboundCredentials: &credentialsv2beta1.Credentials{Username: fmt.Sprintf("user%06d", i), Password: fmt.Sprintf("password-%06d", i)}}
	}
	if size := proto.Size(&trunksv2beta1.FindByResponse{Items: items}); size <= 4<<20 {
		t.Fatalf("answer is %d bytes: not above the 4 MiB default, the test proves nothing", size)
	}
	api, err := DialAPI(serveTrunks(t, &bigTrunks{items: items}), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	raw, err := api.FindRegisteringRaw(context.Background())
	if err != nil {
		t.Fatalf("FindRegisteringRaw: %v", err)
	}
	got, skipped, err := DecodeFindBy(raw)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("DecodeFindBy: %v (%d skipped)", err, len(skipped))
	}
	if len(got) != n || got[n-1].GetRef() != "trunk-099999" {
		t.Fatalf("got %d trunks", len(got))
	}
	if !proto.Equal(&trunksv2beta1.FindByResponse{Items: got}, &trunksv2beta1.FindByResponse{Items: items}) {
		t.Error("the raw answer does not decode to the trunks served")
	}
}

// TestFindBySumSkipsKnownAnswer: FindRegisteringSum hashes an answer of many frames as
// xxhash.Sum64 of its bytes would, answers its bytes when the sum is not the known one,
// and leaves them out when it is.
func TestFindBySumSkipsKnownAnswer(t *testing.T) {
	items := make([]*trunksv2beta1.Trunk, 5000)
	for i := range items {
		items[i] = goodTrunk(fmt.Sprintf("trunk-%06d", i))
	}
	want := marshal(t, &trunksv2beta1.FindByResponse{Items: items})
	if len(want) <= 64<<10 {
		t.Fatalf("answer is %d bytes: one HTTP/2 frame, the test proves nothing", len(want))
	}
	api, err := DialAPI(serveTrunks(t, &bigTrunks{items: items}), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ctx := context.Background()
	for _, known := range []uint64{0, xxhash.Sum64(want) + 1} {
		raw, sum, err := api.FindRegisteringSum(ctx, known)
		if err != nil {
			t.Fatal(err)
		}
		if sum != xxhash.Sum64(want) || !bytes.Equal(raw, want) {
			t.Fatalf("known %#x: sum %#x and %d bytes, want %#x and the %d bytes served", known, sum, len(raw), xxhash.Sum64(want), len(want))
		}
	}
	raw, sum, err := api.FindRegisteringSum(ctx, xxhash.Sum64(want))
	if err != nil || sum != xxhash.Sum64(want) || raw != nil {
		t.Fatalf("the known answer again: sum %#x, %d bytes, err %v; want %#x and no bytes", sum, len(raw), err, xxhash.Sum64(want))
	}
}

// TestFindByDeadline: a slow API answers DeadlineExceeded within the timeout, and the
// error is transient.
func TestFindByDeadline(t *testing.T) {
	api, err := DialAPI(serveTrunks(t, &bigTrunks{delay: time.Minute}), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	_, err = api.FindRegisteringRaw(context.Background())
	if status.Code(err) != codes.DeadlineExceeded || !Transient(err) {
		t.Fatalf("err %v: want a transient DeadlineExceeded", err)
	}
}
