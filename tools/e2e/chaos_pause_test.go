package e2e

// Replicas paused (SIGSTOP) while their REGISTERs wait in the rate limiter or are in
// flight; the helpers are in chaos_test.go and chaos_replica_test.go, the invariant's
// checker (chaosCheckCSeq) in chaos_test.go.

import (
	"context"
	"fmt"
	"math"
	"net"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakerequester"
)

// signal sends sig to the replica.
func (r *chaosReplica) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s to replica %s: %v", sig, r.name, err)
	}
}

// pause stops the replica with SIGSTOP; a cleanup resumes it so it can be stopped.
func (r *chaosReplica) pause(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGSTOP)
	t.Logf("replica %s paused (SIGSTOP) at %s", r.name, time.Now().Format(chaosClock))
	t.Cleanup(func() { _ = r.p.cmd.Process.Signal(syscall.SIGCONT) })
}

// resume lets a paused replica go on (SIGCONT).
func (r *chaosReplica) resume(t *testing.T) {
	t.Helper()
	t.Logf("replica %s resumed (SIGCONT) at %s", r.name, time.Now().Format(chaosClock))
	r.signal(t, syscall.SIGCONT)
}

// chaosHeld is the replica's listing (its own trunks with their fencing tokens),
// taken before it is paused (before the moment the pause aims at: fencing tokens
// change only with the lease), for letGo once it is resumed.
func chaosHeld(t *testing.T, r *chaosReplica) map[string]*registryv1.Registration {
	t.Helper()
	return chaosWaitRegs(t, r, "its listing", 10*time.Second, func(map[string]*registryv1.Registration) bool { return true })
}

// TestChaosStaleRegisterRateLimited: with registersPerSecond 1 and more refreshes due
// than that (6 s bindings, refreshed half-way), a replica's REGISTERs always wait for
// their turn in the rate limiter. One replica (the victim) is paused (SIGSTOP) with
// REGISTERs waiting there, the other takes every trunk over, the victim resumes: the
// REGISTERs it had waiting must not go out with a CSeq the new owner has used or goes
// on to use.
func TestChaosStaleRegisterRateLimited(t *testing.T) {
	n := chaosScale(20, 40)
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 6}},
		chaosTrunks(n), "a", "b")
	host, port, prefix := sharedRedis(t, "chaos-rate")
	redis := net.JoinHostPort(host, port)
	a := chaosStartReplica(t, "a", chaosClusterConfig(f, "a", redis, prefix, "registersPerSecond: 1", "shutdownTimeout: 2s"))
	b := chaosStartReplica(t, "b", chaosClusterConfig(f, "b", redis, prefix, "registersPerSecond: 1", "shutdownTimeout: 2s"))
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	f.waitArrivals(t, "every trunk registered", 60*time.Second, chaosAllGranted(chaosRefs(n)))
	victim, survivor, mine := chaosPickVictim(chaosWaitSettled(t, b, n, "a", "b"), a, b)
	t.Logf("replica %s owns %d trunks, replica %s the others", victim.name, len(mine), survivor.name)
	held := chaosHeld(t, victim)
	// The victim sends at its pace (1/s) with more due: its REGISTERs queue in the limiter.
	seen := len(f.from(f.req.Arrivals(), victim.name))
	f.waitArrivals(t, "two more REGISTERs from "+victim.name, 30*time.Second, func(r []fakerequester.Recorded) bool {
		return len(f.from(r, victim.name)) >= seen+2
	})
	victim.pause(t)
	pausedAt := chaosLastSeq(f)
	chaosWaitRegs(t, survivor, survivor.name+" owning every trunk", 30*time.Second, chaosOwnsAll(survivor.name, chaosRefs(n)))
	resumedAt := chaosLastSeq(f)
	victim.resume(t)
	chaosWaitRegs(t, victim, victim.name+" noticing its trunks are gone", 30*time.Second, letGo(victim.name, held, mine))
	// Run on until each of the victim's former trunks was sent again since it resumed,
	// and twice since it was paused: whatever it still had queued went out (or was
	// dropped) and was followed by a REGISTER of the owner (the survivor, or the victim
	// again once it rejoins), so a stale CSeq shows as a repeat or a step back.
	f.waitArrivals(t, "two REGISTERs of each former trunk of "+victim.name+" since the pause, one since the resume", 90*time.Second, func(r []fakerequester.Recorded) bool {
		sincePause, sinceResume := map[string]int{}, map[string]int{}
		for _, x := range chaosSince(r, pausedAt) {
			sincePause[x.Key]++
			if x.Seq > resumedAt {
				sinceResume[x.Key]++
			}
		}
		for _, ref := range mine {
			if sincePause[ref] < 2 || sinceResume[ref] < 1 {
				return false
			}
		}
		return true
	})
}

// TestChaosStaleRegisterForcedBurst: no rate cap, answers delayed 200 ms; a
// ForceRegister{all} on one replica (the victim) starts a burst, and the victim is
// paused at several moments of it (before it starts, at its first request, half-way
// through its trunks, at its last request). The other replica takes every trunk over
// and refreshes it, the victim resumes: what it had in flight or about to send must not
// break the invariant.
func TestChaosStaleRegisterForcedBurst(t *testing.T) {
	n := chaosScale(40, 80)
	// Moments, as a fraction of a's trunks received from its burst (0: before it).
	moments := []float64{0, 0.01, 0.5, 1}
	if chaosLong() {
		moments = []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1}
	}
	for _, m := range moments {
		name := fmt.Sprintf("paused after %.0f%% of its REGISTERs", m*100)
		switch m {
		case 0:
			name = "paused before the burst"
		case 0.01:
			name = "paused at its first REGISTER"
		case 1:
			name = "paused at its last REGISTER"
		}
		t.Run(name, func(t *testing.T) {
			chaosForcedBurst(t, n, m)
		})
	}
}

func chaosForcedBurst(t *testing.T, n int, moment float64) {
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600, Delay: 200 * time.Millisecond}},
		chaosTrunks(n), "a", "b")
	host, port, prefix := sharedRedis(t, "chaos-burst")
	redis := net.JoinHostPort(host, port)
	a := chaosStartReplica(t, "a", chaosClusterConfig(f, "a", redis, prefix, "registersPerSecond: 100000"))
	b := chaosStartReplica(t, "b", chaosClusterConfig(f, "b", redis, prefix, "registersPerSecond: 100000"))
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	f.waitArrivals(t, "every trunk registered", 60*time.Second, chaosAllGranted(chaosRefs(n)))
	victim, survivor, mine := chaosPickVictim(chaosWaitSettled(t, b, n, "a", "b"), a, b)
	held := chaosHeld(t, victim)
	after := int(math.Ceil(moment * float64(len(mine))))
	before := chaosLastSeq(f)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	forced := make(chan error, 1)
	go func() {
		_, err := victim.client().ForceRegister(ctx, connect.NewRequest(&registryv1.ForceRegisterRequest{All: true}))
		forced <- err
	}()
	t.Cleanup(func() { cancel(); <-forced })
	if after > 0 {
		f.waitArrivals(t, fmt.Sprintf("%d forced REGISTERs from %s", after, victim.name), 30*time.Second, func(r []fakerequester.Recorded) bool {
			return len(f.from(chaosSince(r, before), victim.name)) >= after
		})
	}
	victim.pause(t)
	pausedAt := chaosLastSeq(f)
	t.Logf("replica %s owned %d trunks; %d of its forced REGISTERs received", victim.name, len(mine),
		len(f.from(chaosSince(f.req.Arrivals(), before), victim.name)))
	chaosWaitRegs(t, survivor, survivor.name+" owning every trunk", 30*time.Second, chaosOwnsAll(survivor.name, chaosRefs(n)))
	// The survivor refreshes what it took from a replica that died (within a second of
	// the claim).
	f.waitArrivals(t, survivor.name+"'s refresh of every trunk it took over", 30*time.Second, func(r []fakerequester.Recorded) bool {
		return chaosEachHas(f.from(chaosSince(r, pausedAt), survivor.name), mine)
	})
	victim.resume(t)
	// Once the victim's lease renewal has found its leases gone (it no longer lists
	// them as its own), whatever it had in flight or queued went out already (or was
	// dropped).
	chaosWaitRegs(t, victim, victim.name+" noticing its trunks are gone", 30*time.Second, letGo(victim.name, held, mine))
	f.waitArrivals(t, "every request answered", 30*time.Second, chaosAnswered)
}
