// Package cluster is the bench's several-replicas scenario: Replicas registry
// processes in cluster mode share the trunks on one Redis, each reaching it through the
// bench's counting proxy (bench/redisproxy). It measures what running several
// replicas costs and whether a replica's loss is survived: the time until every trunk
// is registered, the Redis commands and round trips per registration and per
// lease-renewal round, each replica's idle CPU, and the failover after a SIGKILL of
// the replica owning the most trunks (every trunk it owned REGISTERed again within the
// lease TTL plus TargetFailoverSlack, each continuing its binding). Ownership is read
// from the replicas' control API and /metrics. The single-replica bench (package
// bench) supplies the fakes, the registry's config and the report's helpers; Write
// prints this scenario's table after bench.Write's.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sipreg.dev/tools/bench"
	"sipreg.dev/tools/bench/fakes"
	"sipreg.dev/tools/bench/proc"
	"sipreg.dev/tools/bench/redisconn"
	"sipreg.dev/tools/bench/redisproxy"
)

// The several-replicas scenario.
const (
	// Replicas is how many registry replicas share the trunks.
	Replicas = 3
	// DefaultLeaseTTL is the replicas' spec.leaseTTL.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultIdle is the default idle window.
	DefaultIdle = 60 * time.Second
	// TargetFailoverSlack: a SIGKILLed replica's trunks are all REGISTERed again within
	// the lease TTL plus this (12 s with the default lease TTL).
	TargetFailoverSlack = 2 * time.Second
)

// Config is the several-replicas scenario: Replicas registries in
// cluster mode share Trunks trunks on one Redis, each reaching it through the bench's
// counting proxy.
type Config struct {
	// Registry is the path of the registry binary.
	Registry string
	// Trunks is how many trunks the fake API serves (all sendRegister).
	Trunks int
	// RedisAddr is host:port of the Redis server.
	RedisAddr string
	// Interval is the replicas' registerInterval (0: left out, the shipped default).
	Interval time.Duration
	// LeaseTTL is the replicas' spec.leaseTTL (0: DefaultLeaseTTL).
	LeaseTTL time.Duration
	// MemoryLimit is each replica's spec.memoryLimit ("0" or "" leave it out: none).
	MemoryLimit string
	// Timeout bounds the registration phase, from the first FindBy.
	Timeout time.Duration
	// Idle is the idle window, rounded to whole lease-renewal periods (LeaseTTL/3),
	// at least one (0: DefaultIdle).
	Idle time.Duration
	// FailoverTimeout bounds the wait for the killed replica's trunks to be
	// REGISTERed again (0: six lease TTLs).
	FailoverTimeout time.Duration
	// Progress, when set, gets a line at each step.
	Progress io.Writer
}

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

// Run runs the several-replicas scenario: it starts the fakes and
// Replicas registries in cluster mode on one Redis (through the counting
// proxy), waits until every trunk is registered, measures an idle window, SIGKILLs
// the replica owning the most trunks and waits until each of its trunks is
// REGISTERed again, then stops the others (SIGTERM) and deletes the scenario's Redis
// keys. It fails only when the scenario cannot be measured; res holds the phases
// measured before.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 6 * cfg.LeaseTTL
	}
	res = Result{Trunks: cfg.Trunks, LeaseTTL: cfg.LeaseTTL, Interval: cfg.Interval, FailoverTimeout: cfg.FailoverTimeout}
	if res.Interval <= 0 {
		res.Interval = bench.DefaultRegisterInterval
	}
	for i := range Replicas {
		res.Replicas = append(res.Replicas, fmt.Sprintf("r%d", i+1))
	}
	if cfg.Trunks < 1 {
		return res, fmt.Errorf("trunks: %d is not a positive number", cfg.Trunks)
	}
	if cfg.Timeout <= 0 {
		return res, errors.New("timeout must be positive")
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: cluster, %d × registry, %d trunks: %s\n", Replicas, cfg.Trunks, fmt.Sprintf(format, args...))
		}
	}

	// Redis: the replicas reach it through the counting proxy, the bench straight.
	rc, err := redisconn.Dial(ctx, cfg.RedisAddr)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	proxy, err := redisproxy.Start(cfg.RedisAddr)
	if err != nil {
		return res, err
	}
	defer proxy.Close()
	prefix := "bench-" + bench.RandomHex(6) + ":"

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
	watch := fakes.NewFindByWatch(func(at time.Time) {
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
	req := fakes.NewTrackingRequester(cfg.Trunks)
	apiAddr, reqAddr, stopFakes, err := fakes.Serve(cfg.Trunks, watch, req)
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
		for i, rp := range reps {
			res.LogLines[i], res.LastLog[i] = rp.reg.Output()
		}
		rcFirst.Lock()
		defer rcFirst.Unlock()
		for _, p := range []string{prefix, clusterPrefix(prefix)} {
			n, derr := rc.DeletePrefix(p)
			res.RedisKeys += n
			if derr != nil && err == nil {
				err = fmt.Errorf("delete the scenario's Redis keys (prefix %s): %w", p, derr)
			}
		}
	}()
	progress("starting %d replicas of %s", Replicas, cfg.Registry)
	for _, id := range res.Replicas {
		rp := &replica{id: id}
		if rp.control, err = freeAddr(); err != nil {
			return res, err
		}
		if rp.metrics, err = freeAddr(); err != nil {
			return res, err
		}
		yaml, err := clusterRegistryConfig(cfg, id, rp.control, rp.metrics, reqAddr, apiAddr, proxy.Addr(), prefix)
		if err != nil {
			return res, err
		}
		path := filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			return res, err
		}
		if rp.reg, err = proc.Start(cfg.Registry, path); err != nil {
			return res, fmt.Errorf("replica %s: %w", id, err)
		}
		reps = append(reps, rp)
	}
	all := make([]int, len(reps))
	for i, rp := range reps {
		all[i] = rp.reg.PID()
	}
	pids.Store(&all)
	exits := watchExits(reps)

	// Phase 1: the first FindBy (the discovery leader's).
	if err := exits.wait(ctx, firstDone, bench.StartTimeout+cfg.LeaseTTL, "the first FindBy"); err != nil {
		return res, err
	}
	if first.err != nil {
		return res, fmt.Errorf("sample at the first FindBy: %w", first.err)
	}
	progress("first FindBy; registering")

	// Phase 2: every trunk answered OK.
	if err := exits.wait(ctx, req.Done(), cfg.Timeout-time.Since(first.at), "every trunk to be registered"); err != nil {
		if errors.Is(err, bench.ErrTimeout) {
			return res, fmt.Errorf("%w: only %d of %d within %s of the first FindBy (%d REGISTERs)",
				bench.ErrIncomplete, req.Distinct(), cfg.Trunks, cfg.Timeout, req.Calls())
		}
		return res, err
	}
	res.Registered = true
	res.RegisterTime = req.DoneAt().Sub(first.at)
	res.FirstRegister = req.First().Sub(first.at)
	res.Registers = req.Calls()
	progress("registered in %.2f s; waiting for the replicas to be quiet", res.RegisterTime.Seconds())

	// Phase 3: quiet again (last records written).
	end, err := settleCluster(ctx, exits, all, proxy, req.DoneAt())
	if err != nil {
		return res, err
	}
	if end.redis, err = rc.Stats(); err != nil {
		return res, err
	}
	res.Settle, res.Settled = end.at.Sub(req.DoneAt()), end.quiet
	res.RegisterCPU = minus(end.cpu, first.point.cpu)
	res.FindBysDuringPhase = watch.Count()
	d := end.proxy.Since(first.point.proxy)
	res.RedisCommands, res.RedisRoundTrips, res.RedisByCommand = d.Commands, d.Trips, d.ByName
	res.RedisServerCommands, _ = end.redis.Since(first.point.redis)

	// Phase 4: an idle window of whole lease-renewal periods. Each replica renews
	// (and heartbeats) once per period, on its own ticker, so a window of n periods
	// holds n rounds of each.
	res.IdleRounds, res.IdleWindow = renewalRounds(cfg.Idle, cfg.LeaseTTL)
	progress("measuring an idle window of %s (%d lease-renewal rounds per replica)", seconds(res.IdleWindow), res.IdleRounds)
	a, err := sampleCluster(all, proxy, rc)
	if err != nil {
		return res, err
	}
	findBysA, callsA := watch.Count(), req.Calls()
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
	d = b.proxy.Since(a.proxy)
	res.IdleRedisCommands, res.IdleRedisRoundTrips, res.IdleRedisByCommand = d.Commands, d.Trips, d.ByName
	res.IdleRedisServerCommands, _ = b.redis.Since(a.redis)
	res.IdleFindBys = watch.Count() - findBysA
	res.IdleRegisters = req.Calls() - callsA

	// Phases 5 and 6: who owns what; SIGKILL the owner of the most trunks and
	// measure the failover.
	if err := failover(ctx, cfg, &res, reps, req, progress); err != nil {
		return res, err
	}
	return res, nil
}

// clusterRegistryConfig renders one replica's config: the single-replica bench's
// config with the redis cache behind redisAddr (the proxy), plus cluster mode.
func clusterRegistryConfig(cfg Config, id, control, metrics, requesterAddr, apiAddr, redisAddr, keyPrefix string) (string, error) {
	base, err := bench.RegistryConfig(bench.Config{Cache: bench.CacheRedis, Interval: cfg.Interval, MemoryLimit: cfg.MemoryLimit,
		ControlAddr: control, HTTPAddr: metrics}, requesterAddr, apiAddr, redisAddr, keyPrefix)
	if err != nil {
		return "", err
	}
	return base + fmt.Sprintf("  clusterMode: true\n  leaseTTL: %s\n  replicaId: %s\n  advertiseAddr: %s\n",
		cfg.LeaseTTL, strconv.Quote(id), control), nil
}
