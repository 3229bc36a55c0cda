package registration

import (
	"testing"
	"time"
)

// TestNext is the README's States table, row by row.
func TestNext(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := Policy{BackoffBase: 30 * time.Second, BackoffMax: 30 * time.Minute, RejectedRetry: time.Hour, AuthFailedRetry: 2 * time.Hour}
	since := now.Add(-time.Hour)
	registered := Record{TrunkRef: "t", State: StateRegistered, GrantedExpires: 600, ExpiresAt: now.Add(5 * time.Minute),
		RegisteredSince: since, CallID: "c", CSeq: 7}
	pending := Record{TrunkRef: "t", State: StatePending, CallID: "c", CSeq: 0}
	answered := func(o Outcome, code int, typ string) Outcome {
		o.Answered, o.Code, o.Type, o.Phrase = true, code, typ, "x"
		return o
	}
	for _, c := range []struct {
		name string
		rec  Record
		o    Outcome
		r    float64
		// want
		state            State
		failures         int
		action           Action
		waitMin, waitMax time.Duration
		granted          int
		since            time.Time
		lastErr          string
		code             int
	}{
		{name: "200 after pending: registered, refresh at 50 % of 600 s (r=0)", rec: pending,
			o: answered(Outcome{State: StateRegistered, Granted: 600}, 200, "OK"), r: 0,
			state: StateRegistered, action: ActionRefresh, waitMin: 300 * time.Second, waitMax: 300 * time.Second,
			granted: 600, since: now, code: 200},
		{name: "200 refresh: refresh at 80 % (r≈1), never later than 10 s before expiry; since kept", rec: registered,
			o: answered(Outcome{State: StateRegistered, Granted: 600}, 200, "OK"), r: 0.999999,
			state: StateRegistered, action: ActionRefresh, waitMin: 479 * time.Second, waitMax: 480 * time.Second,
			granted: 600, since: since, code: 200},
		{name: "short grant: refresh half-way", rec: pending,
			o: answered(Outcome{State: StateRegistered, Granted: 8}, 200, "OK"), r: 0.5,
			state: StateRegistered, action: ActionRefresh, waitMin: 4 * time.Second, waitMax: 4 * time.Second, granted: 8, since: now, code: 200},
		{name: "503 first failure: backoff 50-100 % of base·2", rec: pending,
			o: answered(Outcome{State: StateRetrying, Reason: "503 Service Unavailable"}, 503, "SERVICE_UNAVAILABLE"), r: 0,
			state: StateRetrying, failures: 1, action: ActionRetry, waitMin: 30 * time.Second, waitMax: 30 * time.Second,
			lastErr: "503 Service Unavailable", code: 503},
		{name: "Retry-After is honoured instead of the backoff", rec: pending,
			o: answered(Outcome{State: StateRetrying, Reason: "503", RetryAfter: 7 * time.Second}, 503, "SERVICE_UNAVAILABLE"), r: 0.5,
			state: StateRetrying, failures: 1, action: ActionRetry, waitMin: 7 * time.Second, waitMax: 7 * time.Second, lastErr: "503", code: 503},
		{name: "transient while the binding lives: retry before half its life left", rec: registered,
			o: Outcome{State: StateRetrying, Reason: "requester: Unavailable"}, r: 0.99,
			state: StateRetrying, failures: 1, action: ActionRetry, waitMin: 30 * time.Second, waitMax: 60 * time.Second,
			granted: 600, since: since, lastErr: "requester: Unavailable"},
		{name: "transient with a long backoff, binding alive: clamped to half the time left", rec: func() Record {
			r := registered
			r.Failures = 10
			return r
		}(), o: Outcome{State: StateRetrying, Reason: "timeout"}, r: 0.99,
			state: StateRetrying, failures: 11, action: ActionRetry, waitMin: 150 * time.Second, waitMax: 150 * time.Second,
			granted: 600, since: since, lastErr: "timeout"},
		{name: "credentials refused: auth-failed, authFailedRetry", rec: pending,
			o:     answered(Outcome{State: StateAuthFailed, Reason: "credentials refused"}, 401, "UNAUTHORIZED"),
			state: StateAuthFailed, failures: 1, action: ActionRetry, waitMin: 2 * time.Hour, waitMax: 2 * time.Hour,
			lastErr: "credentials refused", code: 401},
		{name: "403: rejected, rejectedRetry", rec: pending,
			o:     answered(Outcome{State: StateRejected, Reason: "403 Forbidden"}, 403, "FORBIDDEN"),
			state: StateRejected, failures: 1, action: ActionRetry, waitMin: time.Hour, waitMax: time.Hour,
			lastErr: "403 Forbidden", code: 403},
		{name: "failure after expiry: the grant is gone", rec: func() Record {
			r := registered
			r.ExpiresAt = now.Add(-time.Second)
			return r
		}(), o: Outcome{State: StateRetrying, Reason: "timeout"}, r: 0,
			state: StateRetrying, failures: 1, action: ActionRetry, waitMin: 30 * time.Second, waitMax: 30 * time.Second,
			granted: 0, since: since, lastErr: "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Next(c.rec, c.o, p, now, c.r)
			wait := got.NextActionAt.Sub(now)
			switch {
			case got.State != c.state:
				t.Errorf("state %s, want %s", got.State, c.state)
			case got.Failures != c.failures:
				t.Errorf("failures %d, want %d", got.Failures, c.failures)
			case got.NextAction != c.action:
				t.Errorf("next action %s, want %s", got.NextAction, c.action)
			case wait < c.waitMin || wait > c.waitMax:
				t.Errorf("next action in %s, want %s..%s", wait, c.waitMin, c.waitMax)
			case got.GrantedExpires != c.granted:
				t.Errorf("granted %d, want %d", got.GrantedExpires, c.granted)
			case !got.RegisteredSince.Equal(c.since):
				t.Errorf("registered since %v, want %v", got.RegisteredSince, c.since)
			case got.LastError != c.lastErr:
				t.Errorf("last error %q, want %q", got.LastError, c.lastErr)
			case got.LastResponseCode != c.code:
				t.Errorf("last code %d, want %d", got.LastResponseCode, c.code)
			case !got.UpdatedAt.Equal(now):
				t.Errorf("updated at %v, want now", got.UpdatedAt)
			case got.CallID != c.rec.CallID || got.CSeq != c.rec.CSeq:
				t.Errorf("binding identity changed: %s/%d", got.CallID, got.CSeq)
			}
			if c.state == StateRegistered && !got.ExpiresAt.Equal(now.Add(time.Duration(c.granted)*time.Second)) {
				t.Errorf("expires at %v, want now + %d s", got.ExpiresAt, c.granted)
			}
		})
	}
}
