package reconcile

// The first REGISTER of each trunk in this process: when it goes out (a live binding
// keeps its refresh time; anything else lands in the startup window) and the identity
// a fresh binding starts with.

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// Without startupSpread in the file, the first REGISTERs scheduled together are spread
// over a 20,000th of a second per trunk, at most 5 s: 2,000 trunks over 0.1 s, 100,000
// over 5 s.
const (
	spreadPerTrunk = time.Second / 20000
	maxAutoSpread  = 5 * time.Second
)

// startupWindow is the window over which a pass (a start, a claim) spreads the first
// REGISTERs of n trunks: startupSpread when the file gives it, else scaled with n.
func (r *Reconciler) startupWindow(n int) time.Duration {
	if !r.spec.StartupSpreadAuto {
		return r.spec.StartupSpread
	}
	if n >= int(maxAutoSpread/spreadPerTrunk) {
		return maxAutoSpread
	}
	return time.Duration(n) * spreadPerTrunk
}

// liveBinding reports whether a record loaded or claimed is a binding still alive, with
// its refresh time.
func liveBinding(rec registration.Record, now time.Time) bool {
	return rec.State == registration.StateRegistered && rec.ExpiresAt.After(now) && !rec.NextActionAt.IsZero()
}

// keepsTime reports whether a record loaded or claimed keeps its next action's time
// for its first REGISTER in this run, rather than being spread over the startup window:
// a live binding, or a retry or long wait that is still ahead.
func keepsTime(rec registration.Record, now time.Time) bool {
	return liveBinding(rec, now) ||
		!rec.NextActionAt.IsZero() && rec.NextActionAt.After(now) && rec.State != registration.StatePending
}

// scheduleFirst places the first REGISTER of a trunk in this run (r.mu held): a live
// binding loaded from the cache keeps its refresh time; anything else is spread over
// the startup window.
func (r *Reconciler) scheduleFirst(e *entry, now time.Time, window time.Duration) {
	rec := e.record()
	if liveBinding(rec, now) {
		at := rec.NextActionAt
		if latest := rec.ExpiresAt.Add(-registration.RefreshMargin); at.After(latest) {
			at = latest
		}
		r.sched.At(e, at)
		return
	}
	if keepsTime(rec, now) {
		// A retry or a long wait after a refusal survives the restart.
		r.sched.At(e, rec.NextActionAt)
		return
	}
	var spread time.Duration
	if window > 0 {
		spread = time.Duration(mrand.Int64N(int64(window)))
	}
	at := now.Add(spread)
	rec.NextAction, rec.NextActionAt = registration.ActionRegister, at
	if rec.State == "" {
		rec.State = registration.StatePending
	}
	e.setRecord(rec)
	r.sched.At(e, at)
}

func hadBinding(rec registration.Record) bool {
	switch rec.State {
	case registration.StateRegistered, registration.StateRegistering, registration.StateRetrying:
		return rec.CallID != ""
	}
	return false
}

// freshRecord is a new binding of t: a Call-ID and From-tag of its own, and the AOR and
// registrar of its first URI (what its first REGISTER goes to, unless the entry tries
// another URI: nextRegister sets them then), so that the record's texts are copied
// once for a new binding, not again by the REGISTER's in-flight state.
func (r *Reconciler) freshRecord(t trunk.Trunk, fingerprint string) registration.Record {
	rec := registration.Record{
		TrunkRef: t.Ref, TrunkName: t.Name, State: registration.StatePending, Fingerprint: fingerprint,
	}
	rec.CallID, rec.FromTag = newIDs()
	if len(t.URIs) > 0 {
		u := t.URIs[0]
		if user := t.User(u); user != "" {
			rec.AOR = sipmsg.AOR(user, u.Host)
		}
		rec.Target = targetOf(u)
	}
	return rec
}

// newIDs are a fresh binding's Call-ID (32 random hex digits and "@sipreg") and
// From-tag (16 random hex digits): one read of the system's randomness and one
// string for both (a binding is made per trunk at a start).
func newIDs() (callID, fromTag string) {
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	const host = "@sipreg"
	var b [48 + len(host)]byte
	hex.Encode(b[:32], raw[:16])
	copy(b[32:], host)
	hex.Encode(b[32+len(host):], raw[16:])
	s := string(b[:])
	return s[:32+len(host)], s[32+len(host):]
}
