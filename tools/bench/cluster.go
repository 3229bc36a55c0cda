package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/tools/fakeapi"
)

// The several-replicas scenario.
const (
	// ClusterReplicas is how many registry replicas share the trunks.
	ClusterReplicas = 3
	// DefaultLeaseTTL is the replicas' spec.leaseTTL.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultClusterIdle is the default idle window.
	DefaultClusterIdle = 60 * time.Second
	// TargetFailoverSlack: a SIGKILLed replica's trunks are all REGISTERed again within
	// the lease TTL plus this.
	TargetFailoverSlack = 5 * time.Second
	// The registry's log messages (info level) the scenario tallies per replica.
	msgTakenOver = "trunks taken over from a replica that left" // one line per claim round, with a count
	msgTakenBack = "leases taken back after they vanished; bindings continue"
	msgLost      = "trunks now owned by another replica"
	// listPageSize is the page size of ListRegistrations (its largest).
	listPageSize = 1000
	// listTimeout bounds one ListRegistrations call.
	listTimeout = 2 * time.Minute
)

// ClusterConfig is the several-replicas scenario: ClusterReplicas registries in
// cluster mode share Trunks trunks on one Redis, each reaching it through the bench's
// counting proxy.
type ClusterConfig struct {
	// Registry is the path of the registry binary.
	Registry string
	// Trunks is how many trunks the fake API serves (all sendRegister).
	Trunks int
	// RedisAddr is host:port of the Redis server.
	RedisAddr string
	// Interval is the replicas' registerInterval.
	Interval time.Duration
	// LeaseTTL is the replicas' spec.leaseTTL (0: DefaultLeaseTTL).
	LeaseTTL time.Duration
	// MemoryLimit is each replica's spec.memoryLimit ("0" or "" for none).
	MemoryLimit string
	// Timeout bounds the registration phase, from the first FindBy.
	Timeout time.Duration
	// Idle is the idle window, rounded to whole lease-renewal periods (LeaseTTL/3),
	// at least one (0: DefaultClusterIdle).
	Idle time.Duration
	// FailoverTimeout bounds the wait for the killed replica's trunks to be
	// REGISTERed again (0: six lease TTLs).
	FailoverTimeout time.Duration
	// Progress, when set, gets a line at each step.
	Progress io.Writer
}

// ClusterResult is what the several-replicas scenario measured. A phase that was not
// reached leaves its fields zero and its flag (Registered, IdleMeasured,
// FailoverMeasured) false.
type ClusterResult struct {
	// Trunks, Replicas (their IDs, r1...), LeaseTTL and Interval repeat the set-up.
	Trunks   int
	Replicas []string
	LeaseTTL time.Duration
	Interval time.Duration

	// Registered is true once every trunk was answered 200 OK within the timeout.
	Registered bool
	// RegisterTime is from the first FindBy (by the discovery leader) until the
	// N-th distinct trunk was answered 200 OK; FirstRegister until the first
	// REGISTER. Registers counts the REGISTERs of the phase.
	RegisterTime  time.Duration
	FirstRegister time.Duration
	Registers     int64
	// RegisterCPU is each replica's CPU from the first FindBy until the replicas
	// were quiet after the last answer; Settle and Settled as in Result.
	RegisterCPU []float64
	Settle      time.Duration
	Settled     bool
	// FindBysDuringPhase counts the FindBy calls of the phase (the leader's).
	FindBysDuringPhase int
	// RedisCommands and RedisRoundTrips are what the replicas sent to Redis over the
	// phase (the proxy's count, all replicas), by command in RedisByCommand;
	// RedisServerCommands is Redis's own, server-wide count.
	RedisCommands       int64
	RedisRoundTrips     int64
	RedisByCommand      map[string]int64
	RedisServerCommands int64

	// IdleMeasured is true once the idle window was measured: IdleRounds lease-
	// renewal periods (LeaseTTL/3 each) of IdleWindow in all, once every trunk was
	// registered and the replicas were quiet. IdleCPU is each replica's CPU over it.
	IdleMeasured            bool
	IdleWindow              time.Duration
	IdleRounds              int
	IdleCPU                 []float64
	IdleRedisCommands       int64
	IdleRedisRoundTrips     int64
	IdleRedisByCommand      map[string]int64
	IdleRedisServerCommands int64
	IdleRegisters           int64
	IdleFindBys             int

	// Leases is how many trunk leases were held before the kill, Owned how many by
	// each replica (read from the lease keys). Listed is how many registrations the
	// first page of ListRegistrations through ListedFrom returned (taking ListTime),
	// ListAgree how many of them were REGISTERED with the lease's owner and the
	// expected AOR user.
	Leases     int
	Owned      map[string]int
	Listed     int
	ListAgree  int
	ListedFrom string
	ListTime   time.Duration

	// FailoverMeasured is true once the failover was measured (complete or not).
	// Victim is the replica SIGKILLed (the one owning the most trunks), Moved how
	// many trunks it owned, Refreshed how many of them were REGISTERed again after
	// the kill, within FailoverTimeout; FailoverComplete says all were, and then
	// FailoverTime is from the kill until the last of them (FailoverFirst until
	// the first). Continued is how many of them kept their Call-ID with a higher
	// CSeq (the new owner moves past the dead one's reserved CSeq ceiling);
	// Unmatched how many had no AOR user or no REGISTER before the kill (counted
	// as not continued).
	FailoverMeasured bool
	Victim           string
	Moved            int
	Refreshed        int
	FailoverComplete bool
	FailoverTime     time.Duration
	FailoverFirst    time.Duration
	FailoverTimeout  time.Duration
	Continued        int
	Unmatched        int
	// FailoverRegisters is how many REGISTERs arrived from the kill until the last
	// moved trunk was refreshed (or the timeout).
	FailoverRegisters int64
	// MovedTo is who holds the leases of the killed replica's trunks after the
	// failover ("" for no lease).
	MovedTo map[string]int
	// TakenOver, TakenBack and LostLeases are per replica, over the whole run, from
	// its log: trunks it took over from a replica that left, leases it took back
	// after they vanished from Redis (its renewal came too late), and trunks it found
	// owned by another replica. All are 0 but TakenOver in a smooth failover.
	TakenOver  []int64
	TakenBack  []int64
	LostLeases []int64

	// RedisKeys is how many keys of the scenario's two prefixes (records; the
	// cluster's leases, fences, members and desired set) were deleted at the end.
	RedisKeys int
	// LogLines and LastLog are per replica: warning and error lines (the replicas
	// log at info level, in JSON), and the last few.
	LogLines []int
	LastLog  [][]string
}

// RedisPerRegistration is the phase's Redis commands per registration.
func (r ClusterResult) RedisPerRegistration() float64 {
	return float64(r.RedisCommands) / float64(max(r.Trunks, 1))
}

// RoundTripsPerRegistration is the phase's Redis round trips per registration.
func (r ClusterResult) RoundTripsPerRegistration() float64 {
	return float64(r.RedisRoundTrips) / float64(max(r.Trunks, 1))
}

// CommandsPerRenewalRound is the idle window's Redis commands divided by (renewal
// rounds × replicas).
func (r ClusterResult) CommandsPerRenewalRound() float64 {
	return float64(r.IdleRedisCommands) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// RoundTripsPerRenewalRound is the idle window's Redis round trips divided by
// (renewal rounds × replicas).
func (r ClusterResult) RoundTripsPerRenewalRound() float64 {
	return float64(r.IdleRedisRoundTrips) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// ServerCommandsPerRenewalRound is Redis's own count over the idle window (the
// commands Lua scripts run included) divided by (renewal rounds × replicas).
func (r ClusterResult) ServerCommandsPerRenewalRound() float64 {
	return float64(r.IdleRedisServerCommands) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// IdleCPUPerMinute is each replica's CPU over the idle window scaled to a minute.
func (r ClusterResult) IdleCPUPerMinute() []float64 {
	out := make([]float64, len(r.IdleCPU))
	if r.IdleWindow <= 0 {
		return out
	}
	for i, c := range r.IdleCPU {
		out[i] = c * float64(time.Minute) / float64(r.IdleWindow)
	}
	return out
}

// TargetFailover is the failover target: the lease TTL plus TargetFailoverSlack.
func (r ClusterResult) TargetFailover() time.Duration { return r.LeaseTTL + TargetFailoverSlack }

// renewalRounds returns how many whole lease-renewal periods (ttl/3) make the idle
// window closest to idle, at least one, and the window they make.
func renewalRounds(idle, ttl time.Duration) (int, time.Duration) {
	period := ttl / 3
	n := max(1, int(math.Round(float64(idle)/float64(period))))
	return n, time.Duration(n) * period
}

// clusterPrefix is where the registry keeps the cluster's keys for a record prefix
// (serve.go's clusterPrefix): the prefix with its ":" replaced by "-cluster:".
func clusterPrefix(keyPrefix string) string {
	return strings.TrimSuffix(keyPrefix, ":") + "-cluster:"
}

// replica is one registry of the scenario.
type replica struct {
	id      string
	reg     *registry
	control string
	killed  bool
}

// exitWatch notices the first of some registries to exit.
type exitWatch struct {
	ch    chan struct{}
	once  sync.Once
	mu    sync.Mutex
	first *replica
}

func watchExits(reps []*replica) *exitWatch {
	w := &exitWatch{ch: make(chan struct{})}
	for _, rp := range reps {
		go func() {
			<-rp.reg.exited
			w.once.Do(func() {
				w.mu.Lock()
				w.first = rp
				w.mu.Unlock()
				close(w.ch)
			})
		}()
	}
	return w
}

// err describes the exit (nil before one).
func (w *exitWatch) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first == nil {
		return nil
	}
	return fmt.Errorf("replica %s: %w", w.first.id, w.first.reg.exitError())
}

// wait waits for done, failing when a watched registry exits, ctx ends or d passes.
func (w *exitWatch) wait(ctx context.Context, done <-chan struct{}, d time.Duration, what string) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-w.ch:
		return w.err()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("waiting for %s: %w", what, errTimeout)
	}
}

// sleepUntil waits until t, failing when a watched registry exits or ctx ends.
func (w *exitWatch) sleepUntil(ctx context.Context, t time.Time) error {
	err := w.wait(ctx, nil, time.Until(t), "")
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// clusterPoint is one reading of the replicas' counters.
type clusterPoint struct {
	at    time.Time
	cpu   []float64 // per replica
	proxy proxyCounts
	redis redisStats
	quiet bool
}

// sampleCluster reads each pid's CPU, the proxy's counts and (rc not nil) Redis's.
func sampleCluster(pids []int, proxy *redisProxy, rc *redisConn) (clusterPoint, error) {
	p := clusterPoint{at: time.Now(), cpu: make([]float64, len(pids)), proxy: proxy.counts()}
	for i, pid := range pids {
		c, err := cpuSeconds(pid)
		if err != nil {
			return p, err
		}
		p.cpu[i] = c
	}
	if rc != nil {
		var err error
		if p.redis, err = rc.stats(); err != nil {
			return p, err
		}
	}
	return p, nil
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func minus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// settleCluster is settle for several replicas: quiet is at most settleCPU of CPU per
// replica and no Redis command through the proxy over settleQuiet.
func settleCluster(ctx context.Context, w *exitWatch, pids []int, proxy *redisProxy, since time.Time) (clusterPoint, error) {
	var window []clusterPoint
	for {
		p, err := sampleCluster(pids, proxy, nil)
		if err != nil {
			return p, err
		}
		window = append(window, p)
		for len(window) > 1 && p.at.Sub(window[1].at) >= settleQuiet {
			window = window[1:]
		}
		if old := window[0]; p.at.Sub(old.at) >= settleQuiet && sum(p.cpu)-sum(old.cpu) <= settleCPU*float64(len(pids)) &&
			p.proxy.commands == old.proxy.commands {
			p.quiet = true
			return p, nil
		}
		if p.at.Sub(since) >= settleMax {
			return p, nil
		}
		if err := w.sleepUntil(ctx, p.at.Add(settlePoll)); err != nil {
			return p, err
		}
	}
}

// RunCluster runs the several-replicas scenario: it starts the fakes and
// ClusterReplicas registries in cluster mode on one Redis (through the counting
// proxy), waits until every trunk is registered, measures an idle window, SIGKILLs
// the replica owning the most trunks and waits until each of its trunks is
// REGISTERed again, then stops the others (SIGTERM) and deletes the scenario's Redis
// keys. It fails only when the scenario cannot be measured; res holds the phases
// measured before.
func RunCluster(ctx context.Context, cfg ClusterConfig) (res ClusterResult, err error) {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultClusterIdle
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 6 * cfg.LeaseTTL
	}
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "0"
	}
	res = ClusterResult{Trunks: cfg.Trunks, LeaseTTL: cfg.LeaseTTL, Interval: cfg.Interval, FailoverTimeout: cfg.FailoverTimeout}
	for i := range ClusterReplicas {
		res.Replicas = append(res.Replicas, fmt.Sprintf("r%d", i+1))
	}
	if cfg.Trunks < 1 {
		return res, fmt.Errorf("trunks: %d is not a positive number", cfg.Trunks)
	}
	if cfg.Interval <= 0 || cfg.Timeout <= 0 {
		return res, errors.New("interval and timeout must be positive")
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: cluster, %d × registry, %d trunks: %s\n", ClusterReplicas, cfg.Trunks, fmt.Sprintf(format, args...))
		}
	}

	// Redis: the replicas reach it through the counting proxy, the bench straight.
	rc, err := dialRedis(ctx, cfg.RedisAddr)
	if err != nil {
		return res, err
	}
	defer rc.close()
	proxy, err := startRedisProxy(cfg.RedisAddr)
	if err != nil {
		return res, err
	}
	defer proxy.close()
	prefix := "bench-" + randomHex(6) + ":"

	// The fakes, in process.
	var pids atomic.Pointer[[]int]
	var first struct {
		at    time.Time
		point clusterPoint
		err   error
	}
	firstDone := make(chan struct{})
	// rcFirst keeps the first sample and the clean-up of a scenario that ends early
	// off rc at the same time; otherwise rc is used only after firstDone is closed.
	var rcFirst sync.Mutex
	watch := newFindByWatch(func(at time.Time) {
		// In fakeapi's handler, before it answers: nothing of the phase has happened.
		rcFirst.Lock()
		defer rcFirst.Unlock()
		defer close(firstDone)
		first.at = at
		p := pids.Load()
		if p == nil {
			first.err = errors.New("FindBy before every replica's pid was known")
			return
		}
		first.point, first.err = sampleCluster(*p, proxy, rc)
	})
	progress("generating trunks")
	req := newTrackingRequester(cfg.Trunks)
	apiAddr, reqAddr, stopFakes, err := serveFakes(cfg.Trunks, watch, req)
	if err != nil {
		return res, err
	}
	defer stopFakes()

	dir, err := os.MkdirTemp("", "sipreg-bench-cluster-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	// The replicas, started back to back: each waits a third of the lease TTL
	// before its first discovery, so they see each other before they claim.
	var reps []*replica
	defer func() {
		res.LogLines, res.LastLog = make([]int, len(res.Replicas)), make([][]string, len(res.Replicas))
		if serr := stopReplicas(reps); serr != nil && err == nil {
			err = serr
		}
		res.TakenOver, res.TakenBack, res.LostLeases = make([]int64, len(reps)), make([]int64, len(reps)), make([]int64, len(reps))
		for i, rp := range reps {
			res.LogLines[i], res.LastLog[i] = rp.reg.output()
			res.TakenOver[i], res.TakenBack[i], res.LostLeases[i] = rp.reg.tally(msgTakenOver), rp.reg.tally(msgTakenBack), rp.reg.tally(msgLost)
		}
		rcFirst.Lock()
		defer rcFirst.Unlock()
		for _, p := range []string{prefix, clusterPrefix(prefix)} {
			n, derr := rc.deletePrefix(p)
			res.RedisKeys += n
			if derr != nil && err == nil {
				err = fmt.Errorf("delete the scenario's Redis keys (prefix %s): %w", p, derr)
			}
		}
	}()
	progress("starting %d replicas of %s", ClusterReplicas, cfg.Registry)
	for _, id := range res.Replicas {
		yaml, err := clusterRegistryConfig(cfg, id, reqAddr, apiAddr, proxy.addr(), prefix)
		if err != nil {
			return res, err
		}
		path := filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			return res, err
		}
		reg, err := startRegistryWith(cfg.Registry, path, procOptions{
			env: []string{"LOGS_LEVEL=info", "LOGS_FORMAT=json"}, json: true,
			tally: []string{msgTakenOver, msgTakenBack, msgLost},
		})
		if err != nil {
			return res, fmt.Errorf("replica %s: %w", id, err)
		}
		reps = append(reps, &replica{id: id, reg: reg})
	}
	all := make([]int, len(reps))
	for i, rp := range reps {
		all[i] = rp.reg.pid
	}
	pids.Store(&all)
	for _, rp := range reps {
		if rp.control, err = rp.reg.waitStarted(ctx, startTimeout); err != nil {
			return res, fmt.Errorf("replica %s: %w", rp.id, err)
		}
	}
	exits := watchExits(reps)

	// Phase 1: the first FindBy (the discovery leader's).
	if err := exits.wait(ctx, firstDone, startTimeout+cfg.LeaseTTL, "the first FindBy"); err != nil {
		return res, err
	}
	if first.err != nil {
		return res, fmt.Errorf("sample at the first FindBy: %w", first.err)
	}
	progress("first FindBy; registering")

	// Phase 2: every trunk answered OK.
	if err := exits.wait(ctx, req.done, cfg.Timeout-time.Since(first.at), "every trunk to be registered"); err != nil {
		if errors.Is(err, errTimeout) {
			return res, fmt.Errorf("%w: only %d of %d within %s of the first FindBy (%d REGISTERs)",
				ErrIncomplete, req.distinct.Load(), cfg.Trunks, cfg.Timeout, req.calls.Load())
		}
		return res, err
	}
	res.Registered = true
	res.RegisterTime = req.doneAt.Sub(first.at)
	res.FirstRegister = req.first().Sub(first.at)
	res.Registers = req.calls.Load()
	progress("registered in %.2f s; waiting for the replicas to be quiet", res.RegisterTime.Seconds())

	// Phase 3: quiet again (last records written).
	end, err := settleCluster(ctx, exits, all, proxy, req.doneAt)
	if err != nil {
		return res, err
	}
	if end.redis, err = rc.stats(); err != nil {
		return res, err
	}
	res.Settle, res.Settled = end.at.Sub(req.doneAt), end.quiet
	res.RegisterCPU = minus(end.cpu, first.point.cpu)
	res.FindBysDuringPhase = watch.count()
	d := end.proxy.since(first.point.proxy)
	res.RedisCommands, res.RedisRoundTrips, res.RedisByCommand = d.commands, d.trips, d.byName
	res.RedisServerCommands, _ = end.redis.since(first.point.redis)

	// Phase 4: an idle window of whole lease-renewal periods. Each replica renews
	// (and heartbeats) once per period, on its own ticker, so a window of n periods
	// holds n rounds of each.
	res.IdleRounds, res.IdleWindow = renewalRounds(cfg.Idle, cfg.LeaseTTL)
	progress("measuring an idle window of %s (%d lease-renewal rounds per replica)", seconds(res.IdleWindow), res.IdleRounds)
	a, err := sampleCluster(all, proxy, rc)
	if err != nil {
		return res, err
	}
	findBysA, callsA := watch.count(), req.calls.Load()
	if err := exits.sleepUntil(ctx, a.at.Add(res.IdleWindow)); err != nil {
		return res, err
	}
	b, err := sampleCluster(all, proxy, rc)
	if err != nil {
		return res, err
	}
	res.IdleMeasured = true
	res.IdleWindow = b.at.Sub(a.at)
	res.IdleCPU = minus(b.cpu, a.cpu)
	d = b.proxy.since(a.proxy)
	res.IdleRedisCommands, res.IdleRedisRoundTrips, res.IdleRedisByCommand = d.commands, d.trips, d.byName
	res.IdleRedisServerCommands, _ = b.redis.since(a.redis)
	res.IdleFindBys = watch.count() - findBysA
	res.IdleRegisters = req.calls.Load() - callsA

	// Phase 5: who owns what. The lease keys say it for every trunk at once (the
	// bench's own connection: the proxy does not count it); the first page of
	// ListRegistrations is checked against them. A whole listing is no option at
	// this size: every page makes the replica read every record from Redis.
	progress("reading the owners from the lease keys; checking one page of ListRegistrations through %s", reps[0].id)
	leases, err := rc.valuesByPrefix(leasePrefix(prefix))
	if err != nil {
		return res, fmt.Errorf("read the lease keys: %w", err)
	}
	owners := leaseOwners(leases)
	res.Leases = len(owners)
	res.Owned = map[string]int{}
	byOwner := map[string][]string{}
	for ref, o := range owners {
		res.Owned[o]++
		byOwner[o] = append(byOwner[o], ref)
	}
	users := trunkUsers(cfg.Trunks)
	listStart := time.Now()
	page, err := listPage(ctx, reps[0].control)
	if err != nil {
		return res, fmt.Errorf("ListRegistrations on replica %s (%s): %w", reps[0].id, reps[0].control, err)
	}
	res.ListTime, res.ListedFrom, res.Listed = time.Since(listStart), reps[0].id, len(page)
	for _, r := range page {
		if r.GetOwner() == owners[r.GetTrunkRef()] && aorUser(r.GetAor()) == users[r.GetTrunkRef()] &&
			r.GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
			res.ListAgree++
		}
	}
	victim := mostOwned(res.Owned)
	var killed *replica
	for _, rp := range reps {
		if rp.id == victim {
			killed = rp
		}
	}
	if killed == nil {
		return res, fmt.Errorf("no replica holds a lease under %s (owners %v)", leasePrefix(prefix), res.Owned)
	}

	// Phase 6: SIGKILL the victim; wait until each of its trunks is REGISTERed again.
	res.Victim, res.Moved = victim, len(byOwner[victim])
	var watchUsers []string
	for _, ref := range byOwner[victim] {
		u := users[ref]
		if _, ok := req.lastOf(u); u == "" || !ok {
			res.Unmatched++
			continue
		}
		watchUsers = append(watchUsers, u)
	}
	var survivors []*replica
	for _, rp := range reps {
		if rp != killed {
			survivors = append(survivors, rp)
		}
	}
	survivorExits := watchExits(survivors)
	progress("SIGKILL %s (holds %d leases); waiting up to %s for its trunks to be REGISTERed again", victim, res.Moved, cfg.FailoverTimeout)
	callsBefore := req.calls.Load()
	killedAt := time.Now()
	refreshed := req.watchFrom(watchUsers, killedAt)
	killed.killed = true
	killed.reg.kill()
	werr := survivorExits.wait(ctx, refreshed, cfg.FailoverTimeout-time.Since(killedAt), "the killed replica's trunks")
	if werr != nil && !errors.Is(werr, errTimeout) {
		return res, werr
	}
	res.FailoverRegisters = req.calls.Load() - callsBefore
	after, last := req.watched()
	res.FailoverMeasured = true
	res.FailoverComplete = werr == nil && res.Unmatched == 0
	res.Refreshed = len(after)
	if werr == nil {
		res.FailoverTime = last.Sub(killedAt)
	}
	firstAt := time.Time{}
	for _, e := range after {
		if firstAt.IsZero() || e.after.at.Before(firstAt) {
			firstAt = e.after.at
		}
		if b := e.before; b != nil && b.cseq >= 0 && e.after.callID == b.callID && e.after.cseq > b.cseq {
			res.Continued++
		}
	}
	if !firstAt.IsZero() {
		res.FailoverFirst = firstAt.Sub(killedAt)
	}
	// Where the leases went.
	if leases, err = rc.valuesByPrefix(leasePrefix(prefix)); err != nil {
		return res, fmt.Errorf("read the lease keys after the failover: %w", err)
	}
	owners = leaseOwners(leases)
	res.MovedTo = map[string]int{}
	for _, ref := range byOwner[victim] {
		res.MovedTo[owners[ref]]++
	}
	if werr == nil {
		progress("every trunk of %s REGISTERed again %.2f s after the kill; stopping the replicas", victim, res.FailoverTime.Seconds())
	} else {
		progress("%d of %d trunks of %s REGISTERed again within %s; stopping the replicas", res.Refreshed, res.Moved, victim, cfg.FailoverTimeout)
	}
	return res, nil
}

// leasePrefix is where the cluster keeps the trunk leases for a record prefix (see
// the cluster package's key layout): L+"lease:"+ref, where L is the cluster prefix
// plus "{leases}:" when it holds no hash tag, as the bench's prefix does not.
func leasePrefix(keyPrefix string) string {
	return clusterPrefix(keyPrefix) + "{leases}:lease:"
}

// leaseOwners reads the lease values ("<replicaID>:<fence>") into trunk ref -> owner.
func leaseOwners(leases map[string]string) map[string]string {
	out := make(map[string]string, len(leases))
	for ref, v := range leases {
		if i := strings.LastIndexByte(v, ':'); i > 0 {
			out[ref] = v[:i]
		}
	}
	return out
}

// trunkUsers returns the AOR user of each trunk the fake API generates, by ref: the
// URI's user, else the credentials' username (as the registry does).
func trunkUsers(n int) map[string]string {
	out := make(map[string]string, n)
	for _, t := range fakeapi.Generate(n) {
		u := ""
		if uris := t.GetUris(); len(uris) > 0 {
			u = uris[0].GetUser()
		}
		if u == "" {
			u = t.GetOutboundCredentials().GetUsername()
		}
		out[t.GetRef()] = u
	}
	return out
}

// stopReplicas stops every replica not killed, at the same time (SIGTERM, then
// SIGKILL after stopGrace), and kills none twice; it returns the first error.
func stopReplicas(reps []*replica) error {
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, rp := range reps {
		if rp.killed {
			continue
		}
		wg.Go(func() {
			if err := rp.reg.stop(stopGrace); err != nil {
				errs[i] = fmt.Errorf("replica %s: %w", rp.id, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mostOwned returns the owner of the most trunks (the smallest ID on a tie).
func mostOwned(owned map[string]int) string {
	best := ""
	for _, id := range slices.Sorted(maps.Keys(owned)) {
		if best == "" || owned[id] > owned[best] {
			best = id
		}
	}
	return best
}

// aorUser returns the user part of an address-of-record ("sip:user@domain").
func aorUser(aor string) string {
	rest := aor
	if i := strings.IndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[:i], "@") {
		rest = rest[i+1:]
	}
	user, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return user
}

// listPage returns the first page of ListRegistrations (listPageSize entries) on
// one replica's control API.
func listPage(ctx context.Context, control string) ([]*registryv1.Registration, error) {
	client := registryv1connect.NewRegistrationServiceClient(&http.Client{Timeout: listTimeout}, "http://"+control)
	resp, err := client.ListRegistrations(ctx, connect.NewRequest(&registryv1.ListRegistrationsRequest{PageSize: listPageSize}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetRegistrations(), nil
}

// clusterRegistryConfig renders one replica's config: the single-replica bench's
// config with the redis cache behind redisAddr (the proxy), plus cluster mode.
func clusterRegistryConfig(cfg ClusterConfig, id, requesterAddr, apiAddr, redisAddr, keyPrefix string) (string, error) {
	base, err := registryConfig(Config{Cache: CacheRedis, Interval: cfg.Interval, MemoryLimit: cfg.MemoryLimit},
		requesterAddr, apiAddr, redisAddr, keyPrefix)
	if err != nil {
		return "", err
	}
	return base + fmt.Sprintf("  clusterMode: true\n  leaseTTL: %s\n  replicaId: %s\n", cfg.LeaseTTL, strconv.Quote(id)), nil
}
