package reconcile

import (
	"context"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// send paces and sends one REGISTER of rec's binding. Every wait comes first (the rate
// limiter, a CSeq reservation); the lease is checked after them, at the last moment
// before SendMessage, by this replica's own clock: a REGISTER whose lease ran out
// meanwhile (a pause, a partition) is dropped, not sent.
//
// first marks the first REGISTER of a refresh (not an unregister): if the binding expired before
// it could go out, the registry fell behind its schedule (noteLapse).
func (r *Reconciler) sender(rec *registration.Record, base registration.Record) exchange.Send {
	return func(ctx context.Context, req *requesterv2beta1.SendMessageRequest, first bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
		if err := r.limiter.Wait(ctx); err != nil {
			return nil, 0, err
		}
		if err := r.reserveCSeq(rec, base); err != nil {
			return nil, 0, err
		}
		select {
		case r.sending <- struct{}{}:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		defer func() { <-r.sending }()
		if fence, ok := r.own.Valid(rec.TrunkRef); !ok || fence != rec.Fence {
			// Not held, or held again under another fence: another replica may have
			// owned the trunk in between, and this REGISTER was built before that.
			return nil, 0, errNotOwner
		}
		if now := r.clock(); first && progress.Lapsed(base, now) && base.ExpiresAt.After(r.started) {
			// A binding alive when this process started expired before its refresh went
			// out (a restart after a long downtime is not counted).
			r.noteLapse(base, now)
		}
		start := time.Now()
		resp, err := r.req.SendMessage(ctx, req)
		return resp, time.Since(start), err
	}
}

// newExchange prepares the REGISTER of rec's binding to uri through edge port ep.
func (r *Reconciler) newExchange(t trunk.Trunk, rec registration.Record, domain string, port int, transport, user string, ep config.EdgePort) (exchange.Exchange, error) {
	return exchange.New(r.xr.Settings, t, rec, domain, port, transport, user, ep.Host, ep.Port)
}

// register sends the REGISTER of a wanted trunk and turns the answer into its next state.
func (r *Reconciler) register(ctx context.Context, key string, e *entry, gen string, t trunk.Trunk, rec registration.Record, uriIdx, epIdx int) (registration.Record, int, int) {
	if fence, ok := r.own.Valid(key); ok {
		rec.Owner, rec.Fence = r.own.ID(), fence
	}
	prev := rec.State
	x, rec, err := r.nextRegister(t, rec, uriIdx, epIdx)
	prior := rec
	if err != nil {
		rec = r.next(rec, prev, registration.Outcome{State: registration.StateRejected,
			Reason: "credentials cannot travel in X-Gateway-Auth: " + err.Error()})
		return rec, uriIdx, epIdx
	}
	now := r.clock()

	rec.State = registration.StateRegistering
	rec.NextAction = registration.ActionNone
	rec.UpdatedAt = now
	r.update(key, e, gen, rec, uriIdx, epIdx, nil)

	res := r.xr.Run(ctx, x, &rec, r.sender(&rec, prior))
	if errors.Is(res.Err, errNotOwner) || res.Err != nil && ctx.Err() != nil {
		// The lease ran out, or our own shutdown cut the exchange: not the
		// registrar's doing. The record stays as it was before this attempt (state,
		// failures, next action), so the owner or the next process continues the
		// schedule; the CSeq moves on, since the REGISTER may have gone out.
		prior.CSeq, prior.CSeqCeiling = rec.CSeq, rec.CSeqCeiling
		return prior, uriIdx, epIdx
	}
	out := registration.Outcome{State: res.State, Reason: res.Reason}
	if res.Err == nil {
		out.Answered, out.Code, out.Type, out.Phrase = true, res.Out.Code, res.Out.Type.String(), res.Out.Reason
		out.Granted, out.RetryAfter = res.Out.Granted, res.Out.RetryAfter
	}
	if res.State == registration.StateRetrying && (res.Err != nil || res.Out.Type == sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT) {
		// Transport trouble toward the provider or the Requester: try the next URI,
		// then the next EdgePort.
		if len(t.URIs) > 1 {
			uriIdx = (uriIdx + 1) % len(t.URIs)
		}
		if (len(t.URIs) == 1 || uriIdx == 0) && len(r.spec.EdgePorts) > 1 {
			epIdx = (epIdx + 1) % len(r.spec.EdgePorts)
		}
	}
	rec = r.next(rec, prev, out)
	return rec, uriIdx, epIdx
}

// nextRegister prepares the next REGISTER of t's binding: through URI uriIdx and
// EdgePort epIdx, asking for spec.expires (or the registrar's Min-Expires). It fills
// rec's AOR, target, transport, EdgePort and expires asked; Explain shows the same.
func (r *Reconciler) nextRegister(t trunk.Trunk, rec registration.Record, uriIdx, epIdx int) (exchange.Exchange, registration.Record, error) {
	u := t.URIs[uriIdx%len(t.URIs)]
	ep := r.spec.EdgePorts[epIdx%len(r.spec.EdgePorts)]
	user := t.User(u)
	if !sipmsg.IsAOR(rec.AOR, user, u.Host) {
		rec.AOR = sipmsg.AOR(user, u.Host)
	}
	if !isTargetOf(rec.Target, u) {
		rec.Target = targetOf(u)
	}
	rec.Transport = u.Transport
	rec.EdgePort = ep.Address
	rec.RequestedExpires = max(r.spec.Expires, rec.MinExpires)
	x, err := r.newExchange(t, rec, u.Host, u.Port, u.Transport, user, ep)
	x.Reg.Expires = rec.RequestedExpires
	return x, rec, err
}

// next applies an outcome to rec (registration.Next) and logs the change: a success
// once per change of state, a failure at warn when the state changes, else at debug.
func (r *Reconciler) next(rec registration.Record, prev registration.State, o registration.Outcome) registration.Record {
	now := r.clock()
	rec = registration.Next(rec, o, r.policy(), now, mrand.Float64())
	// The level is decided first and the attributes are built only when it is
	// enabled: at 100,000 trunks the boxed arguments of a disabled line are
	// measurable.
	ctx := context.Background()
	switch {
	case rec.State == registration.StateRegistered && prev != registration.StateRegistered:
		lvl := slog.LevelInfo
		if (prev == registration.StatePending || prev == "") && r.quietFirst.Load() {
			// A big start: the progress lines report it (at 100,000 trunks these lines
			// cost about 6 % of the start's CPU).
			lvl = slog.LevelDebug
		}
		if r.log.Enabled(ctx, lvl) {
			r.log.LogAttrs(ctx, lvl, "registered", slog.String("trunk", rec.TrunkRef), slog.String("aor", rec.AOR),
				slog.String("target", rec.Target), slog.Int("expires", rec.GrantedExpires))
		}
	case rec.State == registration.StateRegistered:
		if r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.LogAttrs(ctx, slog.LevelDebug, "refreshed", slog.String("trunk", rec.TrunkRef), slog.Int("expires", rec.GrantedExpires))
		}
	default:
		lvl := slog.LevelWarn
		if prev == rec.State {
			lvl = slog.LevelDebug
		}
		if r.log.Enabled(ctx, lvl) {
			r.log.LogAttrs(ctx, lvl, "registration failed", slog.String("trunk", rec.TrunkRef), slog.String("state", string(rec.State)),
				slog.String("reason", o.Reason), slog.Int("failures", rec.Failures),
				slog.String("retry_in", rec.NextActionAt.Sub(now).Round(time.Second).String()))
		}
	}
	return rec
}

func (r *Reconciler) policy() registration.Policy {
	return registration.Policy{
		BackoffBase: r.spec.BackoffBase, BackoffMax: r.spec.BackoffMax,
		RejectedRetry: r.spec.RejectedRetry, AuthFailedRetry: r.spec.AuthFailedRetry,
	}
}

// unregister removes rec's binding (REGISTER with Expires 0), best effort: one
// exchange, whatever its answer. It reports whether the registrar removed it.
func (r *Reconciler) unregister(ctx context.Context, t trunk.Trunk, rec, base registration.Record) bool {
	user, domain := splitAOR(rec.AOR)
	host, port := splitTarget(rec.Target)
	if domain == "" || host == "" || rec.CallID == "" {
		return false
	}
	ep := r.spec.EdgePorts[0]
	for _, p := range r.spec.EdgePorts {
		if p.Address == rec.EdgePort {
			ep = p
		}
	}
	x, err := r.newExchange(t, rec, domain, port, rec.Transport, user, ep)
	if err != nil {
		return false
	}
	x.Reg.Expires = 0
	res := r.xr.Run(ctx, x, &rec, r.sender(&rec, base))
	if res.State != registration.StateRegistered {
		r.log.Warn("unregister failed; the binding will expire at the provider", "trunk", rec.TrunkRef, "reason", res.Reason)
		return false
	}
	r.log.Info("unregistered", "trunk", rec.TrunkRef, "aor", rec.AOR, "target", rec.Target)
	return true
}

// unregisterAll removes every live binding (shutdown with unregisterOnShutdown).
func (r *Reconciler) unregisterAll(ctx context.Context) {
	type job struct {
		t   trunk.Trunk
		rec registration.Record
	}
	r.mu.Lock()
	var jobs []job
	for _, e := range r.entries {
		if rec := e.record(); hadBinding(rec) {
			jobs = append(jobs, job{e.trunk, rec})
		}
	}
	r.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(max(1, r.spec.MaxInFlight))
	var removed atomic.Int64
	for _, j := range jobs {
		g.Go(func() error {
			if !r.unregister(ctx, j.t, j.rec, j.rec) {
				// The binding lives on at the provider: its record stays, so the
				// next process refreshes it instead of starting anew.
				return nil
			}
			removed.Add(1)
			j.rec.State = registration.StateUnregistered
			j.rec.NextAction, j.rec.NextActionAt = registration.ActionRegister, time.Time{}
			j.rec.ExpiresAt, j.rec.GrantedExpires = time.Time{}, 0
			r.mu.Lock()
			if e := r.entries[j.rec.TrunkRef]; e != nil && e.rec.CallID() == j.rec.CallID {
				// The entry too: a record not written now (the writer stopped at the
				// drain deadline) is written from the entry at the very end.
				j.rec.CSeqCeiling = max(j.rec.CSeqCeiling, e.rec.CSeqCeiling())
				e.setRecord(j.rec)
			}
			r.mu.Unlock()
			r.persist(j.rec.TrunkRef, j.rec)
			return nil
		})
	}
	_ = g.Wait()
	r.log.Info("unregistered on shutdown", "count", removed.Load(), "of", len(jobs))
}

func splitAOR(aor string) (user, domain string) {
	s := strings.TrimPrefix(aor, "sip:")
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

func splitTarget(target string) (string, int) {
	h, p, err := net.SplitHostPort(target)
	if err != nil {
		return target, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}
