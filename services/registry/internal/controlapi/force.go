package controlapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
)

// forceAllParallel bounds the Force calls in flight for ForceRegister{all: true}; the
// engine's own limits (in-flight cap, rate) still apply behind it.
const forceAllParallel = 16

// ForceRegister registers one trunk (trunk_ref) or every wanted trunk (all) now. With
// several replicas, a trunk owned by another replica is registered by that one (the
// call is forwarded to it).
//
// One trunk: the outcome comes back as the single result; an engine error becomes the
// call's error: unknown trunk → NotFound, registry stopping → Unavailable, no outcome
// within ForceTimeout → DeadlineExceeded (the REGISTER stays queued and still happens),
// caller gone → Canceled, anything else (a trunk whose API data cannot be used, say) →
// Internal with the engine's message.
//
// All: every trunk of Engine.Refs, at most forceAllParallel at a time, all within one
// ForceTimeout; with several replicas, each other live replica does the same for its
// own trunks at the same time (the call is forwarded to each), and the results are
// merged, ordered by trunk ref. Each result carries the trunk's registration (its
// current one when the forced REGISTER failed) and, on failure, the message the
// one-trunk call would have returned. The call itself fails only with Unavailable when
// the registry is stopping, or with the caller's own cancellation or deadline.
func (s *service) ForceRegister(ctx context.Context, req *connect.Request[registryv1.ForceRegisterRequest]) (*connect.Response[registryv1.ForceRegisterResponse], error) {
	ref, all := req.Msg.GetTrunkRef(), req.Msg.GetAll()
	switch {
	case ref != "" && all:
		return nil, invalidArgument("set either trunk_ref or all, not both")
	case ref == "" && !all:
		return nil, invalidArgument("set trunk_ref or all")
	}
	fctx, cancel := context.WithTimeout(ctx, s.forceTimeout)
	defer cancel()

	if !all {
		rec, err := s.engine.Force(fctx, ref)
		var notOwner *reconcile.NotOwnerError
		if errors.As(err, &notOwner) {
			return s.forward(fctx, req, notOwner)
		}
		if err != nil {
			return nil, s.forceError(ref, err)
		}
		return connect.NewResponse(&registryv1.ForceRegisterResponse{
			Results: []*registryv1.ForceRegisterResult{{TrunkRef: ref, Registration: toProto(rec)}},
		}), nil
	}

	var fromPeers []*registryv1.ForceRegisterResult
	peersDone := make(chan struct{})
	if peers := s.engine.Peers(); len(peers) > 0 && req.Header().Get(forwardedHeader) == "" {
		go func() {
			defer close(peersDone)
			fromPeers = s.forceAllPeers(fctx, req.Header(), peers)
		}()
	} else {
		close(peersDone)
	}
	refs := s.engine.Refs()
	slices.Sort(refs)
	results := make([]*registryv1.ForceRegisterResult, len(refs))
	// At most forceAllParallel Force calls at once; g.Go waits for a free slot, and a
	// trunk whose slot frees after the deadline is reported as not forced.
	var (
		g        errgroup.Group
		stopping atomic.Bool
	)
	g.SetLimit(forceAllParallel)
	for i, ref := range refs {
		g.Go(func() error {
			if fctx.Err() != nil {
				results[i] = s.notForced(ref)
				return nil
			}
			rec, err := s.engine.Force(fctx, ref)
			if errors.Is(err, reconcile.ErrStopping) {
				stopping.Store(true)
			}
			results[i] = s.forceResult(ref, rec, err)
			return nil
		})
	}
	_ = g.Wait() // the calls report through results, never through the group
	<-peersDone
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	if len(fromPeers) > 0 {
		results = mergeResults(results, fromPeers)
	}
	if stopping.Load() {
		return nil, connect.NewError(connect.CodeUnavailable, reconcile.ErrStopping)
	}
	return connect.NewResponse(&registryv1.ForceRegisterResponse{Results: results}), nil
}

// notForced is the entry of a trunk whose turn came after the deadline: it was not
// forced at all.
func (s *service) notForced(ref string) *registryv1.ForceRegisterResult {
	res := &registryv1.ForceRegisterResult{TrunkRef: ref, Error: "not forced: the deadline passed before its turn"}
	if rec, ok := s.engine.Record(ref); ok {
		res.Registration = toProto(rec)
	}
	return res
}

// forceResult is one trunk's entry of ForceRegister{all: true}.
func (s *service) forceResult(ref string, rec registration.Record, err error) *registryv1.ForceRegisterResult {
	res := &registryv1.ForceRegisterResult{TrunkRef: ref}
	if err == nil {
		res.Registration = toProto(rec)
		return res
	}
	res.Error = s.forceError(ref, err).Message()
	if rec.TrunkRef == "" {
		rec, _ = s.engine.Record(ref)
	}
	if rec.TrunkRef != "" {
		res.Registration = toProto(rec)
	}
	return res
}

// forceError maps an error of Engine.Force to the connect error the caller sees.
func (s *service) forceError(ref string, err error) *connect.Error {
	switch {
	case errors.Is(err, reconcile.ErrUnknownTrunk):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("trunk %q not found, or no longer marked sendRegister", ref))
	case errors.Is(err, reconcile.ErrStopping):
		return connect.NewError(connect.CodeUnavailable, reconcile.ErrStopping)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded,
			fmt.Errorf("trunk %q: no outcome before the deadline; the REGISTER stays queued", ref))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("trunk %q: canceled", ref))
	}
	s.log.Warn("forced registration failed", "trunk", ref, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("force register %q: %w", ref, err))
}
