// Package bench measures the registry binary at scale: it runs the real binary against
// an in-process fake Routr API (fakeapi, with N generated trunks) and an in-process
// Requester that answers every REGISTER at once with 200 OK, and reads the registry's
// cost from /proc and, with the Redis cache, from a counting proxy on the registry's
// Redis connection (commands and round trips), next to Redis's own server-wide count.
//
// One Run is one run of a row of the table that `make bench` prints (see Write; a row
// is several runs, summed up by their median and spread): how long from the first
// FindBy until every trunk is registered, the rate of REGISTERs, the registry's CPU per
// 1,000 registrations, its peak RSS, Redis commands, round trips and memory per
// registration, and the CPU of one idle discovery tick once everything is registered.
// The registry runs on its shipped defaults (see RegistryConfig).
//
// "Registered" means the Requester has answered 200 OK to N distinct trunks (distinct
// AOR users). The Requester is the bench's own rather than fakerequester's, because
// the bench must see the moment the N-th distinct trunk is answered and fakerequester
// keeps no such count when it does not record requests.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"sipreg.dev/tools/bench/fakes"
	"sipreg.dev/tools/bench/proc"
	"sipreg.dev/tools/bench/redisconn"
	"sipreg.dev/tools/bench/redisproxy"
)

// Cache providers a row can use.
const (
	CacheMemory = "memory"
	CacheRedis  = "redis"
)

// Timing of the measurements around the registration phase.
const (
	// SettlePoll is how often the registry is looked at after the last trunk was
	// answered, until it is quiet (its last records written).
	SettlePoll = 50 * time.Millisecond
	// SettleQuiet is how long the registry must be quiet: at most SettleCPU of CPU
	// and no Redis command.
	SettleQuiet = 250 * time.Millisecond
	SettleCPU   = 0.02
	// SettleMax bounds the wait for quiet.
	SettleMax = 5 * time.Second
	// DefaultRegisterInterval is the registry's shipped registerInterval (spec.go in
	// services/registry/internal/config), which the bench leaves to the registry
	// unless Config.Interval is given; the idle window is timed by it.
	DefaultRegisterInterval = 60 * time.Second
	// redisMemorySample is how many of a run's keys MEMORY USAGE reads.
	redisMemorySample = 100
	// StartTimeout bounds the wait for the registry's first FindBy.
	StartTimeout = 30 * time.Second
	// StopGrace is how long the registry may take to stop after SIGTERM.
	StopGrace = 30 * time.Second
)

// Config is one row to measure.
type Config struct {
	// Registry is the path of the registry binary.
	Registry string
	// Trunks is how many trunks the fake API serves (all sendRegister).
	Trunks int
	// Cache is CacheMemory or CacheRedis.
	Cache string
	// RedisAddr is host:port of the Redis server for CacheRedis.
	RedisAddr string
	// Interval is the registry's registerInterval (the discovery period): 0 leaves
	// it out of the config (the shipped DefaultRegisterInterval).
	Interval time.Duration
	// Timeout bounds the registration phase, from the first FindBy.
	Timeout time.Duration
	// MemoryLimit is the registry's spec.memoryLimit (e.g. "280MiB"; "" or "0" leave
	// it out: none, the shipped default).
	MemoryLimit string
	// IdleWindows is how many back-to-back idle windows, one registerInterval each,
	// are measured once every trunk is registered (0 means 1).
	IdleWindows int
	// Progress, when set, gets a line at each step.
	Progress io.Writer
	// HTTPAddr and ControlAddr are the registry's listeners ("": 127.0.0.1:0).
	HTTPAddr, ControlAddr string
}

// firstSample is what is read at the moment of the first FindBy.
type firstSample struct {
	at       time.Time
	cpu      float64
	benchCPU float64
	rss      int64
	redis    redisconn.Stats
	proxy    redisproxy.Counts
	err      error
}

// Run measures one row: it starts the fakes and the registry, waits until every trunk
// is registered, measures an idle tick, stops the registry (SIGTERM) and deletes the
// row's Redis keys. It fails only when the row cannot be measured.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	res = Result{Trunks: cfg.Trunks, Cache: cfg.Cache, RedisCommands: -1, RedisRoundTrips: -1,
		RedisServerCommands: -1, IdleRedisCommands: -1, IdleRedisServerCommands: -1,
		RedisUsedMemoryBefore: -1, RedisUsedMemoryAfter: -1}
	if cfg.Trunks < 1 {
		return res, fmt.Errorf("trunks: %d is not a positive number", cfg.Trunks)
	}
	if cfg.Cache != CacheMemory && cfg.Cache != CacheRedis {
		return res, fmt.Errorf("cache: %q is not %s or %s", cfg.Cache, CacheMemory, CacheRedis)
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = DefaultRegisterInterval
	}
	if cfg.Timeout <= 0 {
		return res, errors.New("timeout must be positive")
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: %d trunks, %s: %s\n", cfg.Trunks, cfg.Cache, fmt.Sprintf(format, args...))
		}
	}

	// Redis first: a row that cannot reach it cannot run. The registry reaches it
	// through the counting proxy; the bench's own connection goes straight.
	var rc *redisconn.Conn
	var proxy *redisproxy.Proxy
	prefix, redisAddr := "", ""
	if cfg.Cache == CacheRedis {
		if rc, err = redisconn.Dial(ctx, cfg.RedisAddr); err != nil {
			return res, err
		}
		defer rc.Close()
		if proxy, err = redisproxy.Start(cfg.RedisAddr); err != nil {
			return res, err
		}
		defer proxy.Close()
		prefix, redisAddr = "bench-"+RandomHex(6)+":", proxy.Addr()
	}

	// The fakes, in process.
	var pid atomic.Int64
	var first firstSample
	firstDone := make(chan struct{})
	watch := fakes.NewFindByWatch(func(at time.Time) {
		// Runs in fakeapi's handler before it builds the answer: nothing of the
		// registration phase has happened yet. rc is not used elsewhere until
		// firstDone is closed.
		defer close(firstDone)
		first.at = at
		p := int(pid.Load())
		if p == 0 {
			first.err = errors.New("FindBy before the registry's pid was known")
			return
		}
		if first.cpu, first.err = proc.CPUSeconds(p); first.err != nil {
			return
		}
		if _, first.rss, first.err = proc.Memory(p); first.err != nil {
			return
		}
		if first.benchCPU, first.err = proc.CPUSeconds(os.Getpid()); first.err != nil {
			return
		}
		if rc != nil {
			first.proxy = proxy.Counts()
			first.redis, first.err = rc.Stats()
		}
	})
	progress("generating trunks")
	req := fakes.NewOKRequester(cfg.Trunks)
	apiAddr, reqAddr, stopFakes, err := fakes.Serve(cfg.Trunks, watch, req)
	if err != nil {
		return res, err
	}
	defer stopFakes()

	dir, err := os.MkdirTemp("", "sipreg-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "registry.yaml")
	yaml, err := RegistryConfig(cfg, reqAddr, apiAddr, redisAddr, prefix)
	if err != nil {
		return res, err
	}
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return res, err
	}

	progress("starting %s", cfg.Registry)
	reg, err := proc.Start(cfg.Registry, cfgPath)
	if err != nil {
		return res, err
	}
	pid.Store(int64(reg.PID()))
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		err := reg.Stop(StopGrace)
		res.LogLines, res.LastLog = reg.Output()
		return err
	}
	defer func() {
		if serr := stop(); serr != nil && err == nil {
			err = serr
		}
		if rc != nil {
			n, derr := rc.DeletePrefix(prefix)
			res.RedisKeys = n
			if derr != nil && err == nil {
				err = fmt.Errorf("delete the row's Redis keys (prefix %s): %w", prefix, derr)
			}
		}
	}()

	// Phase 1: the first FindBy.
	if err := waitFor(ctx, firstDone, reg, StartTimeout, "the registry's first FindBy"); err != nil {
		return res, err
	}
	if first.err != nil {
		return res, fmt.Errorf("sample at the first FindBy: %w", first.err)
	}
	res.StartRSS = first.rss
	progress("first FindBy; registering")

	// Phase 2: every trunk answered OK.
	if err := waitFor(ctx, req.Done(), reg, cfg.Timeout-time.Since(first.at), "every trunk to be registered"); err != nil {
		if errors.Is(err, ErrTimeout) {
			return res, fmt.Errorf("%w: only %d of %d within %s of the first FindBy (%d REGISTERs)",
				ErrIncomplete, req.Distinct(), cfg.Trunks, cfg.Timeout, req.Calls())
		}
		return res, err
	}
	res.RegisterTime = req.DoneAt().Sub(first.at)
	res.Registers = req.Calls()
	res.FirstRegister = req.First().Sub(first.at)
	if span := req.Last().Sub(req.First()).Seconds(); span > 0 {
		res.RegistersPerSecond = float64(res.Registers) / span
	} else {
		res.RegistersPerSecond = float64(res.Registers) / max(res.RegisterTime.Seconds(), 1e-9)
	}
	progress("registered in %.2f s; waiting for the registry to be quiet", res.RegisterTime.Seconds())

	// Phase 3: quiet again (last records written).
	end, err := settle(ctx, reg, proxy, req.DoneAt())
	if err != nil {
		return res, err
	}
	if rc != nil {
		if end.redis, err = rc.Stats(); err != nil {
			return res, err
		}
	}
	res.Settle, res.Settled = end.at.Sub(req.DoneAt()), end.quiet
	res.RegisterCPU = end.cpu - first.cpu
	res.FindBysDuringPhase = watch.Count()
	if benchCPU, err := proc.CPUSeconds(os.Getpid()); err == nil {
		res.BenchCPU = benchCPU - first.benchCPU
	}
	if rc != nil {
		d := end.proxy.Since(first.proxy)
		res.RedisCommands, res.RedisRoundTrips, res.RedisByCommand = d.Commands, d.Trips, d.ByName
		res.RedisServerCommands, _ = end.redis.Since(first.redis)
		res.RedisUsedMemoryBefore, res.RedisUsedMemoryAfter = first.redis.UsedMemory, end.redis.UsedMemory
	}

	// Phase 4: idle ticks. Each window is one registerInterval long and centred on a
	// discovery tick: the registry's ticker runs every interval from its first
	// discovery, so the first window starts at the first half-interval after the
	// first FindBy that is not before the end of the registration phase.
	windows := max(cfg.IdleWindows, 1)
	start := idleWindowStart(first.at, end.at, interval)
	progress("measuring %d idle tick(s), from %s to %s from now", windows,
		time.Until(start).Round(time.Second), time.Until(start.Add(time.Duration(windows)*interval)).Round(time.Second))
	if err := sleepUntil(ctx, reg, start); err != nil {
		return res, err
	}
	a, err := sample(reg.PID(), proxy, rc)
	if err != nil {
		return res, err
	}
	idleStart, findBysA, callsA := a, watch.Count(), req.Calls()
	for i := range windows {
		if err := sleepUntil(ctx, reg, start.Add(time.Duration(i+1)*interval)); err != nil {
			return res, err
		}
		b, err := sample(reg.PID(), proxy, rc)
		if err != nil {
			return res, err
		}
		res.IdleTickCPUMax = max(res.IdleTickCPUMax, b.cpu-a.cpu)
		a = b
	}
	res.IdleWindows = windows
	res.IdleTickCPU = (a.cpu - idleStart.cpu) / float64(windows)
	res.IdleFindBys = watch.Count() - findBysA
	res.IdleRegisters = req.Calls() - callsA
	if rc != nil {
		d := a.proxy.Since(idleStart.proxy)
		res.IdleRedisCommands, res.IdleRedisByCommand = d.Commands, d.ByName
		res.IdleRedisServerCommands, _ = a.redis.Since(idleStart.redis)
	}
	if res.PeakRSS, _, err = proc.Memory(reg.PID()); err != nil {
		return res, err
	}
	if rc != nil {
		if res.RedisSampledKeys, res.RedisSampleBytes, err = rc.SampleMemory(prefix, redisMemorySample); err != nil {
			return res, err
		}
	}
	progress("stopping the registry")
	if err := stop(); err != nil {
		return res, err
	}
	return res, nil
}
