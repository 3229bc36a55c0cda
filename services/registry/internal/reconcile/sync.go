package reconcile

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/config"
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

// syncKey brings one trunk in line: remove a replaced binding, unregister an unwanted
// trunk, or register a wanted one; then schedule what comes next.
func (r *Reconciler) syncKey(ctx context.Context, key string) {
	r.mu.Lock()
	e := r.entries[key]
	if e == nil {
		r.mu.Unlock()
		return
	}
	target := e.rec.Target
	if e.valid && len(e.trunk.URIs) > 0 {
		u := e.trunk.URIs[e.uriIdx%len(e.trunk.URIs)]
		target = net.JoinHostPort(u.Host, strconv.Itoa(portOr5060(u.Port)))
	}
	if r.targets[target] >= r.perTargetCap() {
		// Fairness: one slow provider may hold only its share of the workers.
		r.parked[target] = append(r.parked[target], key)
		r.mu.Unlock()
		return
	}
	if e.handover {
		r.mu.Unlock()
		r.handOver(ctx, key, e)
		return
	}
	if e.claiming {
		r.mu.Unlock()
		r.sched.at(key, r.clock().Add(100*time.Millisecond))
		return
	}
	if _, ok := r.own.Valid(key); !ok {
		// The lease ran out by this replica's clock: send nothing; the lease loop
		// renews it or hands the trunk over.
		r.mu.Unlock()
		r.sched.at(key, r.clock().Add(time.Second))
		return
	}
	r.targets[target]++
	waiters := e.waiters
	e.waiters = nil
	e.forcePending = false
	if len(waiters) > 0 {
		e.forcedAt = r.clock()
	}
	e.inflight = e.wanted && e.valid
	old := e.old
	e.old = nil
	wanted, valid := e.wanted, e.valid
	t, rec, uriIdx, epIdx := e.trunk, e.rec, e.uriIdx, e.epIdx
	gen := e.rec.CallID
	r.mu.Unlock()
	defer r.releaseTarget(target)

	if old != nil {
		r.unregister(ctx, t, *old, *old)
	}
	if !wanted {
		if hadBinding(rec) {
			base := rec
			rec.State = registration.StateUnregistering
			rec.NextAction = registration.ActionUnregister
			r.update(key, e, gen, rec, uriIdx, epIdx, nil)
			r.unregister(ctx, t, rec, base)
		}
		r.remove(ctx, key, e)
		rec.State = registration.StateUnregistered
		notify(waiters, rec)
		return
	}
	if !valid {
		notify(waiters, rec)
		return
	}
	rec, uriIdx, epIdx = r.register(ctx, key, e, gen, t, rec, uriIdx, epIdx)
	r.update(key, e, gen, rec, uriIdx, epIdx, waiters)
}

func notify(waiters []chan registration.Record, rec registration.Record) {
	for _, w := range waiters {
		w <- rec
	}
}

func portOr5060(p int) int {
	if p == 0 {
		return 5060
	}
	return p
}

func (r *Reconciler) perTargetCap() int {
	return max(1, r.spec.MaxInFlight/4)
}

func (r *Reconciler) releaseTarget(target string) {
	r.mu.Lock()
	r.targets[target]--
	if r.targets[target] <= 0 {
		delete(r.targets, target)
	}
	var next string
	if p := r.parked[target]; len(p) > 0 {
		next = p[0]
		if len(p) == 1 {
			delete(r.parked, target)
		} else {
			r.parked[target] = p[1:]
		}
	}
	r.mu.Unlock()
	if next != "" {
		r.queue.add(next)
	}
}

// update stores the outcome of a sync in the entry (unless the trunk's binding was
// replaced meanwhile), persists it, tells watchers and schedules the next action.
func (r *Reconciler) update(key string, e *entry, gen string, rec registration.Record, uriIdx, epIdx int, waiters []chan registration.Record) {
	r.mu.Lock()
	cur := r.entries[key]
	inFlight := rec.State == registration.StateRegistering || rec.State == registration.StateUnregistering
	if cur != e || e.rec.CallID != gen {
		if !inFlight {
			e.inflight = false
		}
		// The trunk changed while the REGISTER was in flight: this binding is the old one.
		if cur != nil && hadBinding(rec) && cur.old == nil && rec.CallID != cur.rec.CallID {
			// (The same Call-ID is the live binding, taken back by this replica
			// meanwhile: never unregistered as an old one.)
			old := rec
			cur.old = &old
		}
		r.mu.Unlock()
		notify(waiters, rec)
		r.queue.add(key)
		return
	}
	fp, name := e.rec.Fingerprint, e.rec.TrunkName
	rec.Fingerprint, rec.TrunkName = fp, name
	if e.rec.Fence > rec.Fence {
		// The lease was taken again meanwhile (a new fence): the record says so.
		rec.Owner, rec.Fence = e.rec.Owner, e.rec.Fence
	}
	// A write confirmed meanwhile may have raised the binding's CSeq ceiling.
	rec.CSeqCeiling = max(rec.CSeqCeiling, e.rec.CSeqCeiling)
	e.rec, e.uriIdx, e.epIdx = rec, uriIdx, epIdx
	r.publishLocked(rec, false)
	var riders []chan registration.Record
	if !inFlight && e.inflight {
		// Forces that came while the REGISTER was in flight take its outcome: they
		// coalesce, and send nothing more.
		e.inflight = false
		riders, e.waiters = e.waiters, nil
	}
	again := len(e.waiters) > 0
	r.mu.Unlock()
	notify(waiters, rec)
	notify(riders, rec)
	if !rec.NextActionAt.IsZero() && !inFlight {
		r.sched.at(key, rec.NextActionAt)
	}
	if again {
		r.queue.add(key)
	}
	if rec.State != registration.StateRegistering && rec.State != registration.StateUnregistering {
		// In-flight states are published, not written: the outcome is written next.
		r.persist(key, rec)
	}
}

// remove forgets a trunk after its binding was removed.
func (r *Reconciler) remove(ctx context.Context, key string, e *entry) {
	r.mu.Lock()
	if r.entries[key] != e || e.wanted {
		r.mu.Unlock()
		return
	}
	delete(r.entries, key)
	rec := e.rec
	rec.State = registration.StateUnregistered
	r.mu.Unlock()
	r.sched.cancel(key)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	delErr := r.st.Delete(dctx, key)
	if delErr != nil {
		r.storeFailed(delErr)
	}
	if r.coord != nil && delErr == nil {
		// Other replicas' mirrors drop the record too (when the delete failed, it
		// stays until its TTL, there as here).
		if err := r.coord.PublishDeleted(dctx, []string{key}); err != nil {
			r.log.Debug("publishing a removal failed; other replicas' watchers miss it", "trunk", key, "err", err)
		}
	}
	r.own.Release(dctx, []string{key})
	r.mu.Lock()
	r.publishLocked(rec, true)
	r.mu.Unlock()
}

// exchange is one REGISTER transaction as the registrant sees it: send, and resend
// once for each of a digest challenge (direct mode), a stale nonce, 423 and 420. rec's
// CSeq, MinExpires and NoGin are updated as it goes.
type exchange struct {
	reg   sipmsg.Register
	cred  sipauth.Credentials
	creds bool
	// base is the binding's record before this exchange: what a CSeq reservation
	// writes (with the new ceiling), never an in-flight state.
	base registration.Record
}

// result is the final answer of an exchange.
type result struct {
	out    sipmsg.Outcome
	err    error // transport or Requester error (transient)
	state  registration.State
	reason string // why it failed, for the record (never a secret)
}

func (r *Reconciler) run(ctx context.Context, x exchange, rec *registration.Record) (res result) {
	ctx, span := r.startExchange(ctx, rec, x.reg.Expires)
	cseq0 := rec.CSeq
	defer endExchange(span, &res, rec, cseq0)
	var ch *sipauth.Challenge
	var nc uint32
	staleUsed, did423, did420 := false, false, false
	for attempt := range maxAttempts {
		rec.CSeq++
		x.reg.CSeq = rec.CSeq
		x.reg.Gin = r.spec.Gin && !rec.NoGin
		x.reg.Auth = nil
		if ch != nil {
			nc++
			a, err := sipauth.Answer(*ch, x.cred, "REGISTER", x.reg.RequestURI(), nc, "")
			if err != nil {
				return result{state: registration.StateAuthFailed, reason: "cannot answer the challenge: " + err.Error()}
			}
			x.reg.Auth = &a
		}
		req, err := sipmsg.BuildChecked(x.reg)
		if err != nil {
			// Defence in depth: the trunk's data was checked at discovery; nothing
			// the SIP grammar forbids goes on the wire all the same.
			return result{state: registration.StateRejected, reason: "cannot build the REGISTER: " + err.Error()}
		}
		resp, took, err := r.send(ctx, rec, x.base, req, attempt == 0 && x.reg.Expires > 0)
		switch {
		case err == nil:
		case errors.Is(err, errNotOwner), errors.Is(err, errNotDurable), ctx.Err() != nil:
			// Nothing went out (or our own shutdown cut the exchange): not a
			// registrar's answer, not counted as one.
			return result{err: err, state: registration.StateRetrying, reason: err.Error()}
		default:
			r.obs.Sent("error", took)
			return result{err: err, state: registration.StateRetrying, reason: errorReason(err)}
		}
		out, err := sipmsg.Read(resp, x.reg.Expires)
		if err != nil {
			r.obs.Sent("error", took)
			return result{err: err, state: registration.StateRetrying, reason: err.Error()}
		}
		r.obs.Sent(out.Class.String(), took)
		traceAnswer(span, int(rec.CSeq-cseq0), rec.CSeq, x.reg.Auth != nil, out)
		switch out.Class {
		case sipmsg.ClassOK:
			return result{out: out, state: registration.StateRegistered}
		case sipmsg.ClassChallenge:
			if r.spec.AuthMode == config.AuthEdgePort {
				return result{out: out, state: registration.StateAuthFailed,
					reason: "challenged through Routr: the EdgePort's answer from X-Gateway-Auth was refused (wrong credentials?)"}
			}
			if !x.creds {
				return result{out: out, state: registration.StateAuthFailed, reason: "challenged, but the trunk has no outbound credentials"}
			}
			c, err := sipauth.ChallengeFrom(resp.GetMessage())
			if err != nil {
				return result{out: out, state: registration.StateAuthFailed, reason: "unusable challenge: " + err.Error()}
			}
			if ch != nil {
				if !c.Stale || staleUsed {
					return result{out: out, state: registration.StateAuthFailed,
						reason: "credentials refused: challenged again after answering"}
				}
				staleUsed = true
			}
			ch, nc = &c, 0
			r.log.Debug("challenged; answering", "trunk", rec.TrunkRef, "proxy", c.Proxy, "realm", c.Realm,
				"algorithm", c.Algorithm, "stale", c.Stale)
		case sipmsg.ClassIntervalTooBrief:
			if did423 || out.MinExpires <= x.reg.Expires {
				return result{out: out, state: registration.StateRejected,
					reason: fmt.Sprintf("423 with Min-Expires %d for Expires %d", out.MinExpires, x.reg.Expires)}
			}
			did423 = true
			r.log.Info("interval too brief; asking for Min-Expires from now on", "trunk", rec.TrunkRef,
				"asked", x.reg.Expires, "min_expires", out.MinExpires)
			rec.MinExpires = out.MinExpires
			x.reg.Expires = out.MinExpires
			rec.RequestedExpires = out.MinExpires
		case sipmsg.ClassBadExtension:
			if did420 || !x.reg.Gin {
				return result{out: out, state: registration.StateRejected, reason: "420 Bad Extension: " + strings.Join(out.Unsupported, ",")}
			}
			did420 = true
			r.log.Info("registrar does not support gin; sending without it from now on", "trunk", rec.TrunkRef)
			rec.NoGin = true
		case sipmsg.ClassRejected:
			return result{out: out, state: registration.StateRejected, reason: reasonOf(out)}
		default:
			return result{out: out, state: registration.StateRetrying, reason: reasonOf(out)}
		}
	}
	return result{state: registration.StateRejected, reason: "too many REGISTERs for one attempt"}
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

// send paces and sends one REGISTER of rec's binding. Every wait comes first (the rate
// limiter, a CSeq reservation); the lease is checked after them, at the last moment
// before SendMessage, by this replica's own clock: a REGISTER whose lease ran out
// meanwhile (a pause, a partition) is dropped, not sent.
//
// first marks the first REGISTER of a refresh (not an unregister): if the binding expired before
// it could go out, the registry fell behind its schedule (noteLapse).
func (r *Reconciler) send(ctx context.Context, rec *registration.Record, base registration.Record, req *requesterv2beta1.SendMessageRequest, first bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
	if err := r.limiter.Wait(ctx); err != nil {
		return nil, 0, err
	}
	if err := r.reserveCSeq(rec, base); err != nil {
		return nil, 0, err
	}
	if fence, ok := r.own.Valid(rec.TrunkRef); !ok || fence != rec.Fence {
		// Not held, or held again under another fence: another replica may have
		// owned the trunk in between, and this REGISTER was built before that.
		return nil, 0, errNotOwner
	}
	if now := r.clock(); first && lapsedBefore(base, now) && base.ExpiresAt.After(r.started) {
		// A binding alive when this process started expired before its refresh went
		// out (a restart after a long downtime is not counted).
		r.noteLapse(base, now)
	}
	start := time.Now()
	resp, err := r.req.SendMessage(ctx, req)
	return resp, time.Since(start), err
}

// newExchange prepares the REGISTER of rec's binding to uri through edge port ep.
func (r *Reconciler) newExchange(t trunk.Trunk, rec registration.Record, domain string, port int, transport, user string, ep config.EdgePort) (exchange, error) {
	x := exchange{
		reg: sipmsg.Register{
			Domain: domain, Port: port, Transport: transport, User: user,
			CallID: rec.CallID, FromTag: rec.FromTag,
			EdgePortHost: ep.Host, EdgePortPort: ep.Port,
			Methods: r.spec.Methods, UserAgent: r.spec.UserAgent,
		},
		cred:  sipauth.Credentials{Username: t.Username, Password: t.Password},
		creds: t.HasCredentials(),
	}
	if r.spec.AuthMode == config.AuthEdgePort {
		x.reg.GatewayAuth = anonymousGatewayAuth
		if x.creds {
			v, err := sipauth.GatewayAuth(x.cred)
			if err != nil {
				return x, err
			}
			x.reg.GatewayAuth = v
		}
	}
	return x, nil
}

// register sends the REGISTER of a wanted trunk and turns the answer into its next state.
func (r *Reconciler) register(ctx context.Context, key string, e *entry, gen string, t trunk.Trunk, rec registration.Record, uriIdx, epIdx int) (registration.Record, int, int) {
	u := t.URIs[uriIdx%len(t.URIs)]
	ep := r.spec.EdgePorts[epIdx%len(r.spec.EdgePorts)]
	user := t.User(u)
	rec.AOR = sipmsg.AOR(user, u.Host)
	rec.Target = net.JoinHostPort(u.Host, strconv.Itoa(portOr5060(u.Port)))
	rec.Transport = u.Transport
	rec.EdgePort = ep.Address
	if fence, ok := r.own.Valid(key); ok {
		rec.Owner, rec.Fence = r.own.ID(), fence
	}
	asked := max(r.spec.Expires, rec.MinExpires)
	rec.RequestedExpires = asked
	prev := rec.State
	prior := rec

	x, err := r.newExchange(t, rec, u.Host, u.Port, u.Transport, user, ep)
	if err != nil {
		rec = r.next(rec, prev, registration.Outcome{State: registration.StateRejected,
			Reason: "credentials cannot travel in X-Gateway-Auth: " + err.Error()})
		return rec, uriIdx, epIdx
	}
	now := r.clock()
	x.reg.Expires = asked
	x.base = prior

	rec.State = registration.StateRegistering
	rec.NextAction = registration.ActionNone
	rec.UpdatedAt = now
	r.update(key, e, gen, rec, uriIdx, epIdx, nil)

	res := r.run(ctx, x, &rec)
	if errors.Is(res.err, errNotOwner) || res.err != nil && ctx.Err() != nil {
		// The lease ran out, or our own shutdown cut the exchange: not the
		// registrar's doing. The record stays as it was before this attempt (state,
		// failures, next action), so the owner or the next process continues the
		// schedule; the CSeq moves on, since the REGISTER may have gone out.
		prior.CSeq, prior.CSeqCeiling = rec.CSeq, rec.CSeqCeiling
		return prior, uriIdx, epIdx
	}
	out := registration.Outcome{State: res.state, Reason: res.reason}
	if res.err == nil {
		out.Answered, out.Code, out.Type, out.Phrase = true, res.out.Code, res.out.Type.String(), res.out.Reason
		out.Granted, out.RetryAfter = res.out.Granted, res.out.RetryAfter
	}
	if res.state == registration.StateRetrying && (res.err != nil || res.out.Type == sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT) {
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

// next applies an outcome to rec (registration.Next) and logs the change: a success
// once per change of state, a failure at warn when the state changes, else at debug.
func (r *Reconciler) next(rec registration.Record, prev registration.State, o registration.Outcome) registration.Record {
	now := r.clock()
	rec = registration.Next(rec, o, r.policy(), now, mrand.Float64())
	switch {
	case rec.State == registration.StateRegistered && prev != registration.StateRegistered:
		r.log.Info("registered", "trunk", rec.TrunkRef, "aor", rec.AOR, "target", rec.Target, "expires", rec.GrantedExpires)
	case rec.State == registration.StateRegistered:
		r.log.Debug("refreshed", "trunk", rec.TrunkRef, "expires", rec.GrantedExpires)
	default:
		lvl := r.log.Warn
		if prev == rec.State {
			lvl = r.log.Debug
		}
		lvl("registration failed", "trunk", rec.TrunkRef, "state", string(rec.State), "reason", o.Reason,
			"failures", rec.Failures, "retry_in", rec.NextActionAt.Sub(now).Round(time.Second).String())
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
	x.reg.Expires = 0
	x.base = base
	res := r.run(ctx, x, &rec)
	if res.state != registration.StateRegistered {
		r.log.Warn("unregister failed; the binding will expire at the provider", "trunk", rec.TrunkRef, "reason", res.reason)
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
		if hadBinding(e.rec) {
			jobs = append(jobs, job{e.trunk, e.rec})
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
			if e := r.entries[j.rec.TrunkRef]; e != nil && e.rec.CallID == j.rec.CallID {
				// The entry too: a record not written now (the writer stopped at the
				// drain deadline) is written from the entry at the very end.
				j.rec.CSeqCeiling = max(j.rec.CSeqCeiling, e.rec.CSeqCeiling)
				e.rec = j.rec
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
