// Package siprequester serves Routr v2's Requester gRPC contract
// (fonoster.routr.requester.v2beta1.Requester/SendMessage) over real SIP, UDP and TCP,
// with sipgo. It behaves like Routr's Requester (see docs/wire.md, "Requests" and
// "Answers") except that it talks SIP straight to the target, with no
// EdgePort in between: it sends the request, swallows provisional responses and answers
// the first final response, REQUEST_TIMEOUT when the transaction times out. It never
// answers a challenge itself: 401 and 407 go back to the caller.
//
// It is the registry's direct path to a registrar (Kamailio in end-to-end tests, or any
// deployment without Routr's EdgePort).
package siprequester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonpb "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// DefaultTransactionTimeout is the default Options.TransactionTimeout: RFC 3261 Timer F
// (64*T1), after which Routr's Requester answers REQUEST_TIMEOUT.
const DefaultTransactionTimeout = 32 * time.Second

// Options configures a Server. The zero value is usable.
type Options struct {
	// ListenHost is the IP address the SIP sockets bind to; it is also written into the
	// top Via and the Contact, so it must be a concrete address. Default 127.0.0.1.
	ListenHost string
	// Logger receives the server's and sipgo's log lines. Default slog.Default().
	Logger *slog.Logger
	// TransactionTimeout bounds one SIP transaction; when it runs out the answer is
	// REQUEST_TIMEOUT. Default DefaultTransactionTimeout. sipgo's own transaction timer
	// (Timer_B = 64*T1, a package global left alone here) also ends a transaction after
	// 32 s, so longer values act as 32 s.
	TransactionTimeout time.Duration
}

// Server is a Requester that sends SIP itself. Create it with New, serve gRPC with Serve,
// release everything with Stop.
type Server struct {
	log     *slog.Logger
	ip      net.IP
	udp     net.PacketConn
	tcp     net.Listener
	udpSelf endpoint
	tcpSelf endpoint
	ua      *sipgo.UserAgent
	client  *sipgo.Client
	grpc    *grpc.Server
	timeout time.Duration

	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New binds the SIP UDP and TCP sockets on ephemeral ports of opts.ListenHost, starts
// serving them and returns the Server. Call Serve to accept gRPC calls and Stop to
// release the sockets.
func New(opts Options) (*Server, error) {
	if opts.ListenHost == "" {
		opts.ListenHost = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TransactionTimeout <= 0 {
		opts.TransactionTimeout = DefaultTransactionTimeout
	}
	ip := net.ParseIP(opts.ListenHost)
	if ip == nil {
		return nil, fmt.Errorf("siprequester: listen host %q: not an IP address", opts.ListenHost)
	}
	if ip.IsUnspecified() {
		return nil, fmt.Errorf("siprequester: listen host %q: must be a concrete address, it goes into Via and Contact", opts.ListenHost)
	}
	log := opts.Logger

	s := &Server{log: log, ip: ip, timeout: opts.TransactionTimeout}
	// Stop waits for handlers, so no SendMessage outlives the SIP layers it uses.
	s.grpc = grpc.NewServer(grpc.WaitForHandlers(true))
	requesterpb.RegisterRequesterServer(s.grpc, &requester{s: s})
	var err error
	if s.udp, err = net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0")); err != nil {
		return nil, fmt.Errorf("siprequester: listen udp: %w", err)
	}
	if s.tcp, err = net.Listen("tcp", net.JoinHostPort(ip.String(), "0")); err != nil {
		s.udp.Close()
		return nil, fmt.Errorf("siprequester: listen tcp: %w", err)
	}
	s.udpSelf = endpoint{transport: "udp", host: ip.String(), port: s.udp.LocalAddr().(*net.UDPAddr).Port}
	s.tcpSelf = endpoint{transport: "tcp", host: ip.String(), port: s.tcp.Addr().(*net.TCPAddr).Port}

	s.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent("siprequester"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerTerminateOnConnClose(),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				log.Debug("sip response outside a transaction (a retransmission?)", "status", r.StatusCode, "reason", r.Reason)
			}),
		),
	)
	if err != nil {
		s.closeSockets()
		return nil, fmt.Errorf("siprequester: sip user agent: %w", err)
	}
	// The server part answers requests that reach the requester (405, as sipgo's default)
	// so that no server transaction is left dangling.
	sipServer, err := sipgo.NewServer(s.ua, sipgo.WithServerLogger(log))
	if err == nil {
		s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientLogger(log))
	}
	if err != nil {
		s.ua.Close()
		s.closeSockets()
		return nil, fmt.Errorf("siprequester: sip client: %w", err)
	}
	// sipgo puts the UDP socket into its connection pool in the serving goroutine; a
	// request sent before that would make it bind a second socket to the same address.
	// Its first read comes after, so wait for that.
	udp := &firstReadPacketConn{PacketConn: s.udp, read: make(chan struct{})}
	udpServed := make(chan struct{})
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer close(udpServed)
		if err := sipServer.ServeUDP(udp); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("sip udp serve", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		// ServeTCP always returns an error, net.ErrClosed once Stop closes the listener.
		if err := sipServer.ServeTCP(s.tcp); !errors.Is(err, net.ErrClosed) {
			log.Error("sip tcp serve", "error", err)
		}
	}()

	select {
	case <-udp.read:
	case <-udpServed:
		s.Stop()
		return nil, errors.New("siprequester: sip udp serve ended at once")
	}
	log.Info("sip listening", "udp", s.udpSelf.hostPort(), "tcp", s.tcpSelf.hostPort())
	return s, nil
}

// Serve accepts gRPC connections on lis until Stop is called; it returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("siprequester: serve grpc: %w", err)
	}
	return nil
}

// Stop closes the gRPC listeners and connections (calls in flight end with a context
// error), terminates the SIP transactions and closes the SIP sockets. It is safe to call
// more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.grpc.Stop()
		s.closeSockets()
		if err := s.ua.Close(); err != nil {
			s.log.Debug("close sip user agent", "error", err)
		}
		s.wg.Wait()
	})
}

// SIPAddr returns the host:port of the server's SIP socket for transport "udp" or "tcp"
// (any case), the address that goes into its Via and Contact; "" for other transports.
func (s *Server) SIPAddr(transport string) string {
	switch strings.ToLower(transport) {
	case "udp":
		return s.udpSelf.hostPort()
	case "tcp":
		return s.tcpSelf.hostPort()
	}
	return ""
}

func (s *Server) closeSockets() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
}

// firstReadPacketConn closes read when the first ReadFrom starts.
type firstReadPacketConn struct {
	net.PacketConn
	once sync.Once
	read chan struct{}
}

// ReadFrom signals the first read, then reads.
func (c *firstReadPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.read) })
	return c.PacketConn.ReadFrom(p)
}

// requester implements the generated RequesterServer.
type requester struct {
	requesterpb.UnimplementedRequesterServer
	s *Server
}

// SendMessage sends one SIP request and answers its final response.
func (r *requester) SendMessage(ctx context.Context, in *requesterpb.SendMessageRequest) (*requesterpb.SendMessageResponse, error) {
	s := r.s
	var self endpoint
	switch in.GetTransport() {
	case commonpb.Transport_UDP:
		self = s.udpSelf
	case commonpb.Transport_TCP:
		self = s.tcpSelf
	default:
		// Routr's Requester fails these with UNKNOWN as well.
		return nil, status.Errorf(codes.Unknown, "transport %v is not supported: only UDP and TCP", in.GetTransport())
	}
	req, err := buildRequest(in, self, sip.GenerateBranchN(16))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "build %v request: %v", in.GetMethod(), err)
	}
	if self.transport == "udp" {
		// Send from the listening socket, so that responses (Via sent-by, rport) and the
		// Contact all name it. TCP dials a new connection and reads responses on it.
		req.Laddr = sip.Addr{IP: s.ip, Port: self.port}
	}
	log := s.log.With("call_id", req.CallID().Value(), "method", string(req.Method),
		"target", in.GetTarget(), "transport", self.transport, "destination", req.Destination())

	msg, err := r.transact(ctx, req, log)
	if err != nil {
		return nil, err
	}
	return &requesterpb.SendMessageResponse{Message: msg}, nil
}

// transact runs one client transaction: provisional responses are swallowed, the first
// final one is answered; a timeout or a transport failure answers REQUEST_TIMEOUT (the
// answer Routr's Requester gives, or in the transport case the one its caller ends with).
// Only the caller's context ends it with an error.
func (r *requester) transact(ctx context.Context, req *sip.Request, log *slog.Logger) (*sipmessagepb.SIPMessage, error) {
	// Built before sending: sipgo reads the request from its own goroutines afterwards.
	timedOut := timeoutResponse(req)
	timer := time.NewTimer(r.s.timeout)
	defer timer.Stop()

	tx, err := r.s.client.TransactionRequest(ctx, req, func(*sipgo.Client, *sip.Request) error {
		return nil // the request is complete: do not let sipgo add or change headers
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		log.Warn("sip request not sent", "error", err)
		return timedOut, nil
	}
	defer tx.Terminate()

	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				log.Debug("provisional response", "status", res.StatusCode)
				continue
			}
			msg := responseMessage(res)
			log.Info("final response", "status", res.StatusCode, "reason", res.Reason,
				"response_type", msg.GetResponseType().String())
			return msg, nil
		case <-tx.Done():
			log.Warn("sip transaction ended without a final response", "error", tx.Err())
			return timedOut, nil
		case <-timer.C:
			log.Warn("sip transaction timed out", "timeout", r.s.timeout.String())
			return timedOut, nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}
