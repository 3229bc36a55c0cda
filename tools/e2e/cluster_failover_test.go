package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"

	"sipreg.dev/tools/fakerequester"
)

// TestClusterFailover: 3 replicas share 300 trunks, each registered by one replica,
// about a third each; SIGKILL one and its trunks are refreshed by the others within the
// lease TTL + 5 s, continuing the same binding (Call-ID, From-tag, next CSeq).
func TestClusterFailover(t *testing.T) {
	const n = 300
	var trunks []*trunksv2beta1.Trunk
	for i := range n {
		u := fmt.Sprintf("u%03d", i)
		trunks = append(trunks, trunk(u, "sip."+u+".example", u, "pw-"+u))
	}
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600}}, trunks)
	start := time.Now()
	reps := startReplicas(t, 3, clusterConfig(t, f))

	waitRecords(t, f, "every trunk registered", func(r []fakerequester.Recorded) bool {
		seen := map[string]bool{}
		for _, x := range r {
			seen[x.Key] = true
		}
		return len(seen) >= n
	})
	// Every trunk registered, by one replica; the shares even out as the replicas see
	// each other (polling the control API with a deadline).
	var all map[string]*registryv1.Registration
	var share map[string][]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		all = owners(t, reps[0].control)
		share = map[string][]string{}
		registered := 0
		for ref, r := range all {
			if r.GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED && r.GetOwner() != "" {
				registered++
				share[r.GetOwner()] = append(share[r.GetOwner()], ref)
			}
		}
		balanced := len(share) == 3
		for _, refs := range share {
			balanced = balanced && len(refs) >= 80 && len(refs) <= 120
		}
		if registered == n && balanced {
			break
		}
		if time.Now().After(deadline) {
			for owner, refs := range share {
				t.Errorf("replica %s owns %d trunks, want 100 ± 20", owner, len(refs))
			}
			t.Fatalf("%d of %d registered with an owner, over %d replicas", registered, n, len(share))
		}
		time.Sleep(200 * time.Millisecond)
	}
	owned := 0.0
	for _, rp := range reps {
		owned += rp.metric(t, "sipreg_cluster_trunks_owned")
	}
	if owned != n {
		t.Errorf("replicas report %v trunks owned in all, want %d", owned, n)
	}
	// Each replica's sipreg_registrations counts its own share, never every replica's
	// (a scrape reads this replica's records, not the cluster-wide mirror).
	for i, rp := range reps {
		id := fmt.Sprintf("r%d", i+1)
		got := rp.metric(t, `sipreg_registrations{state="registered"}`)
		if want := float64(len(share[id])); got != want {
			t.Errorf("replica %s: sipreg_registrations{state=\"registered\"} = %v, want its own %v", id, got, want)
		}
	}
	for _, u := range []string{"u000", "u150", "u299"} {
		if got := len(forKey(f.req.Requests(), u)); got != 1 {
			t.Errorf("%s: %d REGISTERs, want exactly 1 (one replica)", u, got)
		}
	}

	// ForceRegister on a replica that does not own the trunk runs once, on the owner.
	owner150 := all["u150"].GetOwner()
	var other *replica
	for _, rp := range reps {
		if !strings.Contains(rp.p.output(), `"replica":"`+owner150+`"`) {
			other = rp
		}
	}
	before150 := len(forKey(f.req.Requests(), "u150"))
	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+other.control)
	// Watches on a replica that does not own the trunk: every trunk in the snapshot,
	// and the owner's changes stream in.
	watchCtx, stopWatch := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopWatch()
	everything, err := client.WatchRegistrations(watchCtx, connect.NewRequest(&registryv1.WatchRegistrationsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	inSnapshot := map[string]bool{}
	for len(inSnapshot) < n && everything.Receive() {
		inSnapshot[everything.Msg().GetRegistration().GetTrunkRef()] = true
	}
	if len(inSnapshot) != n {
		t.Errorf("a Watch on one replica saw %d trunks in its snapshot (%v), want all %d", len(inSnapshot), everything.Err(), n)
	}
	stopWatch()
	// Forced through a replica that does not own it: run once, by the owner, and seen
	// by a watcher there.
	forceWatched(t, other.control, "u150", owner150)
	if n := len(forKey(f.req.Requests(), "u150")); n != before150+1 {
		t.Errorf("%d REGISTERs for u150 after one forced, want %d", n, before150+1)
	}
	// SIGKILL the replica that owns u000.
	victim := all["u000"].GetOwner()
	var killed *replica
	for _, rp := range reps {
		if strings.Contains(rp.p.output(), `"replica":"`+victim+`"`) {
			killed = rp
		}
	}
	if killed == nil {
		t.Fatalf("no replica logged id %s", victim)
	}
	lastBefore := map[string]fakerequester.Recorded{}
	for _, x := range f.req.Requests() {
		lastBefore[x.Key] = x
	}
	killedAt := time.Now()
	if err := killed.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	lost := share[victim]
	waitRecords(t, f, "the killed replica's trunks refreshed", func(r []fakerequester.Recorded) bool {
		refreshed := map[string]bool{}
		for _, x := range r {
			if x.At.After(killedAt) {
				refreshed[x.Key] = true
			}
		}
		for _, ref := range lost {
			if !refreshed[ref] {
				return false
			}
		}
		return true
	})
	limit := 3*time.Second + 5*time.Second
	for _, ref := range lost {
		var next *fakerequester.Recorded
		for _, x := range forKey(f.req.Requests(), ref) {
			if x.At.After(killedAt) {
				next = &x
				break
			}
		}
		before := lastBefore[ref].Req.GetMessage()
		m := next.Req.GetMessage()
		if took := next.At.Sub(killedAt); took > limit {
			t.Errorf("%s refreshed %s after the kill, want within lease TTL + 5 s", ref, took)
		}
		if m.GetCallId().GetCallId() != before.GetCallId().GetCallId() || m.GetFrom().GetTag() != before.GetFrom().GetTag() {
			t.Errorf("%s: the takeover started a new binding", ref)
		}
		// The new owner moves past every CSeq the dead one can have sent (its
		// reserved ceiling): higher, never the same.
		if cseq(t, m) <= cseq(t, before) {
			t.Errorf("%s: CSeq %d after takeover, last was %d", ref, cseq(t, m), cseq(t, before))
		}
	}
	takeovers := 0.0
	for _, rp := range reps {
		if rp != killed {
			takeovers += rp.metric(t, "sipreg_cluster_takeovers_total")
		}
	}
	if takeovers < float64(len(lost)) {
		t.Errorf("survivors report %v takeovers, %d trunks were taken over", takeovers, len(lost))
	}
	// One sender at a time: never two in flight for a trunk, CSeq strictly increasing per
	// Call-ID (+1 within one owner; a jump past the reserved ceiling at a takeover).
	if f.req.MaxInFlightPerKey() != 1 {
		t.Errorf("%d REGISTERs in flight at once for one trunk", f.req.MaxInFlightPerKey())
	}
	byCall := map[string]int{}
	for _, x := range f.req.Requests() {
		id := x.Req.GetMessage().GetCallId().GetCallId()
		c := cseq(t, x.Req.GetMessage())
		if prev, ok := byCall[id]; ok && c <= prev {
			t.Errorf("Call-ID %s: CSeq %d after %d (two senders?)", id, c, prev)
		}
		byCall[id] = c
	}
	// The cluster calls FindBy at most once per interval (1 s).
	elapsed := time.Since(start)
	if calls := f.api.FindByCalls(); float64(calls) > elapsed.Seconds()/1+3 {
		t.Errorf("%d FindBy calls in %s: more than one per interval for the cluster", calls, elapsed.Round(time.Second))
	}
}
