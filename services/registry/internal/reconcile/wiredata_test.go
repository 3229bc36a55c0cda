package reconcile

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// rawAPI answers FindBy with bytes the test builds, as upstream.API's raw path does.
type rawAPI struct{ raw []byte }

func (a *rawAPI) FindRegisteringRaw(context.Context) ([]byte, error) { return a.raw, nil }

// answerOf encodes a FindByResponse item by item; bad is appended as one item of raw
// bytes that proto refuses to decode.
func answerOf(t *testing.T, good []*trunksv2beta1.Trunk, bad ...[]byte) []byte {
	t.Helper()
	var out []byte
	for _, g := range good {
		b, err := proto.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	for _, b := range bad {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	return out
}

// TestUndecodableItemDoesNotBlockTheOthers: one trunk whose name is not valid UTF-8
// made the whole FindBy answer undecodable, so nothing was added or removed. Now the
// others register and the bad one is rejected with the reason, never sent.
func TestUndecodableItemDoesNotBlockTheOthers(t *testing.T) {
	var bad []byte
	bad = protowire.AppendTag(bad, 1, protowire.BytesType)
	bad = protowire.AppendString(bad, "t-bad")
	bad = protowire.AppendTag(bad, 3, protowire.BytesType) // name
	bad = protowire.AppendBytes(bad, []byte{'a', 0xff, 'b'})
	api := &rawAPI{raw: answerOf(t, []*trunksv2beta1.Trunk{
		mkTrunk("t1", "sip.a.example", "alice", ""), mkTrunk("t2", "sip.b.example", "bob", ""),
	}, bad)}
	req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}
	h := start(t, testSpec(), nil, req, nil, func(r *Reconciler) { r.src = r.newSource(api) })
	h.waitFor("t1 registered", stateIs("t1", registration.StateRegistered))
	h.waitFor("t2 registered", stateIs("t2", registration.StateRegistered))
	ev := h.waitFor("t-bad rejected", stateIs("t-bad", registration.StateRejected))
	if !strings.Contains(ev.Record.LastError, "undecodable") || !strings.Contains(ev.Record.LastError, "UTF-8") {
		t.Fatalf("t-bad reason %q: want it undecodable, naming the cause", ev.Record.LastError)
	}
	for _, r := range req.requests() {
		if strings.Contains(r.GetMessage().GetTo().GetAddress().GetUri().GetHost(), "bad") {
			t.Fatal("a REGISTER was sent for the undecodable trunk")
		}
	}
}

// TestHostileTrunkDataNeverReachesTheWire: a trunk whose user carries CR/LF (a header
// injection through Routr's Requester) is rejected naming the field; the others go on,
// and no request carries a control character.
func TestHostileTrunkDataNeverReachesTheWire(t *testing.T) {
	evil := mkTrunk("t-evil", "sip.evil.example", "alice\r\nX-Injected: yes", "")
	nul := mkTrunk("t-nul", "sip.nul\x00.example", "carol", "")
	escaped := mkTrunk("t-esc", "sip.esc.example", "dave <x>@y", "")
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{evil, nul, escaped, mkTrunk("t1", "sip.a.example", "alice", "")}}
	req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}
	h := start(t, testSpec(), api, req, nil)
	h.waitFor("t1 registered", stateIs("t1", registration.StateRegistered))
	esc := h.waitFor("t-esc registered (escaped)", stateIs("t-esc", registration.StateRegistered)).Record
	if !strings.HasPrefix(esc.AOR, "sip:dave%20%3Cx%3E%40y@") {
		t.Errorf("t-esc AOR %q: want the user %%-escaped", esc.AOR)
	}
	for _, ref := range []string{"t-evil", "t-nul"} {
		ev := h.waitFor(ref+" rejected", stateIs(ref, registration.StateRejected))
		if !strings.Contains(ev.Record.LastError, "uris[0].") {
			t.Errorf("%s reason %q: want it to name the field", ref, ev.Record.LastError)
		}
	}
	for _, r := range req.requests() {
		if s := prototext.Format(r); strings.Contains(s, "\\x00") || strings.Contains(s, "X-Injected") || sipmsg.Check(r) != nil {
			t.Fatalf("hostile data on the wire: %s", s)
		}
	}
}

// TestAllURIsDisabledStillRegisters: Routr's file data server sends enabled false when a
// file leaves it out, and Routr's registry ignores the field: such a trunk registers.
func TestAllURIsDisabledStillRegisters(t *testing.T) {
	tr := mkTrunk("t1", "sip.a.example", "alice", "")
	tr.Uris[0].Enabled = false
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{tr}}
	req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}
	h := start(t, testSpec(), api, req, nil)
	h.waitFor("registered", stateIs("t1", registration.StateRegistered))
}
