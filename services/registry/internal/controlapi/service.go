package controlapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/watch"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// forceAllParallel bounds the Force calls in flight for ForceRegister{all: true}; the
	// engine's own limits (in-flight cap, rate) still apply behind it.
	forceAllParallel = 16
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
	obs      Observer
}

// streamLimit counts open streams up to max. Safe for concurrent use.
type streamLimit struct {
	max  int64
	open atomic.Int64
}

// acquire takes a slot; false when all max are taken.
func (l *streamLimit) acquire() bool {
	for {
		n := l.open.Load()
		if n >= l.max {
			return false
		}
		if l.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a slot taken by acquire.
func (l *streamLimit) release() { l.open.Add(-1) }

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

	// Keyset paging: the entries after the token's ref, in trunk_ref order. Sorting
	// pointers keeps a large registry cheap to page through.
	recs := s.engine.Records()
	page := make([]*registration.Record, 0, len(recs))
	for i := range recs {
		if r := &recs[i]; r.TrunkRef > after && states.match(r.State) {
			page = append(page, r)
		}
	}
	slices.SortFunc(page, func(a, b *registration.Record) int { return strings.Compare(a.TrunkRef, b.TrunkRef) })
	out := &registryv1.ListRegistrationsResponse{}
	if len(page) > size {
		page = page[:size]
		out.NextPageToken = encodePageToken(page[size-1].TrunkRef)
	}
	out.Registrations = make([]*registryv1.Registration, 0, len(page))
	for _, r := range page {
		out.Registrations = append(out.Registrations, toProto(*r))
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

// WatchRegistrations subscribes first, then flushes the response headers, sends the
// snapshot of every matching registration (ordered by trunk_ref) and then each change as
// it happens. A change racing with the snapshot may follow it although the snapshot
// already shows it (the last message per trunk is always current); none is lost. A
// client that has seen the response headers knows the subscription is live. The states
// filter applies to changes into a state; removals of a matching trunk are always sent.
//
// At most Options.MaxWatchStreams streams are open at once: one more fails at once with
// ResourceExhausted. A watcher that falls more than the engine's backlog behind is
// dropped with ResourceExhausted (the engine never waits for it, and never skips a
// change silently): the client reconnects and gets a fresh snapshot. The stream ends
// with the caller's own cancellation or deadline when it goes away, and with
// Unavailable when the registry stops.
func (s *service) WatchRegistrations(ctx context.Context, req *connect.Request[registryv1.WatchRegistrationsRequest], stream *connect.ServerStream[registryv1.WatchRegistrationsResponse]) error {
	states, err := parseStates("states", req.Msg.GetStates())
	if err != nil {
		return err
	}
	if !s.watchers.acquire() {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"too many WatchRegistrations streams (%d); close one, or try again later (spec.maxWatchStreams)", s.watchers.max))
	}
	s.obs.WatchStreams(1)
	defer func() {
		s.watchers.release()
		s.obs.WatchStreams(-1)
	}()
	ref := req.Msg.GetTrunkRef()
	sub := s.engine.Subscribe()
	defer sub.Close()
	if err := stream.Send(nil); err != nil {
		return err
	}

	var snapshot []registration.Record
	if ref != "" {
		if rec, ok := s.engine.Record(ref); ok {
			snapshot = append(snapshot, rec)
		}
	} else {
		snapshot = s.engine.Records()
		sortByRef(snapshot)
	}
	for _, rec := range snapshot {
		if !states.match(rec.State) {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{Registration: toProto(rec)}); err != nil {
			return err
		}
	}
	snapshot = nil

	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return watchEnd(ctx, err)
		}
		if ref != "" && ev.Record.TrunkRef != ref {
			continue
		}
		if !ev.Removed && !states.match(ev.Record.State) {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{
			Registration: toProto(ev.Record), Removed: ev.Removed,
		}); err != nil {
			return err
		}
	}
}

// watchEnd is how a WatchRegistrations stream ends when its subscription does.
func watchEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		// The caller's deadline or cancellation ends the stream with that status
		// (DEADLINE_EXCEEDED or CANCELED), never as a clean end: a client must not read
		// a cut stream as "nothing more will change".
		return ctx.Err()
	case errors.Is(err, watch.ErrWatcherTooSlow):
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"this stream fell too far behind the changes and was dropped (%w); reconnect: a new stream starts with a fresh snapshot", err))
	case errors.Is(err, reconcile.ErrStopping):
		return connect.NewError(connect.CodeUnavailable, errors.New("registry is shutting down; watch again"))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("the change stream ended (%w); watch again", err))
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
