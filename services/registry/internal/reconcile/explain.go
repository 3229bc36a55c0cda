package reconcile

import (
	"fmt"
	"strconv"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// Explanation is what the registry will do next for a trunk, and the REGISTER it would
// send, as the Requester would receive it, secrets redacted.
type Explanation struct {
	Record  registration.Record
	Request *requesterv2beta1.SendMessageRequest
	Reason  string
}

// Explain describes the next action for ref.
func (r *Reconciler) Explain(ref string) (Explanation, error) {
	r.mu.Lock()
	e, ok := r.entries[ref]
	if !ok {
		r.mu.Unlock()
		if r.coord != nil {
			return Explanation{}, r.notOwner(ref)
		}
		return Explanation{}, fmt.Errorf("%w: %s", ErrUnknownTrunk, ref)
	}
	t, rec, uriIdx, epIdx, wanted, valid := e.trunk, e.record(), int(e.uriIdx), int(e.epIdx), e.wanted, e.valid
	r.mu.Unlock()
	x := Explanation{Record: rec}
	if due := r.sched.Next(e); !due.IsZero() {
		x.Record.NextActionAt = due
	}
	when := "now"
	if at := x.Record.NextActionAt; !at.IsZero() {
		if d := at.Sub(r.clock()); d > 0 {
			when = "in " + d.Round(time.Second).String() + " (" + at.UTC().Format(time.RFC3339) + ")"
		}
	}
	switch {
	case !valid:
		x.Reason = "the trunk's API data cannot be used: " + rec.LastError
		return x, nil
	case !wanted:
		x.Reason = "the trunk is no longer marked sendRegister: its binding is removed " + when
	default:
		x.Reason = reasonFor(rec) + "; next REGISTER " + when
	}
	xc, _, err := r.nextRegister(t, rec, uriIdx, epIdx)
	if err != nil {
		x.Reason += "; it cannot be sent: " + err.Error()
		return x, nil
	}
	xc.Reg.CSeq = rec.CSeq + 1
	xc.Reg.Gin = r.spec.Gin && !rec.NoGin
	if !wanted {
		xc.Reg.Expires = 0
	}
	if err := xc.Reg.Validate(); err != nil {
		x.Reason += "; it cannot be sent: " + err.Error()
	}
	req := sipmsg.Build(xc.Reg)
	req.Message = sipauth.Redact(req.GetMessage())
	x.Request = req
	return x, nil
}

func reasonFor(rec registration.Record) string {
	switch rec.State {
	case registration.StatePending, "":
		return "first registration, spread over the startup window"
	case registration.StateRegistering:
		return "a REGISTER is in flight"
	case registration.StateRegistered:
		return "registered until " + rec.ExpiresAt.UTC().Format(time.RFC3339) + "; refreshed before it expires"
	case registration.StateRetrying:
		return "retrying after " + strconv.Itoa(rec.Failures) + " failure(s) with backoff: " + rec.LastError
	case registration.StateAuthFailed:
		return "authentication failed (" + rec.LastError + "); retried after the auth-failed interval"
	case registration.StateRejected:
		return "rejected by the registrar (" + rec.LastError + "); retried after the rejected interval"
	case registration.StateUnregistering:
		return "its binding is being removed"
	}
	return string(rec.State)
}
