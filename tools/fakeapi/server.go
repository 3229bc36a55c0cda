package fakeapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/tools/grpcserve"
)

// MaxMessageSize is the largest message the server sends or receives: one FindBy
// answer with 100,000 trunks is well over gRPC's default of 4 MiB.
const MaxMessageSize = 256 << 20

// Options configures a Server. The zero value serves no trunks.
type Options struct {
	// Fixture is the path of a YAML or JSON file of trunks (format in the package
	// doc), re-read when it changes. Empty: no fixture.
	Fixture string
	// Generate adds this many generated trunks after the fixture's (see Generate).
	Generate int
	// FindByLog, when set, gets one line per FindBy call: the time it arrived, in
	// RFC 3339 with nanoseconds, so that tests out of process can count calls.
	FindByLog io.Writer
	// Logger gets the server's logs; nil discards them.
	Logger *slog.Logger
}

// Server is a fake Routr API serving the Trunks service. Its methods are safe for
// concurrent use. Serve may be called again after Stop, which simulates a restart
// with the same trunks, faults and counters.
type Server struct {
	opts      Options
	log       *slog.Logger
	generated []*trunksv2beta1.Trunk

	mu        sync.Mutex // guards the fields below
	trunks    []*trunksv2beta1.Trunk
	loaded    bool      // some version of the fixture (or SetTrunks) gave a set
	loadErr   error     // the last fixture load error, if the file never loaded
	seenMod   time.Time // stat of the fixture version last read
	seenSize  int64
	seenValid bool

	delay       atomic.Int64  // time.Duration
	fail        atomic.Uint32 // codes.Code; OK means none
	findByCalls atomic.Int64
	logMu       sync.Mutex // serialises writes to opts.FindByLog

	servers grpcserve.Group
}

// New returns a Server for opts. It loads the fixture at once; a load error is
// logged, and Reload returns it.
func New(opts Options) *Server {
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		generated: Generate(opts.Generate),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.Fixture == "" {
		s.trunks, s.loaded = s.generated, true
	} else if err := s.Reload(); err != nil {
		s.log.Error("load fixture", "file", opts.Fixture, "err", err)
	}
	return s
}

// Reload reads the fixture now, whether or not it changed, and returns the load
// error. On error the current set is kept. Without a fixture it does nothing.
func (s *Server) Reload() error {
	if s.opts.Fixture == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.opts.Fixture)
	if err != nil {
		return s.loadFailedLocked(fmt.Errorf("fixture: %w", err))
	}
	return s.loadLocked(fi)
}

// refresh re-reads the fixture when its stat changed since the last read, and
// returns the current set.
func (s *Server) refresh() ([]*trunksv2beta1.Trunk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Fixture != "" {
		fi, err := os.Stat(s.opts.Fixture)
		switch {
		case err != nil:
			// Report a vanished file once, not on every call.
			if s.seenValid || (!s.loaded && s.loadErr == nil) {
				s.seenValid = false
				_ = s.loadFailedLocked(fmt.Errorf("fixture: %w", err))
			}
		case !s.seenValid || !fi.ModTime().Equal(s.seenMod) || fi.Size() != s.seenSize:
			_ = s.loadLocked(fi)
		}
	}
	if !s.loaded {
		return nil, s.loadErr
	}
	return s.trunks, nil
}

func (s *Server) loadLocked(fi os.FileInfo) error {
	s.seenMod, s.seenSize, s.seenValid = fi.ModTime(), fi.Size(), true
	trunks, err := LoadFixture(s.opts.Fixture)
	if err != nil {
		return s.loadFailedLocked(err)
	}
	all := make([]*trunksv2beta1.Trunk, 0, len(trunks)+len(s.generated))
	s.trunks = append(append(all, trunks...), s.generated...)
	s.loaded, s.loadErr = true, nil
	s.log.Info("fixture loaded", "file", s.opts.Fixture, "trunks", len(s.trunks))
	return nil
}

func (s *Server) loadFailedLocked(err error) error {
	if s.loaded {
		s.log.Warn("fixture not reloaded, keeping the previous trunks", "err", err)
	} else {
		s.loadErr = err
		s.log.Error("fixture not loaded", "err", err)
	}
	return err
}

// SetTrunks replaces the served set with copies of trunks. The set stays until the
// next SetTrunks or until the fixture file changes.
func (s *Server) SetTrunks(trunks []*trunksv2beta1.Trunk) {
	set := make([]*trunksv2beta1.Trunk, len(trunks))
	for i, t := range trunks {
		set[i] = proto.CloneOf(t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trunks, s.loaded, s.loadErr = set, true, nil
}

// Trunks returns the served set (re-reading the fixture if it changed). The trunks
// are shared: do not modify them.
func (s *Server) Trunks() ([]*trunksv2beta1.Trunk, error) {
	return s.refresh()
}

// SetDelay makes every call wait d before it answers (0: answer at once). A call
// whose context ends first fails with the context's code.
func (s *Server) SetDelay(d time.Duration) {
	s.delay.Store(int64(d))
}

// SetFail makes every call fail with code; codes.OK clears the fault.
func (s *Server) SetFail(code codes.Code) {
	s.fail.Store(uint32(code))
}

// FindByCalls returns how many FindBy calls arrived, failed ones included.
func (s *Server) FindByCalls() int64 {
	return s.findByCalls.Load()
}

// Serve answers gRPC calls on lis until Stop; it returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	s.log.Info("serving", "addr", lis.Addr().String())
	return s.servers.Serve(lis, func(gs *grpc.Server) {
		trunksv2beta1.RegisterTrunksServer(gs, &trunksService{s: s})
	}, grpc.MaxSendMsgSize(MaxMessageSize), grpc.MaxRecvMsgSize(MaxMessageSize))
}

// Stop closes the listeners and connections of every running Serve at once; calls in
// flight fail on the client side with Unavailable.
func (s *Server) Stop() {
	s.servers.Stop()
}

// enter applies the injected faults to a call; it returns the error to answer, if any.
func (s *Server) enter(ctx context.Context, method string) error {
	if method == "FindBy" {
		s.findByCalls.Add(1)
		s.logFindBy()
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctxError(ctx)
		}
	}
	if code := codes.Code(s.fail.Load()); code != codes.OK {
		return statusErrorf(code, "fakeapi: injected failure on %s", method)
	}
	return nil
}

func (s *Server) logFindBy() {
	if s.opts.FindByLog == nil {
		return
	}
	line := time.Now().UTC().Format(time.RFC3339Nano) + "\n"
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if _, err := io.WriteString(s.opts.FindByLog, line); err != nil {
		s.log.Warn("write findby log", "err", err)
	}
}
