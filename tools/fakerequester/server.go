package fakerequester

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/grpcserve"
)

// Options configures a Server. The zero value answers ok to everything and records
// in memory.
type Options struct {
	// Script chooses the behaviour of each request.
	Script Script
	// RecordFile, when set, gets one JSON line per call (see the package doc).
	RecordFile string
	// NoRecord keeps no requests in memory (Requests and Wait see none); Count and
	// MaxInFlightPerKey still work. For benchmarks.
	NoRecord bool
	// Logger gets the server's logs; nil discards them.
	Logger *slog.Logger
}

// Recorded is one call the server received.
type Recorded struct {
	// At is when the call arrived.
	At time.Time
	// Seq numbers the calls in the order they arrived, from 1. Requests lists calls in
	// the order they were answered, which differs when answers take different times:
	// sort by Seq (or use Arrivals) for the order a registrar would see them in.
	Seq int64
	// Local is the server's own address the call came in on (the listener's
	// "host:port"). Serving one Server on several listeners, one per client, tells
	// the clients' calls apart.
	Local string
	// Traceparent is the W3C trace context the call carried in its gRPC metadata
	// ("00-<trace-id>-<parent-id>-<flags>"), empty when none: the trace a real
	// Requester would continue.
	Traceparent string
	// Key is the AOR user of the To header, or the target host when there is none.
	Key string
	// Req is the request as received.
	Req *requesterv2beta1.SendMessageRequest
	// Resp is the SIP answer sent, nil when the call failed.
	Resp *sipmessagev2beta1.SIPMessage
	// Err is the gRPC error the call failed with, nil when it was answered.
	Err error
}

// Server is a fake Routr Requester. Its methods are safe for concurrent use. Serve
// may be called again after Stop, which simulates a restart with the same script,
// records and counters.
type Server struct {
	opts Options
	log  *slog.Logger
	auth *authenticator

	mu     sync.Mutex // guards script and keys
	script Script
	keys   map[string]*keyState

	count     atomic.Int64
	recMu     sync.Mutex // guards records, arrivals and changed
	records   []Recorded
	arrivals  []Recorded    // every call in arrival order, answered ones updated
	changed   chan struct{} // closed and replaced on every arrival and every answer
	flightMu  sync.Mutex    // guards inFlight and maxFlight
	inFlight  map[string]int
	maxFlight int

	recFile *recordFile
	recErr  error

	servers grpcserve.Group
}

// keyState is the progress of one key through its behaviour.
type keyState struct {
	seen      int  // requests so far, for FailN
	staleSent bool // StaleOnce is used up
}

// New returns a Server for opts. It opens RecordFile at once; Serve returns the
// error if that failed.
func New(opts Options) *Server {
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		auth:     newAuthenticator(),
		script:   opts.Script.clone(),
		keys:     make(map[string]*keyState),
		changed:  make(chan struct{}),
		inFlight: make(map[string]int),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.RecordFile != "" {
		s.recFile, s.recErr = openRecordFile(opts.RecordFile)
	}
	return s
}

// SetBehaviour sets the behaviour of key (an AOR user, a target "host:port" or a
// target host) and restarts its FailN and StaleOnce state.
func (s *Server) SetBehaviour(key string, b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.Trunks[key] = b
	delete(s.keys, key)
}

// SetDefault sets the behaviour of requests that match no key and restarts the
// FailN and StaleOnce state of every key that used the default.
func (s *Server) SetDefault(b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.Default = b
	for k := range s.keys {
		if strings.HasPrefix(k, defaultPrefix) {
			delete(s.keys, k)
		}
	}
}

// defaultPrefix keeps the state keys of the default behaviour apart from scripted keys.
const defaultPrefix = "\x00default:"

// Count returns how many calls arrived, including those still in flight.
func (s *Server) Count() int {
	return int(s.count.Load())
}

// Arrivals returns every call received so far (unless NoRecord), in the order they
// arrived (by Seq), including the calls still in flight: those have neither Resp nor
// Err yet.
func (s *Server) Arrivals() []Recorded {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return append([]Recorded(nil), s.arrivals...)
}

// WaitArrivals blocks until pred holds over the calls received (as Arrivals lists
// them), or ctx ends. pred runs on every arrival and every answer, outside the
// server's locks; it must not keep or change the slice.
func (s *Server) WaitArrivals(ctx context.Context, pred func([]Recorded) bool) error {
	for {
		s.recMu.Lock()
		snapshot, changed := append([]Recorded(nil), s.arrivals...), s.changed
		s.recMu.Unlock()
		if pred(snapshot) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakerequester: wait for arrivals: %w", ctx.Err())
		}
	}
}

// Requests returns the answered calls in the order they were answered.
func (s *Server) Requests() []Recorded {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return append([]Recorded(nil), s.records...)
}

// Wait blocks until pred holds over the answered calls, or ctx ends. pred runs on
// every new record (and may run on arrivals too), outside the server's locks; it must
// not keep or change the slice.
func (s *Server) Wait(ctx context.Context, pred func([]Recorded) bool) error {
	for {
		s.recMu.Lock()
		snapshot, changed := s.records[:len(s.records):len(s.records)], s.changed
		s.recMu.Unlock()
		if pred(snapshot) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakerequester: wait: %w", ctx.Err())
		}
	}
}

// MaxInFlightPerKey returns the largest number of calls ever in flight at once for
// one key (the AOR user of the To header, else the target host).
func (s *Server) MaxInFlightPerKey() int {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	return s.maxFlight
}

// Serve answers gRPC calls on lis until Stop; it returns nil after Stop, or at once
// the error of opening RecordFile.
func (s *Server) Serve(lis net.Listener) error {
	if s.recErr != nil {
		return s.recErr
	}
	s.log.Info("serving", "addr", lis.Addr().String())
	return s.servers.Serve(lis, func(gs *grpc.Server) {
		requesterv2beta1.RegisterRequesterServer(gs, &requesterService{s: s})
	})
}

// Stop closes the listeners and connections of every running Serve at once; calls in
// flight end (hanging ones included) and fail on the client side with Unavailable.
func (s *Server) Stop() {
	s.servers.Stop()
}

// Close stops the server and closes RecordFile; calls answered later are not
// written to it. Close may be called more than once.
func (s *Server) Close() error {
	s.Stop()
	if s.recFile != nil {
		return s.recFile.close()
	}
	return nil
}

// requesterService is the gRPC face of a Server.
type requesterService struct {
	requesterv2beta1.UnimplementedRequesterServer
	s *Server
}

func (r *requesterService) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	s := r.s
	at := time.Now()
	user := req.GetMessage().GetTo().GetAddress().GetUri().GetUser()
	host := targetHost(req.GetTarget())
	key := user
	if key == "" {
		key = host
	}
	var local string
	if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
		local = p.LocalAddr.String()
	}
	rec := s.arrive(Recorded{At: at, Key: key, Local: local, Traceparent: traceparent(ctx), Req: req})
	s.enter(key)
	defer s.leave(key)

	msg, err := s.handle(ctx, req, user, host)
	if err != nil {
		s.log.Debug("call failed", "trunk", key, "err", err)
	} else {
		s.log.Debug("answered", "trunk", key, "response", msg.GetResponseType().String())
	}
	rec.Resp, rec.Err = msg, err
	s.record(rec)
	if err != nil {
		return nil, err
	}
	return &requesterv2beta1.SendMessageResponse{Message: msg}, nil
}

// traceparent is the incoming call's traceparent metadata, empty when none.
func traceparent(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "traceparent"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// handle answers one request according to the script.
func (s *Server) handle(ctx context.Context, req *requesterv2beta1.SendMessageRequest, user, host string) (*sipmessagev2beta1.SIPMessage, error) {
	msg := req.GetMessage()
	b, st, maxExpires := s.pick(user, req.GetTarget(), host)
	if err := b.Validate(); err != nil {
		return nil, status.Errorf(codes.Internal, "fakerequester: invalid behaviour: %v", err)
	}
	kind := b.Kind
	if kind == "" || (b.FailN > 0 && st.n > b.FailN) {
		kind = KindOK
	}
	if b.Delay > 0 {
		t := time.NewTimer(b.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}

	switch kind {
	case KindOK:
		return okAnswer(msg, user, maxExpires), nil
	case KindChallenge:
		return s.challenge(req, b, user, maxExpires, st.key), nil
	case KindForbidden:
		return answer(msg, sipmessagev2beta1.ResponseType_FORBIDDEN), nil
	case KindNotFound:
		return answer(msg, sipmessagev2beta1.ResponseType_NOT_FOUND), nil
	case KindIntervalTooBrief:
		if a := asked(msg); a > 0 && a < b.MinExpires {
			return withExtension(answer(msg, sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF),
				"Min-Expires", fmt.Sprint(b.MinExpires)), nil
		}
		return okAnswer(msg, user, maxExpires), nil
	case KindBadExtension:
		if requiresGin(msg) {
			return withExtension(answer(msg, sipmessagev2beta1.ResponseType_BAD_EXTENSION), "Unsupported", "gin"), nil
		}
		return okAnswer(msg, user, maxExpires), nil
	case KindServerError:
		rt := b.Response
		if rt == sipmessagev2beta1.ResponseType_UNKNOWN {
			rt = sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE
		}
		return errorAnswer(msg, rt, b.RetryAfter), nil
	case KindRespond:
		return errorAnswer(msg, b.Response, b.RetryAfter), nil
	case KindRequestTimeout:
		return answer(msg, sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT), nil
	case KindHang:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case KindUnavailable:
		return nil, status.Error(codes.Unavailable, "fakerequester: unavailable (scripted)")
	}
	return nil, status.Errorf(codes.Internal, "fakerequester: unknown kind %q", kind)
}
