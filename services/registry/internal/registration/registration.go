// Package registration holds the domain types of a trunk's binding: its state, the
// identity that must survive refreshes and restarts (Call-ID, From-tag, CSeq), and the
// expiry math of RFC 3261 §10.2.4. It is pure: no I/O, no clocks of its own.
package registration

import (
	"time"
)

// State is where a trunk's binding is in its lifecycle.
type State string

// The states of a binding. Every transition is driven by one classified outcome.
const (
	// StatePending: known, first REGISTER not sent yet.
	StatePending State = "pending"
	// StateRegistering: a REGISTER is in flight.
	StateRegistering State = "registering"
	// StateRegistered: the registrar granted a binding; refreshed before it expires.
	StateRegistered State = "registered"
	// StateAuthFailed: the registrar refused the credentials; retried after a long interval.
	StateAuthFailed State = "auth-failed"
	// StateRejected: refused for good (403, 404, other 4xx/6xx); retried after a long interval.
	StateRejected State = "rejected"
	// StateRetrying: a transient failure; retried with backoff.
	StateRetrying State = "retrying"
	// StateUnregistering: a REGISTER with Expires 0 is in flight.
	StateUnregistering State = "unregistering"
	// StateUnregistered: the binding was removed.
	StateUnregistered State = "unregistered"
)

// States lists every state, in lifecycle order.
var States = []State{
	StatePending, StateRegistering, StateRegistered, StateAuthFailed,
	StateRejected, StateRetrying, StateUnregistering, StateUnregistered,
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range States {
		if k == s {
			return true
		}
	}
	return false
}

// Action is what the registry will do next for a trunk.
type Action string

// The next actions.
const (
	ActionNone       Action = "none"
	ActionRegister   Action = "register"
	ActionRefresh    Action = "refresh"
	ActionRetry      Action = "retry"
	ActionUnregister Action = "unregister"
)

// Record is one trunk's binding as the registry keeps it in the store. It holds no
// secret: credentials are only ever referenced by a fingerprint. Another replica can
// continue the binding from a Record alone (same Call-ID and From-tag, next CSeq).
type Record struct {
	TrunkRef  string `json:"trunkRef"`
	TrunkName string `json:"trunkName,omitempty"`
	// AOR is the address-of-record, sip:user@domain.
	AOR string `json:"aor"`
	// Target is the host:port the REGISTER is sent to; Transport is udp or tcp.
	Target    string `json:"target"`
	Transport string `json:"transport"`
	// EdgePort is the host:port of the EdgePort the REGISTER is routed through.
	EdgePort string `json:"edgePort,omitempty"`
	// Fingerprint changes when the trunk's URI, user or credentials change.
	Fingerprint string `json:"fingerprint,omitempty"`

	State State `json:"state"`

	// Binding identity (RFC 3261 §10.2): the same for every REGISTER of this binding.
	CallID  string `json:"callId"`
	FromTag string `json:"fromTag"`
	// CSeq is the CSeq number of the last REGISTER sent for this binding (after a
	// restart or a takeover: the highest one that can have been sent).
	CSeq uint32 `json:"cseq"`
	// CSeqCeiling is the highest CSeq this binding may use before a new reservation
	// is written: no REGISTER goes on the wire with a CSeq above the ceiling durable in
	// the store, so whoever continues the binding from its record (a restart, another
	// replica) starts above every CSeq that can have been sent (RFC 3261 §10.2 asks only
	// for a higher CSeq, so the jump is allowed).
	CSeqCeiling uint32 `json:"cseqCeiling,omitempty"`

	// RequestedExpires is what the next REGISTER asks for (raised by a 423).
	RequestedExpires int `json:"requestedExpires,omitempty"`
	// MinExpires is the Min-Expires learned from a 423 (0 when none).
	MinExpires int `json:"minExpires,omitempty"`
	// NoGin is set once the registrar answered 420 to Require: gin.
	NoGin bool `json:"noGin,omitempty"`

	// GrantedExpires is the lifetime the registrar granted, in seconds.
	GrantedExpires  int       `json:"grantedExpires,omitempty"`
	ExpiresAt       time.Time `json:"expiresAt,omitzero"`
	RegisteredSince time.Time `json:"registeredSince,omitzero"`

	NextAction   Action    `json:"nextAction,omitempty"`
	NextActionAt time.Time `json:"nextActionAt,omitzero"`

	LastResponseCode int    `json:"lastResponseCode,omitempty"`
	LastResponseType string `json:"lastResponseType,omitempty"`
	LastReason       string `json:"lastReason,omitempty"`
	LastError        string `json:"lastError,omitempty"`
	// Failures counts consecutive failed attempts; reset by a success.
	Failures int `json:"failures,omitempty"`

	// Owner and Fence identify the replica holding the trunk's lease (several replicas).
	Owner string `json:"owner,omitempty"`
	Fence int64  `json:"fence,omitempty"`

	UpdatedAt time.Time `json:"updatedAt"`
}

// TopCSeq is the highest CSeq that can have gone on the wire for this binding, as far
// as its stored record tells: a process that continues the binding from the record
// sends TopCSeq()+1 next.
func (r Record) TopCSeq() uint32 { return max(r.CSeq, r.CSeqCeiling) }

// Registered reports whether the binding is live at now.
func (r Record) Registered(now time.Time) bool {
	return r.State == StateRegistered && now.Before(r.ExpiresAt)
}
