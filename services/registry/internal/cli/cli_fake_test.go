package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
)

// fakeControl is a RegistrationService serving fixed registrations, a page of
// pageSize at a time, and recording what it was asked.
type fakeControl struct {
	registryv1connect.UnimplementedRegistrationServiceHandler
	regs     []*registryv1.Registration
	pageSize int
	token    string // required bearer token, when set
	explain  *registryv1.ExplainRegistrationResponse
	force    []*registryv1.ForceRegisterResult
	// events are sent by WatchRegistrations after the snapshot; the stream ends
	// with watchEnd when the channel is closed.
	events   chan *registryv1.WatchRegistrationsResponse
	watchEnd error
	block    bool // GetRegistration waits for the caller to give up

	mu       sync.Mutex
	calls    []string
	tokens   []string
	lastList *registryv1.ListRegistrationsRequest
	lastWat  *registryv1.WatchRegistrationsRequest
}

func (f *fakeControl) record(name string, h http.Header) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.tokens = append(f.tokens, h.Get("Authorization"))
	if f.token != "" && h.Get("Authorization") != "Bearer "+f.token {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing or invalid bearer token"))
	}
	return nil
}

func (f *fakeControl) ListRegistrations(_ context.Context, req *connect.Request[registryv1.ListRegistrationsRequest]) (*connect.Response[registryv1.ListRegistrationsResponse], error) {
	if err := f.record("list", req.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.lastList = req.Msg
	f.mu.Unlock()
	var match []*registryv1.Registration
	for _, r := range f.regs {
		if r.GetTrunkRef() > req.Msg.GetPageToken() && (len(req.Msg.GetStates()) == 0 || slices.Contains(req.Msg.GetStates(), r.GetState())) {
			match = append(match, r)
		}
	}
	sortByRef(match)
	out := &registryv1.ListRegistrationsResponse{Registrations: match}
	if f.pageSize > 0 && len(match) > f.pageSize {
		out.Registrations = match[:f.pageSize]
		out.NextPageToken = match[f.pageSize-1].GetTrunkRef()
	}
	return connect.NewResponse(out), nil
}

func (f *fakeControl) GetRegistration(ctx context.Context, req *connect.Request[registryv1.GetRegistrationRequest]) (*connect.Response[registryv1.GetRegistrationResponse], error) {
	if err := f.record("get", req.Header()); err != nil {
		return nil, err
	}
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, r := range f.regs {
		if r.GetTrunkRef() == req.Msg.GetTrunkRef() {
			return connect.NewResponse(&registryv1.GetRegistrationResponse{Registration: r}), nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, errors.New(`trunk "`+req.Msg.GetTrunkRef()+`" not found`))
}

func (f *fakeControl) ExplainRegistration(_ context.Context, req *connect.Request[registryv1.ExplainRegistrationRequest]) (*connect.Response[registryv1.ExplainRegistrationResponse], error) {
	if err := f.record("explain", req.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(f.explain), nil
}

func (f *fakeControl) ForceRegister(_ context.Context, req *connect.Request[registryv1.ForceRegisterRequest]) (*connect.Response[registryv1.ForceRegisterResponse], error) {
	if err := f.record("force", req.Header()); err != nil {
		return nil, err
	}
	if !req.Msg.GetAll() {
		for _, r := range f.force {
			if r.GetTrunkRef() == req.Msg.GetTrunkRef() {
				return connect.NewResponse(&registryv1.ForceRegisterResponse{Results: []*registryv1.ForceRegisterResult{r}}), nil
			}
		}
		return nil, connect.NewError(connect.CodeNotFound, errors.New("not found"))
	}
	return connect.NewResponse(&registryv1.ForceRegisterResponse{Results: f.force}), nil
}

func (f *fakeControl) WatchRegistrations(ctx context.Context, req *connect.Request[registryv1.WatchRegistrationsRequest], stream *connect.ServerStream[registryv1.WatchRegistrationsResponse]) error {
	if err := f.record("watch", req.Header()); err != nil {
		return err
	}
	f.mu.Lock()
	f.lastWat = req.Msg
	f.mu.Unlock()
	snapshot := slices.Clone(f.regs)
	sortByRef(snapshot)
	for _, r := range snapshot {
		if req.Msg.GetTrunkRef() != "" && r.GetTrunkRef() != req.Msg.GetTrunkRef() {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{Registration: r}); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-f.events:
			if !ok {
				return f.watchEnd
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// serveFake serves f over HTTP/1.1 and cleartext HTTP/2 (as the registry does) and
// returns its host:port.
func serveFake(t *testing.T, f *fakeControl) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(registryv1connect.NewRegistrationServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
