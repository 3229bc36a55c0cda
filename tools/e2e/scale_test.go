package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/tools/fakerequester"
)

// TestDefaultsHoldTheRefreshLoad: on the shipped defaults (only addresses and listeners
// set), 5,000 trunks granted 60 s need about 130 REGISTERs a second to stay bound. For
// two grant periods no binding lapses: every trunk is refreshed before its grant runs
// out, and the registry counts no lapse. (The old default cap of 100 REGISTERs a second
// could not carry this: every refresh came late.)
func TestDefaultsHoldTheRefreshLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("two grant periods of 60 s")
	}
	const n, grant = 5000, 60 * time.Second
	trunks := make([]*trunksv2beta1.Trunk, n)
	for i := range trunks {
		u := fmt.Sprintf("s%05d", i)
		trunks[i] = trunk(u, "sip."+u+".example", u, "")
	}
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: int32(grant / time.Second)}}, trunks)
	cfg := registryConfig(f.reqAddr, f.apiAddr, "httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0")
	_, httpAddr := registry(t, cfg)

	// Wait (a polled deadline, not a timing assertion) until every trunk has been
	// refreshed across two grant periods after its first REGISTER.
	var recs []fakerequester.Recorded
	deadline := time.Now().Add(4 * grant)
	for {
		recs = f.req.Requests()
		first, last := map[string]time.Time{}, map[string]time.Time{}
		for _, x := range recs {
			if _, ok := first[x.Key]; !ok || x.At.Before(first[x.Key]) {
				first[x.Key] = x.At
			}
			if x.At.After(last[x.Key]) {
				last[x.Key] = x.At
			}
		}
		done := len(first) == n
		for k, f0 := range first {
			if last[k].Sub(f0) < 2*grant {
				done = false
				break
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d trunks registered, not all refreshed for two grant periods", 4*grant, len(first), n)
		}
		time.Sleep(time.Second)
	}
	slices.SortFunc(recs, func(a, b fakerequester.Recorded) int { return a.At.Compare(b.At) })
	prev := map[string]time.Time{}
	lapsed := 0
	for _, x := range recs {
		if p, ok := prev[x.Key]; ok && x.At.Sub(p) >= grant {
			if lapsed < 5 {
				t.Errorf("%s: %s between REGISTERs: the %s binding lapsed", x.Key, x.At.Sub(p).Round(time.Millisecond), grant)
			}
			lapsed++
		}
		if x.At.After(prev[x.Key]) {
			prev[x.Key] = x.At
		}
	}
	if lapsed > 0 {
		t.Errorf("%d lapses in all", lapsed)
	}
	if got := (&replica{http: httpAddr}).metric(t, "sipreg_bindings_lapsed_total"); got != 0 {
		t.Errorf("sipreg_bindings_lapsed_total = %v, want 0", got)
	}
}
