package registration

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/nanotime"
)

// Compact is a Record in half the memory, for the engine to keep one per trunk: a
// Record is 400 bytes of fields (13 string headers, 5 time.Time) and up to six small
// allocations of its own (AOR, target, Call-ID, From-tag, fingerprint, texts); a
// Compact is 152 bytes and one allocation, with fewer pointers for the collector to
// follow.
//
//   - The record's own strings (AOR, target, fingerprint, Call-ID, From-tag, the last
//     reason and error) are one string back to back; Record answers substrings of
//     it, copying nothing. Where each ends is a uint16 (or, past 65,535 bytes in all, a
//     uint32 in an allocation of its own).
//   - The state, the next action, the transport, the last response type and the last
//     reason phrase are a byte each when they are one of the known values (a value
//     none names is kept as text, so that nothing is lost).
//   - The trunk's ref and name are not kept: the engine keeps them with the trunk, and
//     Record is given them. The EdgePort and the owner stay strings: they are shared
//     with the config and the replica's identity, so they cost no copy.
//   - Times are Unix nanoseconds (nanotime.UnixOf: the wall clock exactly, as the
//     store keeps it; a time before 1678 or after 2261 is kept as the nearest one that
//     fits, the Unix epoch itself one nanosecond later); counters are int32 (a
//     value beyond ±2^31 is kept as the nearest one that fits: 68 years of seconds).
//
// Record(r.TrunkRef, r.TrunkName) of Set(r) equals r but for those bounds, the monotonic clock readings and the
// location of its times (Record's are in time.Local, as time.Now's): the engine
// compares a record's times by the wall clock, as it does a record read from the
// store; the schedule, which decides when things run, keeps the monotonic clock. The zero Compact
// is the zero Record.
type Compact struct {
	edgePort, owner string

	text string
	// ends are where each text ends in text; wide holds them instead when text is
	// longer than 65,535 bytes (a reason or an error that long; nil otherwise).
	wide *[nTexts]uint32
	ends [nTexts]uint16

	state, action, transport, respType, reason uint8
	noGin                                      bool

	cseq, ceiling                              uint32
	requested, minExpires, granted, code, fail int32
	fence                                      int64

	expiresAt, since, nextAt, updatedAt int64
}

// The strings kept in Compact.text, in order.
const (
	tAOR = iota
	tTarget
	tFingerprint
	tCallID
	tFromTag
	tReason
	tError
	tState // the texts of values no enum byte names
	tAction
	tTransport
	tRespType
	nTexts
)

// enumText is the byte of an enumerated string whose value is in text.
const enumText = math.MaxUint8

// The enumerations whose known values are a byte. A value none names is kept as text.
var (
	stateNames  = newEnum(States)
	actionNames = newEnum([]Action{ActionNone, ActionRegister, ActionRefresh, ActionRetry, ActionUnregister})
	// transportNames: a trunk's URI is udp or tcp (the Requester sends nothing else).
	transportNames = newEnum([]string{"udp", "tcp"})
	// respTypeNames: LastResponseType is the Requester's ResponseType name.
	// reasonNames: the reason phrases registrars answer most (RFC 3261's), so that an
	// outcome with the phrase of the last one, or of a common answer, copies no text.
	reasonNames = newEnum([]string{"OK", "Unauthorized", "Proxy Authentication Required", "Interval Too Brief",
		"Forbidden", "Not Found", "Request Timeout", "Server Internal Error", "Service Unavailable", "Bad Request"})
	respTypeNames = func() enum {
		nums := slices.Sorted(maps.Keys(sipmessagev2beta1.ResponseType_name))
		vs := make([]string, len(nums))
		for i, n := range nums {
			vs[i] = sipmessagev2beta1.ResponseType_name[n]
		}
		return newEnum(vs)
	}()
)

// enum numbers up to 254 strings from 1 (0 is "", enumText a value kept as text).
type enum struct {
	names []string
	index map[string]uint8
}

func newEnum[S ~string](vs []S) enum {
	e := enum{index: make(map[string]uint8, len(vs))}
	for _, v := range vs[:min(len(vs), enumText-1)] {
		e.names = append(e.names, string(v))
		e.index[string(v)] = uint8(len(e.names))
	}
	return e
}

// of is v's byte (0 for "", enumText when no entry names it). A few names are
// compared one by one (cheaper than hashing v: a record is set twice a REGISTER).
func (e enum) of(v string) uint8 {
	if v == "" {
		return 0
	}
	if len(e.names) <= 16 {
		for i, n := range e.names {
			if n == v {
				return uint8(i + 1)
			}
		}
		return enumText
	}
	if b, ok := e.index[v]; ok {
		return b
	}
	return enumText
}

// name is the string of b, whose text (when b is enumText) is text.
func (e enum) name(b uint8, text string) string {
	switch {
	case b == 0:
		return ""
	case b == enumText:
		return text
	default:
		return e.names[b-1]
	}
}

// Set makes c hold r but its TrunkRef and TrunkName, which the caller keeps. The
// strings of r that c keeps as one are copied only when one of them changed.
func (c *Compact) Set(r Record) {
	c.edgePort, c.owner = r.EdgePort, r.Owner
	var t [nTexts]string
	t[tAOR], t[tTarget], t[tFingerprint] = r.AOR, r.Target, r.Fingerprint
	t[tCallID], t[tFromTag], t[tError] = r.CallID, r.FromTag, r.LastError
	c.state = enumSet(stateNames, string(r.State), &t[tState])
	c.action = enumSet(actionNames, string(r.NextAction), &t[tAction])
	c.transport = enumSet(transportNames, r.Transport, &t[tTransport])
	c.respType = enumSet(respTypeNames, r.LastResponseType, &t[tRespType])
	c.reason = enumSet(reasonNames, r.LastReason, &t[tReason])
	if !c.holds(&t) {
		c.pack(&t)
	}
	c.noGin = r.NoGin
	c.cseq, c.ceiling = r.CSeq, r.CSeqCeiling
	c.requested, c.minExpires, c.granted = clamp32(r.RequestedExpires), clamp32(r.MinExpires), clamp32(r.GrantedExpires)
	c.code, c.fail = clamp32(r.LastResponseCode), clamp32(r.Failures)
	c.fence = r.Fence
	c.expiresAt, c.since = nanotime.UnixOf(r.ExpiresAt), nanotime.UnixOf(r.RegisteredSince)
	c.nextAt, c.updatedAt = nanotime.UnixOf(r.NextActionAt), nanotime.UnixOf(r.UpdatedAt)
}

// Record is the Record c holds, of the trunk ref named name.
func (c *Compact) Record(ref, name string) Record {
	return Record{
		TrunkRef: ref, TrunkName: name, EdgePort: c.edgePort, Owner: c.owner, Fence: c.fence,
		AOR: c.slot(tAOR), Target: c.slot(tTarget), Fingerprint: c.slot(tFingerprint),
		Transport: c.Transport(), State: c.State(), NextAction: c.NextAction(),
		CallID: c.slot(tCallID), FromTag: c.slot(tFromTag),
		CSeq: c.cseq, CSeqCeiling: c.ceiling,
		RequestedExpires: int(c.requested), MinExpires: int(c.minExpires), NoGin: c.noGin,
		GrantedExpires: int(c.granted), ExpiresAt: nanotime.Unix(c.expiresAt), RegisteredSince: nanotime.Unix(c.since),
		NextActionAt:     nanotime.Unix(c.nextAt),
		LastResponseCode: int(c.code), LastResponseType: respTypeNames.name(c.respType, c.slot(tRespType)),
		LastReason: reasonNames.name(c.reason, c.slot(tReason)), LastError: c.slot(tError), Failures: int(c.fail),
		UpdatedAt: nanotime.Unix(c.updatedAt),
	}
}

// The fields the engine reads one at a time, without building the whole Record.

// CallID is the record's CallID.
func (c *Compact) CallID() string { return c.slot(tCallID) }

// Fingerprint is the record's Fingerprint.
func (c *Compact) Fingerprint() string { return c.slot(tFingerprint) }

// Target is the record's Target.
func (c *Compact) Target() string { return c.slot(tTarget) }

// LastError is the record's LastError.
func (c *Compact) LastError() string { return c.slot(tError) }

// State is the record's State.
func (c *Compact) State() State { return State(stateNames.name(c.state, c.slot(tState))) }

// NextAction is the record's NextAction.
func (c *Compact) NextAction() Action {
	return Action(actionNames.name(c.action, c.slot(tAction)))
}

// Transport is the record's Transport.
func (c *Compact) Transport() string { return transportNames.name(c.transport, c.slot(tTransport)) }

// NextActionAt is the record's NextActionAt.
func (c *Compact) NextActionAt() time.Time { return nanotime.Unix(c.nextAt) }

// CSeq is the record's CSeq.
func (c *Compact) CSeq() uint32 { return c.cseq }

// CSeqCeiling is the record's CSeqCeiling.
func (c *Compact) CSeqCeiling() uint32 { return c.ceiling }

// TopCSeq is the record's TopCSeq.
func (c *Compact) TopCSeq() uint32 { return max(c.cseq, c.ceiling) }

// SetCSeq sets the record's CSeq and CSeqCeiling.
func (c *Compact) SetCSeq(cseq, ceiling uint32) { c.cseq, c.ceiling = cseq, ceiling }

// SetOwner sets the record's Owner and Fence.
func (c *Compact) SetOwner(owner string, fence int64) { c.owner, c.fence = owner, fence }

// SetNext sets the record's NextAction and NextActionAt.
func (c *Compact) SetNext(a Action, at time.Time) {
	var t [nTexts]string
	c.texts(&t)
	t[tAction] = ""
	c.action = enumSet(actionNames, string(a), &t[tAction])
	if !c.holds(&t) {
		c.pack(&t)
	}
	c.nextAt = nanotime.UnixOf(at)
}

// enumSet is v's byte in e; v goes to text when e does not name it.
func enumSet(e enum, v string, text *string) uint8 {
	b := e.of(v)
	if b == enumText {
		*text = v
	}
	return b
}

func (c *Compact) slot(i int) string {
	from := 0
	if i > 0 {
		from = c.end(i - 1)
	}
	return c.text[from:c.end(i)]
}

// end is where the i-th text ends.
func (c *Compact) end(i int) int {
	if c.wide != nil {
		return int(c.wide[i])
	}
	return int(c.ends[i])
}

func (c *Compact) texts(t *[nTexts]string) {
	for i := range t {
		t[i] = c.slot(i)
	}
}

// holds reports whether c's text is t.
func (c *Compact) holds(t *[nTexts]string) bool {
	for i, s := range t {
		if c.slot(i) != s {
			return false
		}
	}
	return true
}

func (c *Compact) pack(t *[nTexts]string) {
	n := 0
	for _, s := range t {
		n += len(s)
	}
	c.wide = nil
	if n > math.MaxUint16 {
		c.wide = new([nTexts]uint32)
	}
	var b strings.Builder
	b.Grow(n)
	for i, s := range t {
		b.WriteString(s)
		if c.wide != nil {
			c.wide[i] = uint32(b.Len())
		} else {
			c.ends[i] = uint16(b.Len())
		}
	}
	c.text = b.String()
}

func clamp32(v int) int32 {
	return int32(min(max(v, math.MinInt32), math.MaxInt32))
}
