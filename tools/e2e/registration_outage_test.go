package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/tools/fakerequester"
)

// TestNewTrunkAndAPIOutage: a trunk added to the API is picked up at the next
// discovery; while the API fails, every known trunk keeps being refreshed and the
// outage is logged once, its end once.
func TestNewTrunkAndAPIOutage(t *testing.T) {
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "pw")})
	reg, httpAddr := registry(t, registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 0.3", "startupSpread: 0s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0"))
	waitRecords(t, f, "alice registered", atLeast("alice", 1))
	f.api.SetTrunks([]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "pw"), trunk("t2", "sip.other.net", "carol", "pw")})
	waitRecords(t, f, "new trunk registered", atLeast("carol", 1))

	f.api.SetFail(codes.Unavailable)
	calls := f.api.FindByCalls()
	n := len(forKey(f.req.Requests(), "alice"))
	// Two refreshes of each trunk during the outage (4 s lifetimes, refreshed at 2 s).
	waitRecords(t, f, "refreshes during the outage", func(r []fakerequester.Recorded) bool {
		return len(forKey(r, "alice")) >= n+2 && len(forKey(r, "carol")) >= 3
	})
	if f.api.FindByCalls() <= calls+2 {
		t.Errorf("discovery stopped during the outage")
	}
	outage := strings.Count(reg.output(), "trunk discovery failed")
	if outage != 1 {
		t.Errorf("outage logged %d times, want once", outage)
	}
	if strings.Contains(reg.output(), "unregister") {
		t.Error("an API outage caused an unregister")
	}
	f.api.SetFail(codes.OK)
	waitDiscoveryOK(t, httpAddr, 30*time.Second)

	// A trunk gone from a successful answer is unregistered (Expires 0, same Call-ID).
	f.api.SetTrunks([]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "pw")})
	recs := waitRecords(t, f, "carol unregistered", func(r []fakerequester.Recorded) bool {
		c := forKey(r, "carol")
		return len(c) > 0 && c[len(c)-1].Req.GetMessage().GetExpires().GetExpires() == 0
	})
	carol := forKey(recs, "carol")
	last, prev := carol[len(carol)-1].Req.GetMessage(), carol[len(carol)-2].Req.GetMessage()
	if last.GetCallId().GetCallId() != prev.GetCallId().GetCallId() || cseq(t, last) != cseq(t, prev)+1 {
		t.Error("the unregister is not part of the binding (Call-ID, CSeq + 1)")
	}
	waitRemoved(t, controlClient(reg.control(), ""), "t2", 30*time.Second)
	if strings.Contains(reg.output(), "unregister failed") {
		t.Error("the registry did not take the unregister as done")
	}
	// The end of the outage is logged once. (Carol's removal took a discovery that
	// started after the recovering one had logged it.)
	if n := strings.Count(reg.output(), "trunk discovery recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

// waitDiscoveryOK waits (up to d) until /metrics at httpAddr shows a trunk discovery
// that succeeded after the first scrape: sipreg_api_fetches_total minus
// sipreg_api_fetch_errors_total went up. The two counters are read from one scrape, but
// a failed discovery counts the fetch before the error, so a success must show on two
// scrapes in a row with no new error between them.
func waitDiscoveryOK(t *testing.T, httpAddr string, d time.Duration) {
	t.Helper()
	ok := func() (float64, float64) {
		m := scrapeMetrics(t, httpAddr)
		return m["sipreg_api_fetches_total"] - m["sipreg_api_fetch_errors_total"], m["sipreg_api_fetch_errors_total"]
	}
	base, _ := ok()
	deadline := time.Now().Add(d)
	prevOK, prevErrs := base, -1.0
	for {
		time.Sleep(100 * time.Millisecond)
		n, errs := ok()
		if n > base && prevOK > base && errs == prevErrs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for a successful trunk discovery: %v successful before, %v now (%v errors)", d, base, n, errs)
		}
		prevOK, prevErrs = n, errs
	}
}

// scrapeMetrics reads the unlabelled series of one /metrics scrape at httpAddr.
func scrapeMetrics(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for l := range strings.Lines(metricsText(t, httpAddr)) {
		name, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out
}
