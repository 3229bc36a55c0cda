package e2e

// Chaos tests of the real binaries: replicas paused (SIGSTOP) while REGISTERs wait to be
// sent or are in flight, and a replica cut off from Redis while it still reaches the
// Requester. The key invariant, checked by chaosCheckCSeq over every request the fake
// Requester received from all replicas: for every Call-ID, CSeq numbers strictly
// increase in arrival order (RFC 3261 §10.3: a registrar refuses a REGISTER whose CSeq is
// not higher than the last of its Call-ID), so a replica that lost its lease never sends
// a stale REGISTER. This file holds the fakes with one Requester listener per replica
// and the checker; chaos_replica_test.go the replica helpers; chaos_redis_test.go a
// cuttable TCP proxy, the Redis record helpers and the partition test; the pause tests
// are in chaos_pause_test.go, the single-replica ones in hardening_test.go. Longer
// variants (more trunks, more moments) run with SIPREG_CHAOS_LONG=1;
// SIPREG_CHAOS_DEBUG=1 logs every REGISTER received.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/tools/fakeapi"
	"sipreg.dev/tools/fakerequester"
)

// chaosLong reports whether the longer variants run (SIPREG_CHAOS_LONG=1).
func chaosLong() bool { return os.Getenv("SIPREG_CHAOS_LONG") == "1" }

// chaosScale is short in the default run, long with SIPREG_CHAOS_LONG=1.
func chaosScale(short, long int) int {
	if chaosLong() {
		return long
	}
	return short
}

// chaosNames names the fake Requester's listeners ("replica a") in failure messages:
// Recorded.Local is the listener a request came in on, one listener per replica.
var chaosNames sync.Map

func chaosName(local string) string {
	if v, ok := chaosNames.Load(local); ok {
		return v.(string)
	}
	return local
}

// chaosFakes are the fake Routr API and one fake Requester served on one listener per
// replica, so that every recorded request tells which replica sent it.
type chaosFakes struct {
	api     *fakeapi.Server
	apiAddr string
	req     *fakerequester.Server
	// reqAddrs maps a replica's name to the Requester address it is given.
	reqAddrs map[string]string
}

func chaosStartFakes(t *testing.T, script fakerequester.Script, trunks []*trunksv2beta1.Trunk, replicas ...string) *chaosFakes {
	t.Helper()
	f := &chaosFakes{
		api:      fakeapi.New(fakeapi.Options{}),
		req:      fakerequester.New(fakerequester.Options{Script: script}),
		reqAddrs: map[string]string{},
	}
	f.api.SetTrunks(trunks)
	f.apiAddr = serve(t, f.api.Serve, f.api.Stop)
	for _, name := range replicas {
		addr := serve(t, f.req.Serve, f.req.Stop)
		f.reqAddrs[name] = addr
		chaosNames.Store(addr, "replica "+name)
	}
	return f
}

// from keeps the requests that came from one replica.
func (f *chaosFakes) from(recs []fakerequester.Recorded, replica string) []fakerequester.Recorded {
	var out []fakerequester.Recorded
	for _, r := range recs {
		if r.Local == f.reqAddrs[replica] {
			out = append(out, r)
		}
	}
	return out
}

// waitArrivals waits (up to d) until pred holds over every request received, in
// arrival order, and returns them.
func (f *chaosFakes) waitArrivals(t *testing.T, what string, d time.Duration, pred func([]fakerequester.Recorded) bool) []fakerequester.Recorded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := f.req.WaitArrivals(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return f.req.Arrivals()
}

// chaosTrunks are n trunks u000..., each with its own host.
func chaosTrunks(n int) []*trunksv2beta1.Trunk {
	out := make([]*trunksv2beta1.Trunk, 0, n)
	for i := range n {
		u := fmt.Sprintf("u%03d", i)
		out = append(out, trunk(u, "sip."+u+".example", u, "pw-"+u))
	}
	return out
}

func chaosRefs(n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, fmt.Sprintf("u%03d", i))
	}
	return out
}

// chaosCSeqOf reads a recorded REGISTER's CSeq number (-1 when unreadable).
func chaosCSeqOf(r fakerequester.Recorded) int {
	v := ext(r.Req.GetMessage(), "CSeq")
	if len(v) != 1 {
		return -1
	}
	var n int
	var method string
	if _, err := fmt.Sscanf(v[0], "%d %s", &n, &method); err != nil || method != "REGISTER" {
		return -1
	}
	return n
}

// chaosClock formats times of day in messages.
const chaosClock = "15:04:05.000"

// chaosCheckCSeq checks the key invariant over requests the fake Requester received
// (in any order: they are put in arrival order by Seq): for every Call-ID, the CSeq
// numbers strictly increase in arrival order, whichever replica sent them, and none is
// received twice. A CSeq may jump by more than one (RFC 3261 only asks for a higher
// one; a new owner may move past any CSeq the old one can have sent).
func chaosCheckCSeq(t *testing.T, recorded []fakerequester.Recorded) {
	t.Helper()
	recs := slices.Clone(recorded)
	slices.SortFunc(recs, func(a, b fakerequester.Recorded) int { return cmp.Compare(a.Seq, b.Seq) })
	type seen struct {
		cseq int
		rec  fakerequester.Recorded
	}
	last := map[string]seen{}
	used := map[string]map[int]bool{}
	var bad []string
	for _, r := range recs {
		id := r.Req.GetMessage().GetCallId().GetCallId()
		c := chaosCSeqOf(r)
		if id == "" || c < 0 {
			bad = append(bad, fmt.Sprintf("#%d %s from %s: Call-ID %q, CSeq %v: unreadable", r.Seq, r.Key, chaosName(r.Local), id, ext(r.Req.GetMessage(), "CSeq")))
			continue
		}
		if used[id] == nil {
			used[id] = map[int]bool{}
		}
		if prev, ok := last[id]; ok && c <= prev.cseq {
			what := "lower than"
			if used[id][c] {
				what = "a repeat of a CSeq already received; last was"
			}
			bad = append(bad, fmt.Sprintf("%s, Call-ID %s: CSeq %d (#%d at %s, from %s, Expires %d) %s %d (#%d at %s, from %s)",
				r.Key, id, c, r.Seq, r.At.Format(chaosClock), chaosName(r.Local), r.Req.GetMessage().GetExpires().GetExpires(), what,
				prev.cseq, prev.rec.Seq, prev.rec.At.Format(chaosClock), chaosName(prev.rec.Local)))
		}
		used[id][c] = true
		if prev, ok := last[id]; !ok || c > prev.cseq {
			last[id] = seen{cseq: c, rec: r}
		}
	}
	if os.Getenv("SIPREG_CHAOS_DEBUG") != "" {
		for _, r := range recs {
			t.Logf("#%d %s %s %s cseq %d exp %d resp %v err %v", r.Seq, r.At.Format(chaosClock), chaosName(r.Local), r.Key, chaosCSeqOf(r), r.Req.GetMessage().GetExpires().GetExpires(), r.Resp.GetResponseType(), r.Err)
		}
	}
	if len(bad) == 0 {
		t.Logf("CSeq invariant holds over %d REGISTERs of %d Call-IDs", len(recs), len(last))
		return
	}
	const show = 15
	total, more := len(bad), ""
	if total > show {
		more = fmt.Sprintf("\n... and %d more", total-show)
		bad = bad[:show]
	}
	t.Errorf("CSeq invariant broken %d times over %d REGISTERs (each one a registrar would drop: stale, sent after the lease was lost, or a CSeq sent twice):\n%s%s",
		total, len(recs), strings.Join(bad, "\n"), more)
}
