package registration

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func fullRecord() Record {
	now := time.Unix(1_700_000_000, 123456789)
	return Record{
		TrunkRef: "trunk-1", TrunkName: "Trunk 1", AOR: "sip:alice@sip.example.net", Target: "sip.example.net:5060",
		Transport: "udp", EdgePort: "10.0.0.1:5060", Fingerprint: "0123456789abcdef", State: StateRegistered,
		CallID: "0123456789abcdef0123456789abcdef@sipreg", FromTag: "0123456789abcdef", CSeq: 7, CSeqCeiling: 107,
		RequestedExpires: 600, MinExpires: 300, NoGin: true, GrantedExpires: 600, ExpiresAt: now.Add(10 * time.Minute),
		RegisteredSince: now.Add(-time.Hour), NextAction: ActionRefresh, NextActionAt: now.Add(5 * time.Minute),
		LastResponseCode: 200, LastResponseType: "OK", LastReason: "OK", LastError: "earlier: timeout", Failures: 2,
		Owner: "replica-a", Fence: 42, UpdatedAt: now,
	}
}

// sameRecord compares records field by field, times by instant.
func sameRecord(t *testing.T, got, want Record) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if gt, ok := g.(time.Time); ok {
			if wt := w.(time.Time); !gt.Equal(wt) || gt.IsZero() != wt.IsZero() {
				t.Errorf("%s: got %v, want %v", name, gt, wt)
			}
			continue
		}
		if g != w {
			t.Errorf("%s: got %#v, want %#v", name, g, w)
		}
	}
}

func TestCompactKeepsEveryField(t *testing.T) {
	var c Compact
	sameRecord(t, c.Record("", ""), Record{})
	want := fullRecord()
	c.Set(want)
	sameRecord(t, c.Record(want.TrunkRef, want.TrunkName), want)
	// Values no enumeration names are kept as text.
	odd := want
	odd.State, odd.NextAction, odd.Transport, odd.LastResponseType = "future-state", "future-action", "sctp", "NOT_A_TYPE"
	odd.LastReason = "Registered, thanks"
	c.Set(odd)
	sameRecord(t, c.Record(odd.TrunkRef, odd.TrunkName), odd)
	if c.State() != odd.State || c.NextAction() != odd.NextAction || c.Transport() != "sctp" {
		t.Errorf("accessors: %q %q %q", c.State(), c.NextAction(), c.Transport())
	}
	c.Set(Record{})
	sameRecord(t, c.Record("", ""), Record{})
	// A common reason phrase is a byte: setting it copies no text.
	want.LastReason = "Interval Too Brief"
	c.Set(want)
	text := c.text
	want.LastReason = "OK"
	c.Set(want)
	sameRecord(t, c.Record(want.TrunkRef, want.TrunkName), want)
	if unsafe.StringData(c.text) != unsafe.StringData(text) || c.reason == 0 || c.reason == enumText {
		t.Errorf("a known reason phrase kept as text (reason byte %d)", c.reason)
	}
}

func TestCompactBounds(t *testing.T) {
	var c Compact
	r := Record{ExpiresAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), RegisteredSince: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		NextActionAt: time.Unix(0, 0), GrantedExpires: math.MaxInt64, Failures: math.MinInt64}
	c.Set(r)
	got := c.Record("", "")
	if want := time.Unix(0, math.MaxInt64); !got.ExpiresAt.Equal(want) {
		t.Errorf("year 3000 kept as %v, want %v", got.ExpiresAt, want)
	}
	if want := time.Unix(0, math.MinInt64); !got.RegisteredSince.Equal(want) {
		t.Errorf("year 1000 kept as %v, want %v", got.RegisteredSince, want)
	}
	if got.NextActionAt.IsZero() || !got.NextActionAt.Equal(time.Unix(0, 1)) {
		t.Errorf("the epoch kept as %v (zero: %v)", got.NextActionAt, got.NextActionAt.IsZero())
	}
	if got.GrantedExpires != math.MaxInt32 || got.Failures != math.MinInt32 {
		t.Errorf("counters kept as %d, %d", got.GrantedExpires, got.Failures)
	}
}

func TestCompactAccessorsMatchRecord(t *testing.T) {
	var c Compact
	r := fullRecord()
	c.Set(r)
	at := r.NextActionAt.Add(time.Second)
	c.SetNext(ActionRetry, at)
	c.SetCSeq(9, 200)
	c.SetOwner("replica-b", 43)
	r.NextAction, r.NextActionAt, r.CSeq, r.CSeqCeiling, r.Owner, r.Fence = ActionRetry, at, 9, 200, "replica-b", 43
	sameRecord(t, c.Record(r.TrunkRef, r.TrunkName), r)
	if c.CallID() != r.CallID || c.Fingerprint() != r.Fingerprint ||
		c.LastError() != r.LastError || c.State() != r.State || c.CSeqCeiling() != 200 || c.TopCSeq() != 200 ||
		!c.NextActionAt().Equal(at) {
		t.Errorf("accessors disagree with Record: %+v", c.Record(r.TrunkRef, r.TrunkName))
	}
	c.SetNext("odd-action", at)
	if c.NextAction() != "odd-action" || c.CallID() != r.CallID {
		t.Errorf("SetNext of an unknown action: %q, Call-ID %q", c.NextAction(), c.CallID())
	}
}

// An outcome that changes no string copies none: the engine sets a record per outcome.
func TestCompactSetWithoutNewStringsAllocatesNothing(t *testing.T) {
	var c Compact
	r := fullRecord()
	c.Set(r)
	r = c.Record(r.TrunkRef, r.TrunkName)
	if n := testing.AllocsPerRun(100, func() {
		r.CSeq++
		r.UpdatedAt = r.UpdatedAt.Add(time.Second)
		r.State = StateRetrying
		c.Set(r)
	}); n != 0 {
		t.Errorf("Set with the same strings: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.Record(r.TrunkRef, r.TrunkName) }); n != 0 {
		t.Errorf("Record: %v allocations, want 0", n)
	}
}

// The point of Compact: half a Record's fields, in a smaller size class.
func TestCompactSize(t *testing.T) {
	if c, r := unsafe.Sizeof(Compact{}), unsafe.Sizeof(Record{}); c > 208 || c*2 > r+16 {
		t.Errorf("Compact is %d bytes (Record %d): want at most 208, about half", c, r)
	}
}

func FuzzCompact(f *testing.F) {
	r := fullRecord()
	f.Add(r.TrunkRef, r.AOR, r.CallID, string(r.State), string(r.NextAction), r.Transport, r.LastResponseType, r.LastError,
		uint32(7), 600, r.UpdatedAt.UnixNano(), int64(0))
	f.Add("", "", "", "", "", "", "", "", uint32(0), 0, int64(0), int64(1))
	f.Add("ref", "sip:\x00@x", "é", "weird", "none", "tcp", "OK", "x", uint32(math.MaxUint32), -5, int64(math.MinInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, ref, aor, callID, state, action, transport, respType, lastErr string, cseq uint32, n int, at, fence int64) {
		want := Record{TrunkRef: ref, AOR: aor, CallID: callID, FromTag: aor + callID, State: State(state),
			NextAction: Action(action), Transport: transport, LastResponseType: respType, LastError: lastErr,
			LastReason: lastErr + ref, CSeq: cseq, CSeqCeiling: cseq / 2, GrantedExpires: int(clamp32(n)),
			Failures: int(clamp32(n / 2)), Fence: fence}
		if at != 0 && at != math.MinInt64 && at != math.MaxInt64 {
			want.NextActionAt, want.UpdatedAt = time.Unix(0, at), time.Unix(0, at)
		}
		var c Compact
		c.Set(fullRecord())
		c.Set(want)
		sameRecord(t, c.Record(want.TrunkRef, want.TrunkName), want)
		c.SetNext(ActionNone, time.Time{})
		want.NextAction, want.NextActionAt = ActionNone, time.Time{}
		sameRecord(t, c.Record(want.TrunkRef, want.TrunkName), want)
	})
}

// Texts longer than 65,535 bytes in all (a huge reason or error) are kept whole, and a
// record set after them is narrow again.
func TestCompactLongTexts(t *testing.T) {
	var c Compact
	long := fullRecord()
	long.LastError = strings.Repeat("e", 70000)
	long.LastReason = strings.Repeat("r", 70000)
	c.Set(long)
	sameRecord(t, c.Record(long.TrunkRef, long.TrunkName), long)
	if c.wide == nil {
		t.Fatal("140,000 bytes of text kept with 16-bit ends")
	}
	short := fullRecord()
	c.Set(short)
	sameRecord(t, c.Record(short.TrunkRef, short.TrunkName), short)
	if c.wide != nil {
		t.Fatal("short texts still kept wide")
	}
	if n := unsafe.Sizeof(c); n > 152 {
		t.Fatalf("Compact is %d bytes, want at most 152", n)
	}
}
