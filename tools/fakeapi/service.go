package fakeapi

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// trunksService is the gRPC face of a Server.
type trunksService struct {
	trunksv2beta1.UnimplementedTrunksServer
	s *Server
}

func (t *trunksService) FindBy(ctx context.Context, req *trunksv2beta1.FindByRequest) (*trunksv2beta1.FindByResponse, error) {
	if err := t.s.enter(ctx, "FindBy"); err != nil {
		return nil, err
	}
	if req.GetFieldName() != "sendRegister" {
		return nil, statusErrorf(codes.InvalidArgument, "fakeapi: FindBy supports only field_name %q, not %q", "sendRegister", req.GetFieldName())
	}
	value := req.GetFieldValue()
	if value != "true" && value != "false" {
		return nil, statusErrorf(codes.InvalidArgument, "fakeapi: sendRegister must be %q or %q, not %q", "true", "false", value)
	}
	want := value == "true"
	trunks, err := t.s.refresh()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	items := make([]*trunksv2beta1.Trunk, 0, len(trunks))
	for _, tr := range trunks {
		if tr.GetSendRegister() == want {
			items = append(items, tr)
		}
	}
	t.s.log.Debug("FindBy", "field", req.GetFieldName(), "value", req.GetFieldValue(), "items", len(items))
	return &trunksv2beta1.FindByResponse{Items: items}, nil
}

func (t *trunksService) List(ctx context.Context, req *trunksv2beta1.ListTrunkRequest) (*trunksv2beta1.ListTrunksResponse, error) {
	if err := t.s.enter(ctx, "List"); err != nil {
		return nil, err
	}
	trunks, err := t.s.refresh()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		start, err = strconv.Atoi(tok)
		if err != nil || start < 0 || start > len(trunks) {
			return nil, statusErrorf(codes.InvalidArgument, "fakeapi: bad page_token %q", tok)
		}
	}
	end := len(trunks)
	if size := int(req.GetPageSize()); size > 0 && start+size < end {
		end = start + size
	}
	resp := &trunksv2beta1.ListTrunksResponse{Items: trunks[start:end:end]}
	if end < len(trunks) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (t *trunksService) Get(ctx context.Context, req *trunksv2beta1.GetTrunkRequest) (*trunksv2beta1.Trunk, error) {
	if err := t.s.enter(ctx, "Get"); err != nil {
		return nil, err
	}
	trunks, err := t.s.refresh()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, tr := range trunks {
		if tr.GetRef() == req.GetRef() {
			return tr, nil
		}
	}
	return nil, statusErrorf(codes.NotFound, "fakeapi: trunk %q not found", req.GetRef())
}

func (t *trunksService) Create(ctx context.Context, _ *trunksv2beta1.CreateTrunkRequest) (*trunksv2beta1.Trunk, error) {
	if err := t.s.enter(ctx, "Create"); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "fakeapi: Create is not implemented")
}

func (t *trunksService) Update(ctx context.Context, _ *trunksv2beta1.UpdateTrunkRequest) (*trunksv2beta1.Trunk, error) {
	if err := t.s.enter(ctx, "Update"); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "fakeapi: Update is not implemented")
}

func (t *trunksService) Delete(ctx context.Context, _ *trunksv2beta1.DeleteTrunkRequest) (*emptypb.Empty, error) {
	if err := t.s.enter(ctx, "Delete"); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "fakeapi: Delete is not implemented")
}

func statusErrorf(code codes.Code, format string, args ...any) error {
	return status.Error(code, fmt.Sprintf(format, args...))
}

// ctxError is the status of a call whose context ended: DeadlineExceeded or Canceled.
func ctxError(ctx context.Context) error {
	return status.FromContextError(ctx.Err()).Err()
}
