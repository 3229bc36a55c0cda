package reconcile

import (
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// TestBigPassCollectsOnce: a discovery pass that adds collectAfter trunks or more runs
// one collection once its trunks are all tracked; unchanged ticks and smaller
// additions run none.
func TestBigPassCollectsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{}
		mk := func(prefix string, n int) []*trunksv2beta1.Trunk {
			var trunks []*trunksv2beta1.Trunk
			for i := range n {
				ref := fmt.Sprintf("%s%03d", prefix, i)
				trunks = append(trunks, mkTrunk(ref, "sip.example.net", ref, ""))
			}
			return trunks
		}
		first := mk("a", 5)
		api.set(first, nil)
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 10 * time.Second
		r := New(Options{Spec: spec, Trunks: api, Requester: req, Logger: slog.New(slog.DiscardHandler)})
		// At each collection: how many of the trunks the API lists are tracked.
		var tracked []int
		r.collect = func() {
			n := 0
			for _, rec := range r.Records() {
				if rec.TrunkRef[0] != 'b' {
					n++
				}
			}
			tracked = append(tracked, n)
		}
		r.collectAfter = 5
		runBackground(t, r)

		step := func(what string, want []int) {
			t.Helper()
			time.Sleep(spec.RegisterInterval)
			synctest.Wait()
			if fmt.Sprint(tracked) != fmt.Sprint(want) {
				t.Fatalf("%s: collections with %v of the listed trunks tracked, want %v", what, tracked, want)
			}
		}
		step("a start of 5", []int{5})
		step("the same answer", []int{5})
		api.set(append(first, mk("b", 4)...), nil)
		step("4 more", []int{5})
		api.set(append(first, mk("c", 5)...), nil)
		// The b trunks are gone (unregistered) and 5 others added.
		step("5 more", []int{5, 10})
	})
}
