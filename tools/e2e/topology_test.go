package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"

	"sipreg.dev/tools/fakerequester"
)

// needRedisServer skips the test when redis-server is not installed (fails in CI).
func needRedisServer(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

// startRedisOn starts a redis-server of the test's own on 127.0.0.1:port (no
// persistence) and waits until it accepts connections.
func startRedisOn(t *testing.T, port int, args ...string) *proc {
	t.Helper()
	p := startProcPath(t, "redis-server", append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	p.waitLine("redis ready", 20*time.Second, func(l string) bool { return strings.Contains(l, "Ready to accept connections") })
	return p
}

// redisCLI runs redis-cli against 127.0.0.1:port and returns its output.
func redisCLI(t *testing.T, port int, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// pollCLI runs redis-cli until its output contains want.
func pollCLI(t *testing.T, what string, port int, want string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := redisCLI(t, port, args...)
		if err == nil && strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: redis-cli %v: %q, %v (want %q)", what, args, out, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startRedisCluster starts a Redis Cluster of three masters and returns their
// addresses once it is up.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	var ports []int
	var addrs []string
	for range 3 {
		port := freePort(t)
		dir := t.TempDir()
		startRedisOn(t, port, "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(freePort(t)),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000")
		ports = append(ports, port)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	if out, err := exec.Command("redis-cli", append([]string{"--cluster", "create"}, append(addrs, "--cluster-replicas", "0", "--cluster-yes")...)...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, port := range ports {
		pollCLI(t, "cluster up", port, "cluster_state:ok", "cluster", "info")
	}
	return addrs
}

// startSentinel starts a master, a replica of it and a Sentinel that monitors them as
// "mymaster"; it returns the Sentinel's port and the master's and replica's.
func startSentinel(t *testing.T) (sentinel, master, replica int) {
	t.Helper()
	master, replica, sentinel = freePort(t), freePort(t), freePort(t)
	startRedisOn(t, master)
	startRedisOn(t, replica, "--replicaof", "127.0.0.1", fmt.Sprint(master))
	conf := writeFile(t, "sentinel.conf", fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor mymaster 127.0.0.1 %d 1
sentinel down-after-milliseconds mymaster 2000
sentinel failover-timeout mymaster 10000
`, sentinel, t.TempDir(), master))
	startProcPath(t, "redis-server", conf, "--sentinel")
	pollCLI(t, "sentinel monitoring", sentinel, fmt.Sprint(master), "sentinel", "get-master-addr-by-name", "mymaster")
	pollCLI(t, "replica in sync", master, "connected_slaves:1", "info", "replication")
	return sentinel, master, replica
}

// TestClusterModeOnRedisTopologies: two replicas in cluster mode behave as one registry
// on a Redis Cluster (hash-tagged keyPrefix) and behind Sentinel, through the documented
// cache.parameters; behind Sentinel they go on after a failover to the replica.
func TestClusterModeOnRedisTopologies(t *testing.T) {
	needRedisServer(t)
	for _, tc := range []struct {
		name string
		// start returns cache.parameters and the keyPrefix, and a failover to run
		// mid-test (nil: none).
		start func(t *testing.T) (params, prefix string, failover func())
	}{
		{"redis-cluster", func(t *testing.T) (string, string, func()) {
			addrs := startRedisCluster(t)
			return "addrs=" + strings.Join(addrs, ";"), "{sipreg}:registration:", nil
		}},
		{"sentinel", func(t *testing.T) (string, string, func()) {
			sentinel, master, replica := startSentinel(t)
			return fmt.Sprintf("addrs=127.0.0.1:%d,masterName=mymaster", sentinel), "sipreg:", func() {
				pollCLI(t, "failover started", sentinel, "OK", "sentinel", "failover", "mymaster")
				pollCLI(t, "replica promoted", sentinel, fmt.Sprint(replica), "sentinel", "get-master-addr-by-name", "mymaster")
				pollCLI(t, "old master demoted", master, "role:slave", "info", "replication")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, prefix, failover := tc.start(t)
			const n = 30
			f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600}}, clusterTrunks(n))
			cfg := registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 1", "startupSpread: 1s",
				"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s",
				"keyPrefix: \""+prefix+"\"", "cache:", "  provider: redis", "  parameters: "+params)
			reps := startReplicas(t, 2, cfg)
			share := waitBalanced(t, reps[0].control, n, 2)
			for _, refs := range share {
				for _, ref := range refs {
					if got := len(forKey(f.req.Requests(), ref)); got != 1 {
						t.Errorf("%s: %d REGISTERs, want 1 (one replica)", ref, got)
					}
				}
			}
			// A trunk of the second replica, watched and forced through the first.
			all := owners(t, reps[0].control)
			var ref, owner string
			for r, reg := range all {
				if reg.GetOwner() != all["u000"].GetOwner() {
					ref, owner = r, reg.GetOwner()
					break
				}
			}
			forceWatched(t, reps[0].control, ref, owner)
			forceAllOnce(t, f, reps[0].control, n)
			if failover == nil {
				return
			}
			failover()
			// Writes and the change feed follow the new master: a forced REGISTER
			// reaches the watcher on the other replica.
			forceWatched(t, reps[0].control, ref, owner)
			checkOneSender(t, f, 600*time.Second)
		})
	}
}

// forceWatched watches ref on the replica serving control, forces a REGISTER of it
// there, and checks that the watcher sees the owner's new CSeq, and the list then too.
func forceWatched(t *testing.T, control, ref, owner string) {
	t.Helper()
	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+control)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch, err := client.WatchRegistrations(ctx, connect.NewRequest(&registryv1.WatchRegistrationsRequest{TrunkRef: ref}))
	if err != nil {
		t.Fatal(err)
	}
	if !watch.Receive() {
		t.Fatalf("Watch %s on %s: no snapshot: %v", ref, control, watch.Err())
	}
	seq := watch.Msg().GetRegistration().GetCseq()
	fr, err := client.ForceRegister(ctx, connect.NewRequest(&registryv1.ForceRegisterRequest{TrunkRef: ref}))
	if err != nil {
		t.Fatalf("ForceRegister %s through %s: %v", ref, control, err)
	}
	if got := fr.Msg.GetResults()[0].GetRegistration(); got.GetOwner() != owner || got.GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
		t.Errorf("forced registration %v: want registered by the owner %s", got, owner)
	}
	for {
		if !watch.Receive() {
			t.Fatalf("Watch %s on %s saw no change after the forced REGISTER (CSeq was %d): %v", ref, control, seq, watch.Err())
		}
		m := watch.Msg()
		if m.GetRemoved() || m.GetRegistration().GetTrunkRef() != ref {
			t.Fatalf("Watch %s: unexpected %v", ref, m)
		}
		if got := m.GetRegistration(); got.GetCseq() > seq {
			if got.GetOwner() != owner || got.GetCseq() != seq+1 {
				t.Errorf("Watch %s on %s: %v, want CSeq %d by %s", ref, control, got, seq+1, owner)
			}
			break
		}
	}
	// The replica's list is as current as its Watch.
	if got := owners(t, control)[ref]; got.GetCseq() != seq+1 {
		t.Errorf("ListRegistrations on %s after the change: %s CSeq %d, want %d", control, ref, got.GetCseq(), seq+1)
	}
}

// forceAllOnce calls ForceRegister{all} on one replica: every trunk of the cluster gets
// exactly one more REGISTER, from its owner, and a result without error.
func forceAllOnce(t *testing.T, f *fakes, control string, n int) {
	t.Helper()
	before := map[string]int{}
	for _, x := range f.req.Requests() {
		before[x.Key]++
	}
	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+control)
	res, err := client.ForceRegister(context.Background(), connect.NewRequest(&registryv1.ForceRegisterRequest{All: true}))
	if err != nil {
		t.Fatalf("ForceRegister all on %s: %v", control, err)
	}
	if got := len(res.Msg.GetResults()); got != n {
		t.Errorf("ForceRegister all on %s: %d results, want one per trunk of the cluster (%d)", control, got, n)
	}
	for _, r := range res.Msg.GetResults() {
		if r.GetError() != "" || r.GetRegistration().GetOwner() == "" {
			t.Errorf("ForceRegister all: %v", r)
		}
	}
	after := map[string]int{}
	for _, x := range f.req.Requests() {
		after[x.Key]++
	}
	for ref, c := range before {
		if after[ref] != c+1 {
			t.Errorf("%s: %d REGISTERs after ForceRegister all, want %d", ref, after[ref], c+1)
		}
	}
}
