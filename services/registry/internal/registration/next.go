package registration

import "time"

// Outcome is how one REGISTER exchange ended, classified: what Next needs of it.
type Outcome struct {
	// State is where the answer leads: StateRegistered, StateRetrying,
	// StateAuthFailed or StateRejected.
	State State
	// Granted is the lifetime the registrar granted, in seconds (StateRegistered).
	Granted int
	// RetryAfter is the registrar's Retry-After (0: none).
	RetryAfter time.Duration
	// Reason says why the exchange failed (never a secret).
	Reason string
	// Answered is true when a SIP answer came back (Code, Type and Phrase are its);
	// false after a transport or Requester error.
	Answered bool
	Code     int
	Type     string
	Phrase   string
}

// Policy holds the waits of the state machine.
type Policy struct {
	// BackoffBase and BackoffMax shape the backoff of transient failures.
	BackoffBase, BackoffMax time.Duration
	// RejectedRetry is the wait after a final refusal; AuthFailedRetry after refused
	// credentials.
	RejectedRetry, AuthFailedRetry time.Duration
}

// Next is rec after the exchange that ended with o at now: the transitions of the
// README's States table. r is a uniform random number in [0, 1): the refresh point of a
// grant, or the jitter of a backoff.
//
//   - registered: the binding lives Granted seconds from now, refreshed at a random point
//     in 50-80 % of it (never later than RefreshMargin before expiry); failures reset.
//   - retrying: backoff (RFC 5626 §4.5) or the registrar's Retry-After, and while the
//     binding still lives, before it runs out.
//   - auth-failed, rejected: a long wait (AuthFailedRetry, RejectedRetry).
//
// Every failure counts in Failures and keeps its Reason in LastError; a binding whose
// expiry passed has no granted lifetime any more.
func Next(rec Record, o Outcome, p Policy, now time.Time, r float64) Record {
	prev := rec.State
	rec.UpdatedAt = now
	if o.Answered {
		rec.LastResponseCode, rec.LastResponseType, rec.LastReason = o.Code, o.Type, o.Phrase
	} else {
		rec.LastResponseCode, rec.LastResponseType, rec.LastReason = 0, "", ""
	}
	if o.State == StateRegistered {
		rec.State = StateRegistered
		rec.GrantedExpires = o.Granted
		rec.ExpiresAt = now.Add(time.Duration(o.Granted) * time.Second)
		if prev != StateRegistered || rec.RegisteredSince.IsZero() {
			rec.RegisteredSince = now
		}
		rec.Failures = 0
		rec.LastError = ""
		rec.NextAction = ActionRefresh
		rec.NextActionAt = now.Add(RefreshAfter(o.Granted, r))
		return rec
	}
	rec.State = o.State
	rec.Failures++
	rec.LastError = o.Reason
	var wait time.Duration
	switch o.State {
	case StateAuthFailed:
		wait = p.AuthFailedRetry
	case StateRejected:
		wait = p.RejectedRetry
	default:
		wait = Backoff(rec.Failures, p.BackoffBase, p.BackoffMax, r)
		if o.RetryAfter > 0 {
			wait = o.RetryAfter
		}
		// While the binding still lives, retry before it runs out.
		if left := rec.ExpiresAt.Sub(now); left > 2*time.Second && wait > left/2 {
			wait = left / 2
		}
	}
	rec.NextAction = ActionRetry
	rec.NextActionAt = now.Add(wait)
	if !rec.ExpiresAt.After(now) {
		rec.GrantedExpires = 0
	}
	return rec
}
