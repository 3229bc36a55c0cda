package controlapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/registration"
)

// stateToProto maps every domain state to its enum value; anything else is UNSPECIFIED.
func stateToProto(s registration.State) registryv1.RegistrationState {
	switch s {
	case registration.StatePending:
		return registryv1.RegistrationState_REGISTRATION_STATE_PENDING
	case registration.StateRegistering:
		return registryv1.RegistrationState_REGISTRATION_STATE_REGISTERING
	case registration.StateRegistered:
		return registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED
	case registration.StateAuthFailed:
		return registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED
	case registration.StateRejected:
		return registryv1.RegistrationState_REGISTRATION_STATE_REJECTED
	case registration.StateRetrying:
		return registryv1.RegistrationState_REGISTRATION_STATE_RETRYING
	case registration.StateUnregistering:
		return registryv1.RegistrationState_REGISTRATION_STATE_UNREGISTERING
	case registration.StateUnregistered:
		return registryv1.RegistrationState_REGISTRATION_STATE_UNREGISTERED
	}
	return registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED
}

// toProto renders a record for the API. A Record holds no secret (credentials are only
// referenced by a fingerprint, which is not shown either).
func toProto(r registration.Record) *registryv1.Registration {
	return &registryv1.Registration{
		TrunkRef:              r.TrunkRef,
		TrunkName:             r.TrunkName,
		Aor:                   r.AOR,
		Target:                r.Target,
		Transport:             r.Transport,
		EdgePort:              r.EdgePort,
		State:                 stateToProto(r.State),
		LastResponseCode:      clampInt32(r.LastResponseCode),
		LastResponseType:      r.LastResponseType,
		LastReason:            r.LastReason,
		GrantedExpiresSeconds: clampInt32(r.GrantedExpires),
		ExpiresAt:             timestamp(r.ExpiresAt),
		NextAction:            string(r.NextAction),
		NextActionAt:          timestamp(r.NextActionAt),
		FailureCount:          clampInt32(r.Failures),
		LastError:             r.LastError,
		CallId:                r.CallID,
		Cseq:                  r.CSeq,
		UpdatedAt:             timestamp(r.UpdatedAt),
		RegisteredSince:       timestamp(r.RegisteredSince),
		Owner:                 r.Owner,
		FencingToken:          r.Fence,
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func clampInt32(v int) int32 {
	return int32(max(math.MinInt32, min(v, math.MaxInt32)))
}

// stateFilter is a set of domain states; an empty filter matches every record.
type stateFilter map[registration.State]bool

func (f stateFilter) match(s registration.State) bool {
	return len(f) == 0 || f[s]
}

// parseStates validates a request's state filter: UNSPECIFIED and values outside the
// enum are refused.
func parseStates(field string, states []registryv1.RegistrationState) (stateFilter, error) {
	if len(states) == 0 {
		return nil, nil
	}
	f := make(stateFilter, len(states))
	for i, ps := range states {
		s, ok := stateFromProto(ps)
		if !ok {
			if ps == registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED {
				return nil, invalidArgument("%s[%d]: REGISTRATION_STATE_UNSPECIFIED is not a state to filter on", field, i)
			}
			return nil, invalidArgument("%s[%d]: unknown state %d", field, i, int32(ps))
		}
		f[s] = true
	}
	return f, nil
}

func stateFromProto(ps registryv1.RegistrationState) (registration.State, bool) {
	for _, s := range registration.States {
		if stateToProto(s) == ps {
			return s, true
		}
	}
	return "", false
}

// Page tokens are opaque to clients: base64url (no padding) of a version prefix and the
// trunk_ref of the last entry returned. Paging is by key, so it stays stable while
// registrations come and go between pages.
const pageTokenPrefix = "v1:"

var errBadPageToken = errors.New("bad page_token")

func encodePageToken(lastRef string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + lastRef))
}

// decodePageToken returns the trunk_ref after which the page starts ("" for the first).
func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", errBadPageToken
	}
	ref, ok := strings.CutPrefix(string(b), pageTokenPrefix)
	if !ok || ref == "" {
		return "", errBadPageToken
	}
	return ref, nil
}

func invalidArgument(format string, args ...any) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func errUnknownService(name string) error {
	return fmt.Errorf("unknown service %q", name)
}
