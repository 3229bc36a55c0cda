package recordfmt

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storepb "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	"sipreg.dev/services/registry/internal/registration"
)

// callIDSuffix ends every Call-ID the registry makes (32 hex digits, then this):
// version 3 keeps the digits of such a Call-ID as bytes and leaves the suffix out.
const callIDSuffix = "@sipreg"

// The short forms of the enumerated strings of version 3. A string none of them
// names is kept in the field of its long form.
var (
	v3Transports = map[string]storepb.Transport{
		"udp": storepb.Transport_TRANSPORT_UDP,
		"tcp": storepb.Transport_TRANSPORT_TCP,
	}
	v3States = map[registration.State]storepb.State{
		registration.StatePending:       storepb.State_STATE_PENDING,
		registration.StateRegistering:   storepb.State_STATE_REGISTERING,
		registration.StateRegistered:    storepb.State_STATE_REGISTERED,
		registration.StateAuthFailed:    storepb.State_STATE_AUTH_FAILED,
		registration.StateRejected:      storepb.State_STATE_REJECTED,
		registration.StateRetrying:      storepb.State_STATE_RETRYING,
		registration.StateUnregistering: storepb.State_STATE_UNREGISTERING,
		registration.StateUnregistered:  storepb.State_STATE_UNREGISTERED,
	}
	v3Actions = map[registration.Action]storepb.Action{
		registration.ActionNone:       storepb.Action_ACTION_NONE,
		registration.ActionRegister:   storepb.Action_ACTION_REGISTER,
		registration.ActionRefresh:    storepb.Action_ACTION_REFRESH,
		registration.ActionRetry:      storepb.Action_ACTION_RETRY,
		registration.ActionUnregister: storepb.Action_ACTION_UNREGISTER,
	}
	v3TransportNames = invert(v3Transports)
	v3StateNames     = invert(v3States)
	v3ActionNames    = invert(v3Actions)
)

func invert[K comparable, V comparable](m map[K]V) map[V]K {
	r := make(map[V]K, len(m))
	for k, v := range m {
		r[v] = k
	}
	return r
}

// encodeV3 is the value of version 3 of rec: the byte 3, then rec as a
// RecordV3.
func encodeV3(rec registration.Record) ([]byte, error) {
	sc := v3Scratches.Get().(*v3Scratch)
	defer func() {
		// Nothing of rec stays reachable from the pool.
		proto.Reset(&sc.m)
		v3Scratches.Put(sc)
	}()
	m := &sc.m
	m.TrunkRef, m.TrunkName, m.EdgePort = rec.TrunkRef, rec.TrunkName, rec.EdgePort
	m.Cseq, m.CseqCeiling = rec.CSeq, rec.CSeqCeiling
	m.RequestedExpires, m.MinExpires, m.NoGin = int64(rec.RequestedExpires), int64(rec.MinExpires), rec.NoGin
	m.GrantedExpires, m.LastResponseCode = int64(rec.GrantedExpires), int64(rec.LastResponseCode)
	m.LastResponseType, m.LastReason, m.LastError = rec.LastResponseType, rec.LastReason, rec.LastError
	m.Failures, m.Owner, m.Fence = int64(rec.Failures), rec.Owner, rec.Fence
	m.Aor, m.AorText = shortAOR(rec.AOR)
	m.TargetPort, m.TargetText = shortTarget(rec.Target, rec.AOR)
	m.Transport, m.TransportText = shortEnum(v3Transports, rec.Transport)
	m.State, m.StateText = shortEnum(v3States, rec.State)
	m.NextAction, m.NextActionText = shortEnum(v3Actions, rec.NextAction)
	m.CallId, m.CallIdText = shortHex(rec.CallID, callIDSuffix)
	m.FromTag, m.FromTagText = shortHex(rec.FromTag, "")
	m.Fingerprint, m.FingerprintText = shortHex(rec.Fingerprint, "")

	epoch := time.Unix(0, 0)
	base := epoch
	if !rec.UpdatedAt.IsZero() {
		base = rec.UpdatedAt
	}
	for i, t := range [...]struct {
		name  string
		t     time.Time
		from  time.Time
		count **int64
		wide  **timestamppb.Timestamp
	}{
		{"updatedAt", rec.UpdatedAt, epoch, &m.UpdatedAt, &m.UpdatedAtWide},
		{"expiresAt", rec.ExpiresAt, base, &m.ExpiresAt, &m.ExpiresAtWide},
		{"registeredSince", rec.RegisteredSince, base, &m.RegisteredSince, &m.RegisteredSinceWide},
		{"nextActionAt", rec.NextActionAt, base, &m.NextActionAt, &m.NextActionAtWide},
	} {
		if err := timeToV3(t.t, t.from, &sc.times[i], t.count, t.wide); err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return proto.MarshalOptions{}.MarshalAppend([]byte{Version}, m)
}

// v3Scratch is what encodeV3 builds a record's message in, pooled: a write of many
// records allocates their values, not a message and its time fields for each.
type v3Scratch struct {
	m     storepb.RecordV3
	times [4]int64 // the short forms of the four times, which m points to
}

var v3Scratches = sync.Pool{New: func() any { return new(v3Scratch) }}

// decodeV3 reads the RecordV3 of a value of version 3 (the version byte left
// out), checked as Encode checks a record, so that whatever decodes
// encodes again.
func decodeV3(b []byte) (registration.Record, error) {
	var m storepb.RecordV3
	if err := unmarshalKnown(b, &m); err != nil {
		return registration.Record{}, err
	}
	var err error
	keep := func(name string, e error) {
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
	}
	num := func(name string, n int64) int {
		if int64(int(n)) != n {
			keep(name, fmt.Errorf("%d does not fit an int", n))
		}
		return int(n)
	}
	rec := registration.Record{
		TrunkRef:         m.GetTrunkRef(),
		TrunkName:        m.GetTrunkName(),
		EdgePort:         m.GetEdgePort(),
		CSeq:             m.GetCseq(),
		CSeqCeiling:      m.GetCseqCeiling(),
		RequestedExpires: num("requestedExpires", m.GetRequestedExpires()),
		MinExpires:       num("minExpires", m.GetMinExpires()),
		NoGin:            m.GetNoGin(),
		GrantedExpires:   num("grantedExpires", m.GetGrantedExpires()),
		LastResponseCode: num("lastResponseCode", m.GetLastResponseCode()),
		LastResponseType: m.GetLastResponseType(),
		LastReason:       m.GetLastReason(),
		LastError:        m.GetLastError(),
		Failures:         num("failures", m.GetFailures()),
		Owner:            m.GetOwner(),
		Fence:            m.GetFence(),
	}
	var e error
	rec.AOR, e = longAOR(m.GetAor(), m.GetAorText())
	keep("aor", e)
	rec.Target, e = longTarget(m.GetTargetPort(), m.GetTargetText(), rec.AOR)
	keep("target", e)
	rec.Transport, e = longEnum(v3TransportNames, m.GetTransport(), m.GetTransportText())
	keep("transport", e)
	rec.State, e = longEnum(v3StateNames, m.GetState(), m.GetStateText())
	keep("state", e)
	rec.NextAction, e = longEnum(v3ActionNames, m.GetNextAction(), m.GetNextActionText())
	keep("nextAction", e)
	rec.CallID, e = longHex(m.GetCallId(), m.GetCallIdText(), callIDSuffix)
	keep("callId", e)
	rec.FromTag, e = longHex(m.GetFromTag(), m.GetFromTagText(), "")
	keep("fromTag", e)
	rec.Fingerprint, e = longHex(m.GetFingerprint(), m.GetFingerprintText(), "")
	keep("fingerprint", e)

	epoch := time.Unix(0, 0).UTC()
	rec.UpdatedAt, e = timeFromV3(epoch, m.UpdatedAt, m.GetUpdatedAtWide())
	keep("updatedAt", e)
	base := epoch
	if !rec.UpdatedAt.IsZero() {
		base = rec.UpdatedAt
	}
	rec.ExpiresAt, e = timeFromV3(base, m.ExpiresAt, m.GetExpiresAtWide())
	keep("expiresAt", e)
	rec.RegisteredSince, e = timeFromV3(base, m.RegisteredSince, m.GetRegisteredSinceWide())
	keep("registeredSince", e)
	rec.NextActionAt, e = timeFromV3(base, m.NextActionAt, m.GetNextActionAtWide())
	keep("nextActionAt", e)
	if err != nil {
		return registration.Record{}, err
	}
	return rec, nil
}

// sipScheme starts the AORs the registry makes.
const sipScheme = "sip:"

// shortAOR is the short form of aor, what follows "sip:", when it starts with
// "sip:" and has more; else its long form, aor itself.
func shortAOR(aor string) (string, string) {
	if rest, ok := strings.CutPrefix(aor, sipScheme); ok && rest != "" {
		return rest, ""
	}
	return "", aor
}

// longAOR is the AOR a short form rest or a long form text holds.
func longAOR(rest, text string) (string, error) {
	switch {
	case rest == "":
		return text, nil
	case text != "":
		return "", fmt.Errorf("both %q and %q", rest, text)
	}
	return sipScheme + rest, nil
}

// aorHost is the host of aor as the target of the registry's REGISTERs names
// it: what follows the last "@", or "sip:" when there is no "@"; "" for an AOR
// that does not start with "sip:".
func aorHost(aor string) string {
	rest, ok := strings.CutPrefix(aor, sipScheme)
	if !ok {
		return ""
	}
	return rest[strings.LastIndexByte(rest, '@')+1:]
}

// shortTarget is the short form of target, its port, when target is the host
// of aor, ":" and a port written as strconv would (from 1); else its long
// form, target itself.
func shortTarget(target, aor string) (uint32, string) {
	host := aorHost(aor)
	if host == "" {
		return 0, target
	}
	rest, ok := strings.CutPrefix(target, host)
	port, colon := strings.CutPrefix(rest, ":")
	if !ok || !colon {
		return 0, target
	}
	p, err := strconv.ParseUint(port, 10, 32)
	var canon [10]byte
	if err != nil || p == 0 || string(strconv.AppendUint(canon[:0], p, 10)) != port {
		return 0, target
	}
	return uint32(p), ""
}

// longTarget is the target a short form port (with the host of aor) or a long
// form text holds.
func longTarget(port uint32, text, aor string) (string, error) {
	switch {
	case port == 0:
		return text, nil
	case text != "":
		return "", fmt.Errorf("both port %d and %q", port, text)
	}
	host := aorHost(aor)
	if host == "" {
		return "", fmt.Errorf("port %d of an AOR without a host (%q)", port, aor)
	}
	return host + ":" + strconv.FormatUint(uint64(port), 10), nil
}

// shortEnum is the short form of s (its enum value) or, for a string the enum
// does not name, its long form (s itself). The empty string is neither.
func shortEnum[S ~string, E ~int32](short map[S]E, s S) (E, string) {
	if e, ok := short[s]; ok {
		return e, ""
	}
	return 0, string(s)
}

// longEnum is the string a short form e or a long form text holds.
func longEnum[S ~string, E interface {
	~int32
	String() string
}](names map[E]S, e E, text string) (S, error) {
	switch {
	case e == 0:
		return S(text), nil
	case text != "":
		return "", fmt.Errorf("both %s and %q", e, text)
	}
	s, ok := names[e]
	if !ok {
		return "", fmt.Errorf("unknown value %d", int32(e))
	}
	return s, nil
}

// shortHex is the short form of s, the bytes its hex digits spell, when s is
// lower-case hex digits (at least two, an even number) followed by suffix; else
// its long form, s itself. The empty string is neither.
func shortHex(s, suffix string) ([]byte, string) {
	digits, ok := strings.CutSuffix(s, suffix)
	if !ok || digits == "" {
		return nil, s
	}
	if strings.ContainsFunc(digits, func(r rune) bool { return 'A' <= r && r <= 'F' }) {
		return nil, s // not as hex.EncodeToString writes it
	}
	b, err := hex.DecodeString(digits)
	if err != nil {
		return nil, s
	}
	return b, ""
}

// longHex is the string a short form b or a long form text holds.
func longHex(b []byte, text, suffix string) (string, error) {
	switch {
	case len(b) == 0:
		return text, nil
	case text != "":
		return "", fmt.Errorf("both %x and %q", b, text)
	}
	return hex.EncodeToString(b) + suffix, nil
}

// timeToV3 sets *count to slot, holding the nanoseconds from base to t, or, when
// they do not fit an int64, *wide to t; neither for the zero time. t must be in years
// 0-9999.
func timeToV3(t, base time.Time, slot *int64, count **int64, wide **timestamppb.Timestamp) error {
	if t.IsZero() {
		return nil
	}
	// Round(0) drops the monotonic readings: Sub would use them.
	t, base = t.Round(0), base.Round(0)
	if d := t.Sub(base); base.Add(d).Equal(t) {
		if s := t.Unix(); s < minUnix || s > maxUnix {
			return fmt.Errorf("%w: %v", errTimeRange, t)
		}
		*slot = int64(d)
		*count = slot
		return nil
	}
	p, err := timeToProto(t)
	*wide = p
	return err
}

// timeFromV3 is the time count (nanoseconds from base) or wide holds, in UTC:
// the zero time for neither.
func timeFromV3(base time.Time, count *int64, wide *timestamppb.Timestamp) (time.Time, error) {
	switch {
	case count != nil && wide != nil:
		return time.Time{}, fmt.Errorf("both %d ns and %v", *count, wide.AsTime())
	case wide != nil:
		return timeFromProto(wide)
	case count == nil:
		return time.Time{}, nil
	}
	t := base.Add(time.Duration(*count)).UTC()
	if s := t.Unix(); s < minUnix || s > maxUnix {
		return time.Time{}, fmt.Errorf("%w: %d ns from %v", errTimeRange, *count, base)
	}
	return t, nil
}
