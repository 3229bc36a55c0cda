package controlapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipauth"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// service implements the RegistrationService over an Engine.
type service struct {
	engine       Engine
	log          *slog.Logger
	forceTimeout time.Duration
	// forwardClient reaches the other replicas' control APIs.
	forwardClient connect.HTTPClient
	// watchers counts the open WatchRegistrations streams, up to its max.
	watchers streamLimit
	// dropGrace is Options.WatchDropGrace.
	dropGrace time.Duration
	obs       Observer
}

var _ registryv1connect.RegistrationServiceHandler = (*service)(nil)

func (s *service) ListRegistrations(_ context.Context, req *connect.Request[registryv1.ListRegistrationsRequest]) (*connect.Response[registryv1.ListRegistrationsResponse], error) {
	states, err := parseStates("states", req.Msg.GetStates())
	if err != nil {
		return nil, err
	}
	size := int(req.Msg.GetPageSize())
	switch {
	case size < 0:
		return nil, invalidArgument("page_size must not be negative (got %d)", size)
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after, err := decodePageToken(req.Msg.GetPageToken())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}

	// Keyset paging: the registrations after the token's ref, in trunk_ref order; the
	// engine picks the page without sorting (or copying) the rest.
	page, more := s.engine.Page(after, states.match, size)
	out := &registryv1.ListRegistrationsResponse{}
	if more && len(page) > 0 {
		out.NextPageToken = encodePageToken(page[len(page)-1].TrunkRef)
	}
	out.Registrations = make([]*registryv1.Registration, 0, len(page))
	for _, r := range page {
		out.Registrations = append(out.Registrations, toProto(r))
	}
	return connect.NewResponse(out), nil
}

func (s *service) GetRegistration(_ context.Context, req *connect.Request[registryv1.GetRegistrationRequest]) (*connect.Response[registryv1.GetRegistrationResponse], error) {
	ref := req.Msg.GetTrunkRef()
	if ref == "" {
		return nil, invalidArgument("trunk_ref is required")
	}
	rec, ok := s.engine.Record(ref)
	if !ok {
		return nil, notFound(ref)
	}
	return connect.NewResponse(&registryv1.GetRegistrationResponse{Registration: toProto(rec)}), nil
}

// ExplainRegistration returns the registration, the REGISTER it would send next and why.
// The engine redacts the REGISTER already; it is redacted once more here, on a copy, so
// no credential can leave through this edge even if that ever changes.
func (s *service) ExplainRegistration(ctx context.Context, req *connect.Request[registryv1.ExplainRegistrationRequest]) (*connect.Response[registryv1.ExplainRegistrationResponse], error) {
	ref := req.Msg.GetTrunkRef()
	if ref == "" {
		return nil, invalidArgument("trunk_ref is required")
	}
	x, err := s.engine.Explain(ref)
	var notOwner *reconcile.NotOwnerError
	if errors.As(err, &notOwner) {
		// Only the owner knows what it will send next.
		client, h, ferr := s.ownerClient(req.Header(), notOwner)
		if ferr != nil {
			return nil, ferr
		}
		fwd := connect.NewRequest(req.Msg)
		maps.Copy(fwd.Header(), h)
		resp, ferr := client.ExplainRegistration(ctx, fwd)
		if ferr != nil {
			return nil, ferr
		}
		return connect.NewResponse(resp.Msg), nil
	}
	if err != nil {
		if errors.Is(err, reconcile.ErrUnknownTrunk) {
			return nil, notFound(ref)
		}
		s.log.Warn("explain failed", "trunk", ref, "err", err)
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("explain %q: %w", ref, err))
	}
	return connect.NewResponse(&registryv1.ExplainRegistrationResponse{
		Registration: toProto(x.Record),
		Request:      redactRequest(x.Request),
		Reason:       x.Reason,
	}), nil
}

// redactRequest returns a copy of req whose SIP message has every credential redacted.
func redactRequest(req *requesterv2beta1.SendMessageRequest) *requesterv2beta1.SendMessageRequest {
	if req == nil {
		return nil
	}
	out := proto.CloneOf(req)
	out.Message = sipauth.Redact(req.GetMessage())
	return out
}

func sortByRef(recs []registration.Record) {
	slices.SortFunc(recs, func(a, b registration.Record) int { return cmp.Compare(a.TrunkRef, b.TrunkRef) })
}

// contextError is the caller's own cancellation or deadline as a connect error.
func contextError(err error) *connect.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeCanceled, err)
}

func notFound(ref string) *connect.Error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("trunk %q not found", ref))
}
