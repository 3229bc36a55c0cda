package sipmsg_test

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// poolCases are buildCases and a REGISTER with more extensions than a block holds.
func poolCases(t *testing.T) []buildCase {
	t.Helper()
	cases := buildCases(t)
	many := cases[0]
	many.name = "many-methods"
	many.reg.Methods = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE", "NOTIFY"}
	return append(cases, many)
}

// wire is req's deterministic wire bytes.
func wire(t *testing.T, req *requesterv2beta1.SendMessageRequest) string {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuildPooledSameAsBuildChecked: whatever the block served before (a digest
// answer, extensions beyond the block's own, another EdgePort or none), a pooled
// request has the wire bytes of BuildChecked's, with several blocks held at once and
// released in any order.
func TestBuildPooledSameAsBuildChecked(t *testing.T) {
	cases := poolCases(t)
	want := make([]string, len(cases))
	for i, tc := range cases {
		req, err := sipmsg.BuildChecked(tc.reg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want[i] = wire(t, req)
	}
	type held struct {
		p *sipmsg.Pooled
		i int
	}
	var live []held
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		if len(live) > 0 && (len(live) == 3 || rnd.IntN(2) == 0) {
			k := rnd.IntN(len(live))
			h := live[k]
			// Still intact while held, whatever was built since.
			if got := wire(t, h.p.Request()); got != want[h.i] {
				t.Fatalf("%s: changed while held", cases[h.i].name)
			}
			h.p.Release()
			live = append(live[:k], live[k+1:]...)
			continue
		}
		i := rnd.IntN(len(cases))
		p, err := sipmsg.BuildPooled(cases[i].reg)
		if err != nil {
			t.Fatalf("%s: %v", cases[i].name, err)
		}
		if got := wire(t, p.Request()); got != want[i] {
			t.Fatalf("%s: pooled request differs from BuildChecked's", cases[i].name)
		}
		live = append(live, held{p, i})
	}
	for _, h := range live {
		h.p.Release()
	}
}

// TestBuildPooledRefuses: BuildPooled refuses what BuildChecked refuses, with the same
// error.
func TestBuildPooledRefuses(t *testing.T) {
	for _, edit := range []func(*sipmsg.Register){
		func(r *sipmsg.Register) { r.User = "alice\r\nX-Injected: yes" },
		func(r *sipmsg.Register) { r.Domain = "" },
		func(r *sipmsg.Register) { r.UserAgent = "Routr\xff" },
		func(r *sipmsg.Register) { r.Methods = []string{"INVITE", "MES\x00SAGE"} },
	} {
		r := good(t)
		edit(&r)
		_, want := sipmsg.BuildChecked(r)
		p, err := sipmsg.BuildPooled(r)
		if want == nil || err == nil || err.Error() != want.Error() || p != nil {
			t.Errorf("BuildPooled = %v, %v; BuildChecked's error %v", p, err, want)
		}
	}
}

// TestPooledRelease: Release clears the request, so a request kept past it reads as
// empty rather than as another binding's; a clone taken before stays intact (the
// strings are not reused), even once the block serves another request.
func TestPooledRelease(t *testing.T) {
	cases := poolCases(t)
	p, err := sipmsg.BuildPooled(cases[0].reg)
	if err != nil {
		t.Fatal(err)
	}
	kept := p.Request()
	clone := proto.Clone(kept).(*requesterv2beta1.SendMessageRequest)
	want := wire(t, clone)
	p.Release()
	if kept.GetTarget() != "" || kept.GetMessage() != nil {
		t.Errorf("a released request still reads %v", kept)
	}
	for _, tc := range cases {
		q, err := sipmsg.BuildPooled(tc.reg)
		if err != nil {
			t.Fatal(err)
		}
		q.Release()
	}
	if wire(t, clone) != want {
		t.Error("a clone changed after its block was reused")
	}
	mustPanic(t, "Release twice", p.Release)
	mustPanic(t, "Request after Release", func() { p.Request() })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}
