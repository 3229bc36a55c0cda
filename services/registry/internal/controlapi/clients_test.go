package controlapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
)

// rpc is the RegistrationService as a test sees it, whatever the client and protocol.
type rpc interface {
	List(context.Context, *registryv1.ListRegistrationsRequest) (*registryv1.ListRegistrationsResponse, error)
	Get(context.Context, *registryv1.GetRegistrationRequest) (*registryv1.GetRegistrationResponse, error)
	Force(context.Context, *registryv1.ForceRegisterRequest) (*registryv1.ForceRegisterResponse, error)
	Explain(context.Context, *registryv1.ExplainRegistrationRequest) (*registryv1.ExplainRegistrationResponse, error)
	Watch(context.Context, *registryv1.WatchRegistrationsRequest) (watchStream, error)
}

// watchStream yields the messages of one Watch; io.EOF when the server ended it cleanly.
type watchStream interface {
	Recv() (*registryv1.WatchRegistrationsResponse, error)
}

// transport makes an rpc client for a bearer token ("" sends none).
type transport struct {
	name string
	dial func(t *testing.T, token string) rpc
}

// replies keeps every reply and error message any client saw, to search for secrets.
type replies struct {
	mu   sync.Mutex
	msgs []proto.Message
	errs []string
}

func (r *replies) add(m proto.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m != nil {
		r.msgs = append(r.msgs, m)
	}
	if err != nil {
		r.errs = append(r.errs, err.Error())
	}
}

// transports are the clients every case runs through: connect-go over HTTP/1.1 with the
// Connect protocol (proto and JSON codecs) and gRPC-Web, connect-go with gRPC over h2c,
// and grpc-go over h2c.
func transports(baseURL, addr string, seen *replies) []transport {
	connectDial := func(h2c bool, opts ...connect.ClientOption) func(*testing.T, string) rpc {
		return func(t *testing.T, token string) rpc {
			var p http.Protocols
			if h2c {
				p.SetUnencryptedHTTP2(true)
			} else {
				p.SetHTTP1(true)
			}
			tr := &http.Transport{Protocols: &p}
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: bearerRoundTripper{token: token, next: tr}}
			return &connectRPC{c: registryv1connect.NewRegistrationServiceClient(hc, baseURL, opts...), seen: seen}
		}
	}
	return []transport{
		{name: "connect-proto-http1", dial: connectDial(false)},
		{name: "connect-json-http1", dial: connectDial(false, connect.WithProtoJSON())},
		{name: "grpcweb-http1", dial: connectDial(false, connect.WithGRPCWeb())},
		{name: "connect-grpc-h2c", dial: connectDial(true, connect.WithGRPC())},
		{name: "grpc-go-h2c", dial: func(t *testing.T, token string) rpc {
			conn := dialGRPC(t, addr, token)
			return &grpcRPC{c: registryv1.NewRegistrationServiceClient(conn), seen: seen}
		}},
	}
}

func dialGRPC(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type bearerRoundTripper struct {
	token string
	next  http.RoundTripper
}

func (b bearerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// bearerCreds sends a bearer token over plain text (tests only).
type bearerCreds string

func (c bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(c)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

// codeOf returns the code of a connect-go or grpc-go error (0 for nil).
func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	if s, ok := status.FromError(err); ok {
		return connect.Code(s.Code())
	}
	return connect.CodeUnknown
}

// messageOf returns the error's message without the code prefix.
func messageOf(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

type connectRPC struct {
	c    registryv1connect.RegistrationServiceClient
	seen *replies
}

func unary[Req, Res any](ctx context.Context, seen *replies, call func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	resp, err := call(ctx, connect.NewRequest(req))
	if err != nil {
		seen.add(nil, err)
		return nil, err
	}
	seen.add(any(resp.Msg).(proto.Message), nil)
	return resp.Msg, nil
}

func (c *connectRPC) List(ctx context.Context, r *registryv1.ListRegistrationsRequest) (*registryv1.ListRegistrationsResponse, error) {
	return unary(ctx, c.seen, c.c.ListRegistrations, r)
}
func (c *connectRPC) Get(ctx context.Context, r *registryv1.GetRegistrationRequest) (*registryv1.GetRegistrationResponse, error) {
	return unary(ctx, c.seen, c.c.GetRegistration, r)
}
func (c *connectRPC) Force(ctx context.Context, r *registryv1.ForceRegisterRequest) (*registryv1.ForceRegisterResponse, error) {
	return unary(ctx, c.seen, c.c.ForceRegister, r)
}
func (c *connectRPC) Explain(ctx context.Context, r *registryv1.ExplainRegistrationRequest) (*registryv1.ExplainRegistrationResponse, error) {
	return unary(ctx, c.seen, c.c.ExplainRegistration, r)
}
func (c *connectRPC) Watch(ctx context.Context, r *registryv1.WatchRegistrationsRequest) (watchStream, error) {
	s, err := c.c.WatchRegistrations(ctx, connect.NewRequest(r))
	if err != nil {
		c.seen.add(nil, err)
		return nil, err
	}
	return &connectWatch{s: s, seen: c.seen}, nil
}

type connectWatch struct {
	s    *connect.ServerStreamForClient[registryv1.WatchRegistrationsResponse]
	seen *replies
}

func (w *connectWatch) Recv() (*registryv1.WatchRegistrationsResponse, error) {
	if w.s.Receive() {
		w.seen.add(w.s.Msg(), nil)
		return w.s.Msg(), nil
	}
	if err := w.s.Err(); err != nil {
		w.seen.add(nil, err)
		return nil, err
	}
	return nil, io.EOF
}

type grpcRPC struct {
	c    registryv1.RegistrationServiceClient
	seen *replies
}

func record[Res proto.Message](seen *replies, res Res, err error) (Res, error) {
	if err != nil {
		seen.add(nil, err)
		var zero Res
		return zero, err
	}
	seen.add(res, nil)
	return res, nil
}

func (c *grpcRPC) List(ctx context.Context, r *registryv1.ListRegistrationsRequest) (*registryv1.ListRegistrationsResponse, error) {
	res, err := c.c.ListRegistrations(ctx, r)
	return record(c.seen, res, err)
}
func (c *grpcRPC) Get(ctx context.Context, r *registryv1.GetRegistrationRequest) (*registryv1.GetRegistrationResponse, error) {
	res, err := c.c.GetRegistration(ctx, r)
	return record(c.seen, res, err)
}
func (c *grpcRPC) Force(ctx context.Context, r *registryv1.ForceRegisterRequest) (*registryv1.ForceRegisterResponse, error) {
	res, err := c.c.ForceRegister(ctx, r)
	return record(c.seen, res, err)
}
func (c *grpcRPC) Explain(ctx context.Context, r *registryv1.ExplainRegistrationRequest) (*registryv1.ExplainRegistrationResponse, error) {
	res, err := c.c.ExplainRegistration(ctx, r)
	return record(c.seen, res, err)
}
func (c *grpcRPC) Watch(ctx context.Context, r *registryv1.WatchRegistrationsRequest) (watchStream, error) {
	s, err := c.c.WatchRegistrations(ctx, r)
	if err != nil {
		c.seen.add(nil, err)
		return nil, err
	}
	return &grpcWatch{s: s, seen: c.seen}, nil
}

type grpcWatch struct {
	s    grpc.ServerStreamingClient[registryv1.WatchRegistrationsResponse]
	seen *replies
}

func (w *grpcWatch) Recv() (*registryv1.WatchRegistrationsResponse, error) {
	m, err := w.s.Recv()
	if err != nil && !errors.Is(err, io.EOF) {
		w.seen.add(nil, err)
		return nil, err
	}
	if m != nil {
		w.seen.add(m, nil)
	}
	return m, err
}
