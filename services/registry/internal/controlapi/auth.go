package controlapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
)

// errUnauthenticated is the only thing a caller learns about a refused token.
var errUnauthenticated = errors.New("missing or invalid bearer token")

// bearerAuth is a connect interceptor (unary and server-streaming handlers) that requires
// "Authorization: Bearer <token>". Tokens are compared as SHA-256 digests with
// subtle.ConstantTimeCompare, so neither their content nor their length shows in the
// timing. The token never reaches a log line or an error. Every refused call is counted
// (Observer.ControlAuthFailed); the log gets at most one line per authLogInterval per
// peer address.
type bearerAuth struct {
	want [sha256.Size]byte
	obs  Observer
	log  *refusalLog
}

func newBearerAuth(token string, log *slog.Logger, obs Observer) *bearerAuth {
	return &bearerAuth{want: sha256.Sum256([]byte(token)), obs: obs, log: newRefusalLog(log, time.Now)}
}

func (a *bearerAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := a.check(ctx, req.Header(), req.Spec().Procedure, req.Peer().Addr); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a *bearerAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *bearerAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := a.check(ctx, conn.RequestHeader(), conn.Spec().Procedure, conn.Peer().Addr); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func (a *bearerAuth) check(ctx context.Context, h http.Header, procedure, peer string) error {
	got, ok := bearerToken(h.Get("Authorization"))
	if ok {
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], a.want[:]) == 1 {
			return nil
		}
	}
	a.obs.ControlAuthFailed()
	a.log.refused(ctx, procedure, peer)
	return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
}

const (
	// authLogInterval is the least time between two log lines about refused calls from
	// one peer address: a client retrying with a bad token cannot flood the log.
	authLogInterval = time.Minute
	// maxAuthLogPeers bounds the peer addresses remembered for that. When they are all
	// recent, any other address shares one more slot (overflowPeer).
	maxAuthLogPeers = 1024
	overflowPeer    = "*"
)

// refusalLog logs refused calls, at most one line per authLogInterval per peer address
// (its IP: each connection has a port of its own). A line says how many refusals from
// that address went unlogged since the one before (suppressed). Safe for concurrent use.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	peers map[string]*peerRefusals
}

type peerRefusals struct {
	logged     time.Time // when the last line about this address was written
	suppressed int       // refusals since then, not logged
}

func newRefusalLog(log *slog.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{log: log, now: now, peers: map[string]*peerRefusals{}}
}

// refused notes one refused call from peer (host:port) and logs it unless a line about
// the same address was written less than authLogInterval ago.
func (l *refusalLog) refused(ctx context.Context, procedure, peer string) {
	key := peer
	if host, _, err := net.SplitHostPort(peer); err == nil {
		key = host
	}
	now := l.now()
	l.mu.Lock()
	p := l.peers[key]
	if p == nil {
		if len(l.peers) >= maxAuthLogPeers {
			l.forgetLocked(now)
		}
		if len(l.peers) >= maxAuthLogPeers {
			key = overflowPeer
			p = l.peers[key]
		}
	}
	if p != nil && now.Sub(p.logged) < authLogInterval {
		p.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if p == nil {
		l.peers[key] = &peerRefusals{logged: now}
	} else {
		suppressed, p.logged, p.suppressed = p.suppressed, now, 0
	}
	l.mu.Unlock()
	l.log.LogAttrs(ctx, slog.LevelInfo, "control API call refused: missing or invalid bearer token (logged at most once a minute per peer address)",
		slog.String("procedure", procedure), slog.String("peer", peer), slog.Int("suppressed", suppressed))
}

// forgetLocked drops the addresses whose last line is older than authLogInterval (their
// next refusal is logged anyway). l.mu is held.
func (l *refusalLog) forgetLocked(now time.Time) {
	for k, p := range l.peers {
		if now.Sub(p.logged) >= authLogInterval {
			delete(l.peers, k)
		}
	}
}

// bearerToken returns the credentials of an Authorization header with the Bearer scheme
// (the scheme is case-insensitive, RFC 9110 §11.1).
func bearerToken(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
