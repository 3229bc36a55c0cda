// Package exchange runs one REGISTER exchange as a registrant sees it (RFC 3261 §10.2):
// send the REGISTER, then resend it once for each of a digest challenge (direct mode,
// RFC 3261 §22.2, RFC 8760), a stale nonce, 423 Interval Too Brief (§10.2.8, with the
// registrar's Min-Expires) and 420 Bad Extension (without Require: gin), each resend
// with the next CSeq. It knows nothing of trunks' schedules, leases or the store: the
// caller's Send paces the REGISTER, makes its CSeq durable and checks the lease at the
// moment of sending, and the caller turns the Result into the binding's next state.
package exchange

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// anonymousGatewayAuth is sent for trunks without outbound credentials: Routr forwards a
// REGISTER to a trunk only when it carries X-Gateway-Auth, and its EdgePort needs two
// non-empty parts (docs/wire.md). A challenge for such a trunk ends in auth-failed.
var anonymousGatewayAuth = base64.StdEncoding.EncodeToString([]byte("anonymous:anonymous"))

// maxAttempts bounds the REGISTERs of one exchange: challenge, stale nonce, 423 and 420
// each earn at most one resend.
const maxAttempts = 5

// ErrNotSent marks a Send error for a REGISTER that never went out (the lease was lost,
// its CSeq could not be made durable): not an answer, and not counted as one.
var ErrNotSent = errors.New("REGISTER not sent")

// Settings are the parts of the config an exchange follows.
type Settings struct {
	// Gin sends Require: gin and Proxy-Require: gin (unless the binding's registrar
	// answered 420 to it).
	Gin bool
	// EdgePortAuth: Routr's EdgePort answers challenges from X-Gateway-Auth, so a
	// challenge that reaches the registry means refused credentials. Otherwise the
	// exchange answers challenges itself.
	EdgePortAuth bool
	Methods      []string
	UserAgent    string
}

// Exchange is the REGISTER of one binding, ready to run.
type Exchange struct {
	Reg   sipmsg.Register
	cred  sipauth.Credentials
	creds bool
}

// New prepares the REGISTER of rec's binding (its Call-ID and From-tag) to the
// registrar at domain:port over transport, for AOR user, routed through the EdgePort
// at epHost:epPort, with t's outbound credentials. Expires is left to the caller. The
// error says that the credentials cannot travel in X-Gateway-Auth.
func New(s Settings, t trunk.Trunk, rec registration.Record, domain string, port int, transport, user, epHost string, epPort int) (Exchange, error) {
	x := Exchange{
		Reg: sipmsg.Register{
			Domain: domain, Port: port, Transport: transport, User: user,
			CallID: rec.CallID, FromTag: rec.FromTag,
			EdgePortHost: epHost, EdgePortPort: epPort,
			Methods: s.Methods, UserAgent: s.UserAgent,
		},
		cred:  sipauth.Credentials{Username: t.Username, Password: t.Password},
		creds: t.HasCredentials(),
	}
	if s.EdgePortAuth {
		x.Reg.GatewayAuth = anonymousGatewayAuth
		if x.creds {
			v, err := sipauth.GatewayAuth(x.cred)
			if err != nil {
				return x, err
			}
			x.Reg.GatewayAuth = v
		}
	}
	return x, nil
}

// Send sends one REGISTER; first marks the first REGISTER of a refresh (not an
// unregister). took is how long SendMessage took (0 when nothing went out).
//
// The request is only valid until send returns: its messages come from a pool
// (sipmsg.BuildPooled) and serve the next REGISTER once the answer is read. A send
// that keeps the request (a test fake recording what was sent, a goroutine still
// reading it) must keep a clone (proto.Clone) taken before it returns. The answer must
// not point into the request either. gRPC's client marshals the request before Invoke
// returns and keeps none of it (a transparent retry replays the encoded bytes, within
// the same Invoke).
type Send func(ctx context.Context, req *requesterv2beta1.SendMessageRequest, first bool) (resp *requesterv2beta1.SendMessageResponse, took time.Duration, err error)

// Result is the final answer of an exchange.
type Result struct {
	Out    sipmsg.Outcome
	Err    error // transport or Requester error (transient), or ErrNotSent
	State  registration.State
	Reason string // why it failed, for the record (never a secret)
}

// Runner runs exchanges.
type Runner struct {
	Settings Settings
	// Observe is told each answer's class (or "error") and how long SendMessage took.
	Observe func(class string, took time.Duration)
	Log     *slog.Logger
	// Tracer makes a span per exchange (nil: off, allocating nothing).
	Tracer trace.Tracer
}

// Run runs x for rec's binding, sending through send. rec's CSeq, MinExpires,
// RequestedExpires and NoGin are updated as it goes.
func (rn *Runner) Run(ctx context.Context, x Exchange, rec *registration.Record, send Send) (res Result) {
	ctx, span := startExchange(ctx, rn.Tracer, rec, x.Reg.Expires)
	cseq0 := rec.CSeq
	defer endExchange(span, &res, rec, cseq0)
	var ch *sipauth.Challenge
	var nc uint32
	staleUsed, did423, did420 := false, false, false
	// The request of the last REGISTER, given back once its answer is read: at the next
	// attempt, or when the exchange ends.
	var sent *sipmsg.Pooled
	defer func() {
		if sent != nil {
			sent.Release()
		}
	}()
	for attempt := range maxAttempts {
		if sent != nil {
			sent.Release()
			sent = nil
		}
		rec.CSeq++
		x.Reg.CSeq = rec.CSeq
		x.Reg.Gin = rn.Settings.Gin && !rec.NoGin
		x.Reg.Auth = nil
		if ch != nil {
			nc++
			a, err := sipauth.Answer(*ch, x.cred, "REGISTER", x.Reg.RequestURI(), nc, "")
			if err != nil {
				return Result{State: registration.StateAuthFailed, Reason: "cannot answer the challenge: " + err.Error()}
			}
			x.Reg.Auth = &a
		}
		p, err := sipmsg.BuildPooled(x.Reg)
		if err != nil {
			// Defence in depth: the trunk's data was checked at discovery; nothing
			// the SIP grammar forbids goes on the wire all the same.
			return Result{State: registration.StateRejected, Reason: "cannot build the REGISTER: " + err.Error()}
		}
		sent = p
		resp, took, err := send(ctx, p.Request(), attempt == 0 && x.Reg.Expires > 0)
		switch {
		case err == nil:
		case errors.Is(err, ErrNotSent), ctx.Err() != nil:
			// Nothing went out (or our own shutdown cut the exchange): not a
			// registrar's answer, not counted as one.
			return Result{Err: err, State: registration.StateRetrying, Reason: err.Error()}
		default:
			rn.Observe("error", took)
			return Result{Err: err, State: registration.StateRetrying, Reason: errorReason(err)}
		}
		out, err := sipmsg.Read(resp, x.Reg.Expires)
		if err != nil {
			rn.Observe("error", took)
			return Result{Err: err, State: registration.StateRetrying, Reason: err.Error()}
		}
		rn.Observe(out.Class.String(), took)
		traceAnswer(span, int(rec.CSeq-cseq0), rec.CSeq, x.Reg.Auth != nil, out)
		switch out.Class {
		case sipmsg.ClassOK:
			return Result{Out: out, State: registration.StateRegistered}
		case sipmsg.ClassChallenge:
			if rn.Settings.EdgePortAuth {
				return Result{Out: out, State: registration.StateAuthFailed,
					Reason: "challenged through Routr: the EdgePort's answer from X-Gateway-Auth was refused (wrong credentials?)"}
			}
			if !x.creds {
				return Result{Out: out, State: registration.StateAuthFailed, Reason: "challenged, but the trunk has no outbound credentials"}
			}
			c, err := sipauth.ChallengeFrom(resp.GetMessage())
			if err != nil {
				return Result{Out: out, State: registration.StateAuthFailed, Reason: "unusable challenge: " + err.Error()}
			}
			if ch != nil {
				if !c.Stale || staleUsed {
					return Result{Out: out, State: registration.StateAuthFailed,
						Reason: "credentials refused: challenged again after answering"}
				}
				staleUsed = true
			}
			ch, nc = &c, 0
			rn.Log.Debug("challenged; answering", "trunk", rec.TrunkRef, "proxy", c.Proxy, "realm", c.Realm,
				"algorithm", c.Algorithm, "stale", c.Stale)
		case sipmsg.ClassIntervalTooBrief:
			if did423 || out.MinExpires <= x.Reg.Expires {
				return Result{Out: out, State: registration.StateRejected,
					Reason: fmt.Sprintf("423 with Min-Expires %d for Expires %d", out.MinExpires, x.Reg.Expires)}
			}
			did423 = true
			rn.Log.Info("interval too brief; asking for Min-Expires from now on", "trunk", rec.TrunkRef,
				"asked", x.Reg.Expires, "min_expires", out.MinExpires)
			rec.MinExpires = out.MinExpires
			x.Reg.Expires = out.MinExpires
			rec.RequestedExpires = out.MinExpires
		case sipmsg.ClassBadExtension:
			if did420 || !x.Reg.Gin {
				return Result{Out: out, State: registration.StateRejected, Reason: "420 Bad Extension: " + strings.Join(out.Unsupported, ",")}
			}
			did420 = true
			rn.Log.Info("registrar does not support gin; sending without it from now on", "trunk", rec.TrunkRef)
			rec.NoGin = true
		case sipmsg.ClassRejected:
			return Result{Out: out, State: registration.StateRejected, Reason: reasonOf(out)}
		default:
			return Result{Out: out, State: registration.StateRetrying, Reason: reasonOf(out)}
		}
	}
	return Result{State: registration.StateRejected, Reason: "too many REGISTERs for one attempt"}
}

func reasonOf(o sipmsg.Outcome) string {
	if o.Reason != "" {
		return fmt.Sprintf("%d %s", o.Code, o.Reason)
	}
	return fmt.Sprintf("%d %s", o.Code, o.Type)
}

// errorReason describes a Requester error without its internals (never a secret: the
// request is not part of the error).
func errorReason(err error) string {
	if _, ok := status.FromError(err); ok {
		// The status message of a wrapped error repeats the wrapping; keep the cause.
		msg := err.Error()
		if i := strings.LastIndex(msg, "desc = "); i >= 0 {
			msg = msg[i+len("desc = "):]
		}
		return "requester: " + status.Code(err).String() + ": " + msg
	}
	return err.Error()
}

// NotSent returns an error with text msg that matches ErrNotSent (errors.Is), for a
// Send that stops a REGISTER before it goes out.
func NotSent(msg string) error { return notSent(msg) }

type notSent string

func (e notSent) Error() string        { return string(e) }
func (e notSent) Is(target error) bool { return target == ErrNotSent }
