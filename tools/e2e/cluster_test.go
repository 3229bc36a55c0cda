package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
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

// replica is one registry process of a cluster test.
type replica struct {
	p       *proc
	control string
	http    string
}

// metric reads one unlabelled series from a replica's /metrics.
func (r *replica) metric(t *testing.T, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(metricsText(t, r.http), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, l)
			}
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

func startReplicas(t *testing.T, n int, cfg string) []*replica {
	t.Helper()
	var out []*replica
	for i := range n {
		path := writeFile(t, "registry.yaml", strings.Replace(cfg, "spec:\n", fmt.Sprintf("spec:\n  replicaId: r%d\n", i+1), 1))
		p := startProc(t, "registry", []string{"LOGS_FORMAT=json", "LOGS_LEVEL=info"}, "--config", path)
		start := p.logEntry("start line", 30*time.Second, "registry starting", nil)
		out = append(out, &replica{p: p, control: fmt.Sprint(start["control"]), http: fmt.Sprint(start["http"])})
	}
	return out
}

// owners lists every registration through one replica's control API: owner per trunk.
func owners(t *testing.T, control string) map[string]*registryv1.Registration {
	t.Helper()
	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+control)
	out := map[string]*registryv1.Registration{}
	token := ""
	for {
		resp, err := client.ListRegistrations(context.Background(), connect.NewRequest(&registryv1.ListRegistrationsRequest{PageSize: 1000, PageToken: token}))
		if err != nil {
			t.Fatalf("ListRegistrations on %s: %v", control, err)
		}
		for _, r := range resp.Msg.GetRegistrations() {
			out[r.GetTrunkRef()] = r
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// letGo is true of a replica's listing once the replica id has let go of the leases
// it held when held was listed: each of refs is listed with another owner, or with a
// newer fencing token (a lease claimed again since). A replica lists its own trunks
// from memory, so this is how a resumed replica shows that it noticed its losses.
func letGo(id string, held map[string]*registryv1.Registration, refs []string) func(map[string]*registryv1.Registration) bool {
	return func(regs map[string]*registryv1.Registration) bool {
		for _, ref := range refs {
			r := regs[ref]
			if r.GetOwner() == id && r.GetFencingToken() <= held[ref].GetFencingToken() {
				return false
			}
		}
		return true
	}
}

func clusterConfig(t *testing.T, f *fakes, extra ...string) string {
	host, port, prefix := sharedRedis(t, "cluster")
	return registryConfig(f.reqAddr, f.apiAddr, append([]string{"registerInterval: 1", "startupSpread: 1s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s",
		"keyPrefix: \"" + prefix + "\"", "cache:", "  provider: redis",
		fmt.Sprintf("  parameters: host=%s,port=%s", host, port)}, extra...)...)
}

// checkOneSender checks what the fake registrar saw: never two REGISTERs in flight for
// a trunk, one Call-ID per trunk, CSeq strictly increasing per Call-ID (two replicas
// sending for one trunk would repeat a CSeq), and no binding left to lapse (gaps below
// the grant).
func checkOneSender(t *testing.T, f *fakes, granted time.Duration) {
	t.Helper()
	if f.req.MaxInFlightPerKey() != 1 {
		t.Errorf("%d REGISTERs in flight at once for one trunk", f.req.MaxInFlightPerKey())
	}
	lastCSeq := map[string]int{}
	lastAt := map[string]time.Time{}
	callID := map[string]string{}
	for _, x := range f.req.Requests() {
		m := x.Req.GetMessage()
		id := m.GetCallId().GetCallId()
		if prev, ok := callID[x.Key]; ok && prev != id {
			t.Errorf("%s: a second Call-ID %s (was %s): a duplicate binding", x.Key, id, prev)
		}
		callID[x.Key] = id
		c := cseq(t, m)
		if prev, ok := lastCSeq[id]; ok && c <= prev {
			t.Errorf("%s: CSeq %d after %d: two senders", x.Key, c, prev)
		}
		lastCSeq[id] = c
		if prev, ok := lastAt[x.Key]; ok && x.At.Sub(prev) >= granted {
			t.Errorf("%s: %s between REGISTERs, the binding (%s) lapsed", x.Key, x.At.Sub(prev).Round(time.Millisecond), granted)
		}
		lastAt[x.Key] = x.At
	}
}

func clusterTrunks(n int) []*trunksv2beta1.Trunk {
	var trunks []*trunksv2beta1.Trunk
	for i := range n {
		u := fmt.Sprintf("u%03d", i)
		trunks = append(trunks, trunk(u, "sip."+u+".example", u, "pw-"+u))
	}
	return trunks
}

// waitBalanced polls a replica's control API until every trunk is registered by one of
// want owners, each within ±20 % of its share.
func waitBalanced(t *testing.T, control string, n, want int) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		share := map[string][]string{}
		registered := 0
		for ref, r := range owners(t, control) {
			if r.GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED && r.GetOwner() != "" {
				registered++
				share[r.GetOwner()] = append(share[r.GetOwner()], ref)
			}
		}
		ok := registered == n && len(share) == want
		for _, refs := range share {
			ok = ok && float64(len(refs)) >= 0.8*float64(n)/float64(want) && float64(len(refs)) <= 1.2*float64(n)/float64(want)
		}
		if ok {
			return share
		}
		if time.Now().After(deadline) {
			t.Fatalf("not balanced: %d of %d registered, shares %v", registered, n, sizes(share))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sizes(share map[string][]string) map[string]int {
	out := map[string]int{}
	for k, v := range share {
		out[k] = len(v)
	}
	return out
}

// TestClusterPausedReplica: a replica stopped (SIGSTOP) past its lease sends nothing for
// the trunks taken over meanwhile, and after SIGCONT rejoins with a fresh share.
func TestClusterPausedReplica(t *testing.T) {
	const n = 90
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 20}}, clusterTrunks(n))
	reps := startReplicas(t, 3, clusterConfig(t, f))
	share := waitBalanced(t, reps[0].control, n, 3)
	paused := reps[2]
	var pausedID string
	for id := range share {
		if strings.Contains(paused.p.output(), `"replica":"`+id+`"`) {
			pausedID = id
		}
	}
	held := owners(t, paused.control)
	if err := paused.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	// The others take the paused replica's trunks over (lease 3 s).
	waitRecords(t, f, "takeover of the paused replica's trunks", func(r []fakerequester.Recorded) bool {
		refreshed := map[string]bool{}
		for _, x := range r {
			if x.At.After(stoppedAt) {
				refreshed[x.Key] = true
			}
		}
		for _, ref := range share[pausedID] {
			if !refreshed[ref] {
				return false
			}
		}
		return true
	})
	// Keep it stopped past a refresh of its former trunks (every 10 s), then resume it.
	waitRecords(t, f, "a refresh round during the pause", func(r []fakerequester.Recorded) bool {
		return len(r) > 0 && r[len(r)-1].At.Sub(stoppedAt) > 11*time.Second
	})
	if err := paused.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// It notices the loss at its next lease renewal (its control API answers again now).
	gone := letGo(pausedID, held, share[pausedID])
	for deadline := time.Now().Add(20 * time.Second); !gone(owners(t, paused.control)); {
		if time.Now().After(deadline) {
			t.Fatalf("lost trunks not noticed: replica %s still lists its former trunks as its own 20 s after SIGCONT", pausedID)
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := waitBalanced(t, reps[0].control, n, 3)
	if len(after[pausedID]) == 0 {
		t.Errorf("the resumed replica owns nothing")
	}
	checkOneSender(t, f, 20*time.Second)
}

// TestClusterRedisRestart: the replicas' Redis restarts empty mid-run; no binding lapses
// at the registrar and none is duplicated (same Call-IDs, CSeq +1).
func TestClusterRedisRestart(t *testing.T) {
	needRedisServer(t)
	port := freePort(t)
	redis := startRedisOn(t, port)
	const n = 60
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 12}}, clusterTrunks(n))
	prefix := fmt.Sprintf("e2e-restart-%d:", time.Now().UnixNano())
	cfg := registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 1", "startupSpread: 1s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s",
		"keyPrefix: \""+prefix+"\"", "cache:", "  provider: redis", fmt.Sprintf("  parameters: host=127.0.0.1,port=%d", port))
	reps := startReplicas(t, 3, cfg)
	waitBalanced(t, reps[0].control, n, 3)
	if err := redis.stop(); err != nil {
		t.Logf("redis stop: %v", err)
	}
	restartAt := time.Now()
	startRedisOn(t, port)
	// Every trunk refreshed after the restart (12 s bindings, refreshed at 6 s).
	waitRecords(t, f, "refreshes after the Redis restart", func(r []fakerequester.Recorded) bool {
		seen := map[string]bool{}
		for _, x := range r {
			if x.At.After(restartAt) {
				seen[x.Key] = true
			}
		}
		return len(seen) == n
	})
	waitBalanced(t, reps[0].control, n, 3)
	checkOneSender(t, f, 12*time.Second)
}

// TestClusterGracefulHandOver: SIGTERM hands a replica's trunks to the others at once,
// without unregistering and without re-sending: the bindings keep their schedule.
func TestClusterGracefulHandOver(t *testing.T) {
	const n = 90
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600}}, clusterTrunks(n))
	reps := startReplicas(t, 3, clusterConfig(t, f))
	share := waitBalanced(t, reps[0].control, n, 3)
	leaving := reps[2]
	var leavingID string
	for id := range share {
		if strings.Contains(leaving.p.output(), `"replica":"`+id+`"`) {
			leavingID = id
		}
	}
	moved := share[leavingID]
	if len(moved) == 0 {
		t.Fatalf("replica %s owns nothing", leavingID)
	}
	stoppedAt := time.Now()
	if err := leaving.p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	// The others own every trunk well within a lease TTL (3 s): no waiting for expiry.
	deadline := time.Now().Add(15 * time.Second)
	for {
		all := owners(t, reps[0].control)
		taken := 0
		for _, ref := range moved {
			if o := all[ref].GetOwner(); o != "" && o != leavingID && all[ref].GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
				taken++
			}
		}
		if taken == len(moved) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d trunks taken over after the SIGTERM", taken, len(moved))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// No REGISTER for the moved trunks since the SIGTERM: no unregister, no refresh burst.
	for _, x := range f.req.Requests() {
		if !x.At.After(stoppedAt) {
			continue
		}
		for _, ref := range moved {
			if x.Key == ref {
				t.Errorf("%s: a REGISTER (Expires %d) after the hand-over", ref, x.Req.GetMessage().GetExpires().GetExpires())
			}
		}
	}
	checkOneSender(t, f, 600*time.Second)
}
