package controlapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// errUnauthenticated is the only thing a caller learns about a refused token.
var errUnauthenticated = errors.New("missing or invalid bearer token")

// bearerAuth is a connect interceptor (unary and server-streaming handlers) that requires
// "Authorization: Bearer <token>". Tokens are compared as SHA-256 digests with
// subtle.ConstantTimeCompare, so neither their content nor their length shows in the
// timing. The token never reaches a log line or an error.
type bearerAuth struct {
	want [sha256.Size]byte
	log  *slog.Logger
}

func newBearerAuth(token string, log *slog.Logger) *bearerAuth {
	return &bearerAuth{want: sha256.Sum256([]byte(token)), log: log}
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
	a.log.LogAttrs(ctx, slog.LevelInfo, "control API call refused: missing or invalid bearer token",
		slog.String("procedure", procedure), slog.String("peer", peer))
	return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
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
