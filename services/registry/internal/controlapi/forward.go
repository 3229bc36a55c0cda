package controlapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/reconcile"
)

// forwardedHeader marks a ForceRegister forwarded to the trunk's owner: it is never
// forwarded twice.
const forwardedHeader = "X-Sipreg-Forwarded"

// peerClient returns a client of another replica's control API and the headers of a
// call forwarded there: the caller's credentials, and the mark that keeps it from being
// forwarded again.
func (s *service) peerClient(h http.Header, advertise string) (registryv1connect.RegistrationServiceClient, http.Header) {
	out := http.Header{}
	if a := h.Get("Authorization"); a != "" {
		out.Set("Authorization", a)
	}
	out.Set(forwardedHeader, "1")
	return registryv1connect.NewRegistrationServiceClient(s.forwardClient, "http://"+advertise), out
}

// ownerClient returns a client of the replica that owns a trunk, and the headers to
// send there; an Unavailable error when the call must not be forwarded (already
// forwarded once, or the owner has no address).
func (s *service) ownerClient(h http.Header, no *reconcile.NotOwnerError) (registryv1connect.RegistrationServiceClient, http.Header, error) {
	if h.Get(forwardedHeader) != "" || no.Advertise == "" {
		return nil, nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("trunk %s is owned by replica %s, which cannot be reached from here", no.Ref, no.Owner))
	}
	client, out := s.peerClient(h, no.Advertise)
	return client, out, nil
}

// forward runs a one-trunk ForceRegister on the replica that owns the trunk, with the
// caller's credentials, so it is never run twice.
func (s *service) forward(ctx context.Context, req *connect.Request[registryv1.ForceRegisterRequest], no *reconcile.NotOwnerError) (*connect.Response[registryv1.ForceRegisterResponse], error) {
	client, h, err := s.ownerClient(req.Header(), no)
	if err != nil {
		return nil, err
	}
	fwd := connect.NewRequest(req.Msg)
	maps.Copy(fwd.Header(), h)
	resp, err := client.ForceRegister(ctx, fwd)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp.Msg), nil
}

// forceAllPeers runs ForceRegister{all} on every other live replica (each for the
// trunks it owns) and returns their results. The trunks of a replica that cannot be
// reached get a result that says so, with their registration as this replica sees it.
func (s *service) forceAllPeers(ctx context.Context, h http.Header, peers []ownership.Peer) []*registryv1.ForceRegisterResult {
	answers := make([][]*registryv1.ForceRegisterResult, len(peers))
	failed := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			if p.Advertise == "" {
				failed[i] = errors.New("it has no control API address (spec.advertiseAddr)")
				return
			}
			client, out := s.peerClient(h, p.Advertise)
			fwd := connect.NewRequest(&registryv1.ForceRegisterRequest{All: true})
			maps.Copy(fwd.Header(), out)
			resp, err := client.ForceRegister(ctx, fwd)
			if err != nil {
				failed[i] = err
				return
			}
			answers[i] = resp.Msg.GetResults()
		})
	}
	wg.Wait()
	var out []*registryv1.ForceRegisterResult
	for _, a := range answers {
		out = append(out, a...)
	}
	// The unreachable replicas' trunks, from one reading of every registration.
	why := map[string]error{}
	for i, err := range failed {
		if err != nil {
			s.log.Warn("forced registration of another replica's trunks failed", "replica", peers[i].ID, "err", err)
			why[peers[i].ID] = err
		}
	}
	if len(why) == 0 {
		return out
	}
	for _, rec := range s.engine.Records() {
		if err, ok := why[rec.Owner]; ok {
			out = append(out, &registryv1.ForceRegisterResult{
				TrunkRef: rec.TrunkRef, Registration: toProto(rec),
				Error: fmt.Sprintf("not forced: its owner, replica %s, could not be reached: %v", rec.Owner, err),
			})
		}
	}
	return out
}

// mergeResults orders both lists' results by trunk ref, one per trunk: a trunk that
// moved between replicas during the call may be in both, and the one without an error
// is kept.
func mergeResults(a, b []*registryv1.ForceRegisterResult) []*registryv1.ForceRegisterResult {
	out := append(a, b...)
	slices.SortStableFunc(out, func(x, y *registryv1.ForceRegisterResult) int {
		if c := strings.Compare(x.GetTrunkRef(), y.GetTrunkRef()); c != 0 {
			return c
		}
		return strings.Compare(x.GetError(), y.GetError()) // "" (no error) first
	})
	return slices.CompactFunc(out, func(x, y *registryv1.ForceRegisterResult) bool {
		return x.GetTrunkRef() == y.GetTrunkRef()
	})
}
