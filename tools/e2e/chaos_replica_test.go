package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"

	"sipreg.dev/tools/fakerequester"
)

// chaosReplica is one registry process.
type chaosReplica struct {
	name    string
	p       *proc
	control string
	http    string
}

// chaosStartReplica starts a registry with cfg (JSON logs at info level).
func chaosStartReplica(t *testing.T, name, cfg string) *chaosReplica {
	t.Helper()
	path := writeFile(t, "registry-"+name+".yaml", cfg)
	p := startProc(t, "registry", []string{"LOGS_FORMAT=json", "LOGS_LEVEL=info"}, "--config", path)
	start := p.logEntry("start line", 30*time.Second, "registry starting", nil)
	return &chaosReplica{name: name, p: p, control: fmt.Sprint(start["control"]), http: fmt.Sprint(start["http"])}
}

func (r *chaosReplica) client() registryv1connect.RegistrationServiceClient {
	return registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+r.control)
}

// chaosList lists every registration through one replica's control API.
func chaosList(ctx context.Context, r *chaosReplica) (map[string]*registryv1.Registration, error) {
	out := map[string]*registryv1.Registration{}
	token := ""
	for {
		resp, err := r.client().ListRegistrations(ctx, connect.NewRequest(&registryv1.ListRegistrationsRequest{PageSize: 1000, PageToken: token}))
		if err != nil {
			return nil, err
		}
		for _, reg := range resp.Msg.GetRegistrations() {
			out[reg.GetTrunkRef()] = reg
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// chaosWaitRegs polls a replica's ListRegistrations until pred holds (up to d).
func chaosWaitRegs(t *testing.T, r *chaosReplica, what string, d time.Duration, pred func(map[string]*registryv1.Registration) bool) map[string]*registryv1.Registration {
	t.Helper()
	deadline := time.Now().Add(d)
	var last map[string]*registryv1.Registration
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		regs, err := chaosList(ctx, r)
		cancel()
		if err == nil {
			last = regs
			if pred(regs) {
				return regs
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("replica %s: timed out waiting for %s (last error %v); owners: %v", r.name, what, lastErr, chaosOwnerCounts(last))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// chaosOwnerCounts counts registered trunks per owner ("" for none or not registered).
func chaosOwnerCounts(regs map[string]*registryv1.Registration) map[string]int {
	out := map[string]int{}
	for _, r := range regs {
		o := r.GetOwner()
		if r.GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
			o += "(" + strings.TrimPrefix(r.GetState().String(), "REGISTRATION_STATE_") + ")"
		}
		out[o]++
	}
	return out
}

// chaosOwnedBy lists the trunks of one owner that are registered or being refreshed
// (a replica shows its own REGISTERs waiting for their turn as registering), sorted.
func chaosOwnedBy(regs map[string]*registryv1.Registration, owner string) []string {
	var out []string
	for ref, r := range regs {
		switch r.GetState() {
		case registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERING:
			if r.GetOwner() == owner && r.GetCallId() != "" {
				out = append(out, ref)
			}
		}
	}
	slices.Sort(out)
	return out
}

// chaosShared: all n trunks registered or refreshing, each owned by one of the
// replicas, every replica owning some. (That each was granted a binding is checked at
// the fake Requester: chaosAllGranted.)
func chaosShared(n int, replicas ...string) func(map[string]*registryv1.Registration) bool {
	return func(regs map[string]*registryv1.Registration) bool {
		total := 0
		for _, name := range replicas {
			k := len(chaosOwnedBy(regs, name))
			if k == 0 {
				return false
			}
			total += k
		}
		return total == n
	}
}

// chaosWaitSettled polls a replica's ListRegistrations until all n trunks are shared
// by the replicas (chaosShared) and the owners stay the same for 2 s (trunks move
// between replicas for a while after they start): the snapshot it returns tells which
// trunks each replica holds.
func chaosWaitSettled(t *testing.T, r *chaosReplica, n int, replicas ...string) map[string]*registryv1.Registration {
	t.Helper()
	ownersOf := func(regs map[string]*registryv1.Registration) map[string]string {
		out := map[string]string{}
		for ref, reg := range regs {
			out[ref] = reg.GetOwner()
		}
		return out
	}
	var since time.Time
	var prev map[string]string
	return chaosWaitRegs(t, r, "every trunk owned by one of "+strings.Join(replicas, ", ")+", settled", 60*time.Second, func(regs map[string]*registryv1.Registration) bool {
		if !chaosShared(n, replicas...)(regs) {
			prev = nil
			return false
		}
		cur := ownersOf(regs)
		if prev == nil || !maps.Equal(prev, cur) {
			prev, since = cur, time.Now()
			return false
		}
		return time.Since(since) >= 2*time.Second
	})
}

// chaosPickVictim picks, of two replicas sharing the trunks (a settled snapshot), the
// one owning more as the victim of the chaos (more trunks at stake), the other as the
// survivor; mine lists the victim's trunks.
func chaosPickVictim(regs map[string]*registryv1.Registration, a, b *chaosReplica) (victim, survivor *chaosReplica, mine []string) {
	victim, survivor = a, b
	if len(chaosOwnedBy(regs, b.name)) > len(chaosOwnedBy(regs, a.name)) {
		victim, survivor = b, a
	}
	return victim, survivor, chaosOwnedBy(regs, victim.name)
}

// chaosOwnsAll: replica owns every one of refs (state aside: taking a trunk over,
// the new owner may be refreshing it).
func chaosOwnsAll(owner string, refs []string) func(map[string]*registryv1.Registration) bool {
	return func(regs map[string]*registryv1.Registration) bool {
		for _, ref := range refs {
			if regs[ref].GetOwner() != owner {
				return false
			}
		}
		return true
	}
}

// chaosClusterConfig is a cluster replica's config: lease TTL 3 s, the given Redis
// address, the Requester listener of the replica.
func chaosClusterConfig(f *chaosFakes, name, redisAddr, prefix string, extra ...string) string {
	host, port, _ := net.SplitHostPort(redisAddr)
	return registryConfig(f.reqAddrs[name], f.apiAddr, append([]string{
		"replicaId: " + name, "registerInterval: 1", "startupSpread: 1s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s",
		"keyPrefix: \"" + prefix + "\"", "cache:", "  provider: redis",
		fmt.Sprintf("  parameters: host=%s,port=%s", host, port)}, extra...)...)
}

// chaosSince keeps the requests received after the first seq ones.
func chaosSince(recs []fakerequester.Recorded, seq int64) []fakerequester.Recorded {
	var out []fakerequester.Recorded
	for _, r := range recs {
		if r.Seq > seq {
			out = append(out, r)
		}
	}
	return out
}

// chaosEachHas: every one of refs has a request among recs.
func chaosEachHas(recs []fakerequester.Recorded, refs []string) bool {
	have := map[string]bool{}
	for _, r := range recs {
		have[r.Key] = true
	}
	for _, ref := range refs {
		if !have[ref] {
			return false
		}
	}
	return true
}

// chaosAllGranted: every one of refs got a 200 OK.
func chaosAllGranted(refs []string) func([]fakerequester.Recorded) bool {
	return func(recs []fakerequester.Recorded) bool {
		ok := map[string]bool{}
		for _, r := range recs {
			if r.Resp.GetResponseType().String() == "OK" {
				ok[r.Key] = true
			}
		}
		for _, ref := range refs {
			if !ok[ref] {
				return false
			}
		}
		return true
	}
}

// chaosAnswered: no request of recs is still in flight.
func chaosAnswered(recs []fakerequester.Recorded) bool {
	for _, r := range recs {
		if r.Resp == nil && r.Err == nil {
			return false
		}
	}
	return true
}

// chaosLastSeq is the Seq of the last request received (0: none).
func chaosLastSeq(f *chaosFakes) int64 {
	a := f.req.Arrivals()
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1].Seq
}
