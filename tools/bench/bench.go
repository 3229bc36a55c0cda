// Package bench measures the registry binary at scale: it runs the real binary against
// an in-process fake Routr API (fakeapi, with N generated trunks) and an in-process
// Requester that answers every REGISTER at once with 200 OK, and reads the registry's
// cost from /proc and, with the Redis cache, from a counting proxy on the registry's
// Redis connection (commands and round trips), next to Redis's own server-wide count.
//
// One Run is one row of the table that `make bench` prints (see Write): how long from
// the first FindBy until every trunk is registered, the rate of REGISTERs, the
// registry's CPU per 1,000 registrations, its peak RSS, Redis commands per
// registration, and the CPU of one idle discovery tick once everything is registered.
//
// "Registered" means the Requester has answered 200 OK to N distinct trunks (distinct
// AOR users). The Requester is the bench's own rather than fakerequester's, because
// the bench must see the moment the N-th distinct trunk is answered and fakerequester
// keeps no such count when it does not record requests.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	"sipreg.dev/tools/fakeapi"
)

// Cache providers a row can use.
const (
	CacheMemory = "memory"
	CacheRedis  = "redis"
)

// Timing of the measurements around the registration phase.
const (
	// settlePoll is how often the registry is looked at after the last trunk was
	// answered, until it is quiet (its last records written).
	settlePoll = 50 * time.Millisecond
	// settleQuiet is how long the registry must be quiet: at most settleCPU of CPU
	// and no Redis command.
	settleQuiet = 250 * time.Millisecond
	settleCPU   = 0.02
	// settleMax bounds the wait for quiet.
	settleMax = 5 * time.Second
	// startTimeout bounds the wait for the registry's first FindBy.
	startTimeout = 30 * time.Second
	// stopGrace is how long the registry may take to stop after SIGTERM.
	stopGrace = 30 * time.Second
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
	// Interval is the registry's registerInterval (the discovery period).
	Interval time.Duration
	// Timeout bounds the registration phase, from the first FindBy.
	Timeout time.Duration
	// MemoryLimit is the registry's spec.memoryLimit (e.g. "280MiB"; "0" for none).
	MemoryLimit string
	// IdleWindows is how many back-to-back idle windows, one registerInterval each,
	// are measured once every trunk is registered (0 means 1).
	IdleWindows int
	// Progress, when set, gets a line at each step.
	Progress io.Writer
}

// Result is one measured row.
type Result struct {
	// Trunks and Cache repeat the row's Config.
	Trunks int
	Cache  string

	// RegisterTime is from the first FindBy until the N-th distinct trunk was
	// answered 200 OK.
	RegisterTime time.Duration
	// FirstRegister is from the first FindBy until the first REGISTER arrived.
	FirstRegister time.Duration
	// Registers is how many SendMessage calls arrived until every trunk was
	// registered (N when none was repeated).
	Registers int64
	// RegistersPerSecond is Registers over the time from the first REGISTER to the
	// last one of the phase.
	RegistersPerSecond float64
	// RegisterCPU is the registry's CPU (user + system) from the first FindBy until
	// it was quiet after the last trunk was answered.
	RegisterCPU float64
	// Settle is how long after the last answer the registry took to be quiet;
	// Settled is false when it was still busy after the longest wait.
	Settle  time.Duration
	Settled bool
	// BenchCPU is the bench process's own CPU over the same span (the fakes): on a
	// small machine it competes with the registry for cores.
	BenchCPU float64
	// FindBysDuringPhase counts the discovery ticks that fell in the phase.
	FindBysDuringPhase int

	// PeakRSS is the registry's VmHWM at the end of the row; StartRSS its VmRSS at
	// the first FindBy. Bytes.
	PeakRSS  int64
	StartRSS int64

	// RedisCommands and RedisRoundTrips are what the registry sent to Redis over
	// the registration phase, counted by a proxy on its connection; RedisByCommand
	// breaks the commands down by name. -1 and nil with the memory cache.
	RedisCommands   int64
	RedisRoundTrips int64
	RedisByCommand  map[string]int64
	// RedisServerCommands is Redis's own count over the same span
	// (total_commands_processed, the bench's INFOs taken out): server-wide, so it
	// also holds the commands of any other client of the server. -1 without Redis.
	RedisServerCommands int64
	// RedisKeys is how many keys of the row's prefix were deleted at the end (every
	// trunk's record, once persisted).
	RedisKeys int

	// IdleTickCPU is the registry's CPU over one registerInterval centred on a
	// discovery tick once every trunk was registered: the mean over IdleWindows
	// back-to-back windows, the largest of which took IdleTickCPUMax. The windows
	// saw IdleFindBys FindBy calls, IdleRegisters REGISTERs and IdleRedisCommands
	// Redis commands in all.
	IdleTickCPU       float64
	IdleTickCPUMax    float64
	IdleWindows       int
	IdleFindBys       int
	IdleRegisters     int64
	IdleRedisCommands int64
	// IdleRedisByCommand breaks IdleRedisCommands down (nil without Redis), and
	// IdleRedisServerCommands is Redis's own, server-wide count over the windows.
	IdleRedisByCommand      map[string]int64
	IdleRedisServerCommands int64

	// LogLines is how many lines the registry wrote at LOGS_LEVEL=warn; LastLog
	// holds the last few.
	LogLines int
	LastLog  []string
}

// CPUPer1000 is the registry's CPU seconds per 1,000 registrations.
func (r Result) CPUPer1000() float64 {
	return r.RegisterCPU / float64(r.Trunks) * 1000
}

// RSSPerTrunk is the growth of the registry's RSS from the first FindBy to its peak,
// per trunk, in bytes.
func (r Result) RSSPerTrunk() float64 {
	return float64(r.PeakRSS-r.StartRSS) / float64(r.Trunks)
}

// RedisPerRegistration is RedisCommands per registration, -1 without Redis.
func (r Result) RedisPerRegistration() float64 {
	if r.RedisCommands < 0 {
		return -1
	}
	return float64(r.RedisCommands) / float64(r.Trunks)
}

// RoundTripsPerRegistration is RedisRoundTrips per registration, -1 without Redis.
func (r Result) RoundTripsPerRegistration() float64 {
	if r.RedisRoundTrips < 0 {
		return -1
	}
	return float64(r.RedisRoundTrips) / float64(r.Trunks)
}

// firstSample is what is read at the moment of the first FindBy.
type firstSample struct {
	at       time.Time
	cpu      float64
	benchCPU float64
	rss      int64
	redis    redisStats
	proxy    proxyCounts
	err      error
}

// Run measures one row: it starts the fakes and the registry, waits until every trunk
// is registered, measures an idle tick, stops the registry (SIGTERM) and deletes the
// row's Redis keys. It fails only when the row cannot be measured.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	res = Result{Trunks: cfg.Trunks, Cache: cfg.Cache, RedisCommands: -1, RedisRoundTrips: -1,
		RedisServerCommands: -1, IdleRedisCommands: -1, IdleRedisServerCommands: -1}
	if cfg.Trunks < 1 {
		return res, fmt.Errorf("trunks: %d is not a positive number", cfg.Trunks)
	}
	if cfg.Cache != CacheMemory && cfg.Cache != CacheRedis {
		return res, fmt.Errorf("cache: %q is not %s or %s", cfg.Cache, CacheMemory, CacheRedis)
	}
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "0"
	}
	if cfg.Interval <= 0 || cfg.Timeout <= 0 {
		return res, errors.New("interval and timeout must be positive")
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: %d trunks, %s: %s\n", cfg.Trunks, cfg.Cache, fmt.Sprintf(format, args...))
		}
	}

	// Redis first: a row that cannot reach it cannot run. The registry reaches it
	// through the counting proxy; the bench's own connection goes straight.
	var rc *redisConn
	var proxy *redisProxy
	prefix, redisAddr := "", ""
	if cfg.Cache == CacheRedis {
		if rc, err = dialRedis(ctx, cfg.RedisAddr); err != nil {
			return res, err
		}
		defer rc.close()
		if proxy, err = startRedisProxy(cfg.RedisAddr); err != nil {
			return res, err
		}
		defer proxy.close()
		prefix, redisAddr = "bench-"+randomHex(6)+":", proxy.addr()
	}

	// The fakes, in process.
	var pid atomic.Int64
	var first firstSample
	firstDone := make(chan struct{})
	watch := newFindByWatch(func(at time.Time) {
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
		if first.cpu, first.err = cpuSeconds(p); first.err != nil {
			return
		}
		if _, first.rss, first.err = memory(p); first.err != nil {
			return
		}
		if first.benchCPU, first.err = cpuSeconds(os.Getpid()); first.err != nil {
			return
		}
		if rc != nil {
			first.proxy = proxy.counts()
			first.redis, first.err = rc.stats()
		}
	})
	progress("generating trunks")
	req := newOKRequester(cfg.Trunks)
	apiAddr, reqAddr, stopFakes, err := serveFakes(cfg.Trunks, watch, req)
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
	yaml, err := registryConfig(cfg, reqAddr, apiAddr, redisAddr, prefix)
	if err != nil {
		return res, err
	}
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return res, err
	}

	progress("starting %s", cfg.Registry)
	reg, err := startRegistry(cfg.Registry, cfgPath)
	if err != nil {
		return res, err
	}
	pid.Store(int64(reg.pid))
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		err := reg.stop(stopGrace)
		res.LogLines, res.LastLog = reg.output()
		return err
	}
	defer func() {
		if serr := stop(); serr != nil && err == nil {
			err = serr
		}
		if rc != nil {
			n, derr := rc.deletePrefix(prefix)
			res.RedisKeys = n
			if derr != nil && err == nil {
				err = fmt.Errorf("delete the row's Redis keys (prefix %s): %w", prefix, derr)
			}
		}
	}()

	// Phase 1: the first FindBy.
	if err := waitFor(ctx, firstDone, reg, startTimeout, "the registry's first FindBy"); err != nil {
		return res, err
	}
	if first.err != nil {
		return res, fmt.Errorf("sample at the first FindBy: %w", first.err)
	}
	res.StartRSS = first.rss
	progress("first FindBy; registering")

	// Phase 2: every trunk answered OK.
	if err := waitFor(ctx, req.done, reg, cfg.Timeout-time.Since(first.at), "every trunk to be registered"); err != nil {
		if errors.Is(err, errTimeout) {
			return res, fmt.Errorf("%w: only %d of %d within %s of the first FindBy (%d REGISTERs)",
				ErrIncomplete, req.distinct.Load(), cfg.Trunks, cfg.Timeout, req.calls.Load())
		}
		return res, err
	}
	res.RegisterTime = req.doneAt.Sub(first.at)
	res.Registers = req.calls.Load()
	res.FirstRegister = req.first().Sub(first.at)
	if span := req.last().Sub(req.first()).Seconds(); span > 0 {
		res.RegistersPerSecond = float64(res.Registers) / span
	} else {
		res.RegistersPerSecond = float64(res.Registers) / max(res.RegisterTime.Seconds(), 1e-9)
	}
	progress("registered in %.2f s; waiting for the registry to be quiet", res.RegisterTime.Seconds())

	// Phase 3: quiet again (last records written).
	end, err := settle(ctx, reg, proxy, req.doneAt)
	if err != nil {
		return res, err
	}
	if rc != nil {
		if end.redis, err = rc.stats(); err != nil {
			return res, err
		}
	}
	res.Settle, res.Settled = end.at.Sub(req.doneAt), end.quiet
	res.RegisterCPU = end.cpu - first.cpu
	res.FindBysDuringPhase = watch.count()
	if benchCPU, err := cpuSeconds(os.Getpid()); err == nil {
		res.BenchCPU = benchCPU - first.benchCPU
	}
	if rc != nil {
		d := end.proxy.since(first.proxy)
		res.RedisCommands, res.RedisRoundTrips, res.RedisByCommand = d.commands, d.trips, d.byName
		res.RedisServerCommands, _ = end.redis.since(first.redis)
	}

	// Phase 4: idle ticks. Each window is one registerInterval long; the first
	// starts half an interval after a discovery, so that each holds one tick.
	windows := max(cfg.IdleWindows, 1)
	progress("measuring %d idle tick(s) (up to %s)", windows, cfg.Interval*time.Duration(windows+1)+cfg.Interval/2)
	tick, err := watch.waitAfter(ctx, end.at, reg.exited)
	if err != nil {
		if errors.Is(err, errRegistryExited) {
			return res, reg.exitError()
		}
		return res, err
	}
	if err := sleepUntil(ctx, reg, tick.Add(cfg.Interval/2)); err != nil {
		return res, err
	}
	a, err := sample(reg.pid, proxy, rc)
	if err != nil {
		return res, err
	}
	idleStart, findBysA, callsA := a, watch.count(), req.calls.Load()
	for i := range windows {
		if err := sleepUntil(ctx, reg, idleStart.at.Add(time.Duration(i+1)*cfg.Interval)); err != nil {
			return res, err
		}
		b, err := sample(reg.pid, proxy, rc)
		if err != nil {
			return res, err
		}
		res.IdleTickCPUMax = max(res.IdleTickCPUMax, b.cpu-a.cpu)
		a = b
	}
	res.IdleWindows = windows
	res.IdleTickCPU = (a.cpu - idleStart.cpu) / float64(windows)
	res.IdleFindBys = watch.count() - findBysA
	res.IdleRegisters = req.calls.Load() - callsA
	if rc != nil {
		d := a.proxy.since(idleStart.proxy)
		res.IdleRedisCommands, res.IdleRedisByCommand = d.commands, d.byName
		res.IdleRedisServerCommands, _ = a.redis.since(idleStart.redis)
	}
	if res.PeakRSS, _, err = memory(reg.pid); err != nil {
		return res, err
	}
	progress("stopping the registry")
	if err := stop(); err != nil {
		return res, err
	}
	return res, nil
}

// errTimeout is a wait that ran out of time.
var errTimeout = errors.New("timed out")

// ErrIncomplete is the error of a row in which the registry did not register every
// trunk within Config.Timeout: a measurement (the registry is too slow or stuck),
// not a failure of the bench.
var ErrIncomplete = errors.New("not every trunk registered")

// waitFor waits for done, failing when the registry exits, ctx ends or d passes.
func waitFor(ctx context.Context, done <-chan struct{}, reg *registry, d time.Duration, what string) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-reg.exited:
		return reg.exitError()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("waiting for %s: %w", what, errTimeout)
	}
}

// sleepUntil waits until t, failing when the registry exits or ctx ends.
func sleepUntil(ctx context.Context, reg *registry, t time.Time) error {
	err := waitFor(ctx, nil, reg, time.Until(t), "")
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// point is one reading of the registry's counters.
type point struct {
	at    time.Time
	cpu   float64
	proxy proxyCounts
	redis redisStats
	quiet bool // (settle) the registry was quiet when this was read
}

// sample reads the registry's CPU, the proxy's counts (proxy may be nil) and Redis's
// own counters (rc may be nil).
func sample(pid int, proxy *redisProxy, rc *redisConn) (point, error) {
	p := point{at: time.Now()}
	var err error
	if p.cpu, err = cpuSeconds(pid); err != nil {
		return p, err
	}
	if proxy != nil {
		p.proxy = proxy.counts()
	}
	if rc != nil {
		if p.redis, err = rc.stats(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// settle polls the registry from since until it has been quiet for settleQuiet (at
// most settleCPU of CPU and no Redis command through the proxy, which may be nil), or
// settleMax has passed, and returns the reading that ends the registration phase.
func settle(ctx context.Context, reg *registry, proxy *redisProxy, since time.Time) (point, error) {
	var window []point // readings of the last settleQuiet
	for {
		p, err := sample(reg.pid, proxy, nil)
		if err != nil {
			return p, err
		}
		window = append(window, p)
		for len(window) > 1 && p.at.Sub(window[1].at) >= settleQuiet {
			window = window[1:]
		}
		if old := window[0]; p.at.Sub(old.at) >= settleQuiet && p.cpu-old.cpu <= settleCPU &&
			p.proxy.commands == old.proxy.commands {
			p.quiet = true
			return p, nil
		}
		if p.at.Sub(since) >= settleMax {
			return p, nil
		}
		if err := sleepUntil(ctx, reg, p.at.Add(settlePoll)); err != nil {
			return p, err
		}
	}
}

// registryConfig renders the registry's config file for a row; redisAddr is where
// the registry reaches Redis (the proxy).
func registryConfig(cfg Config, requesterAddr, apiAddr, redisAddr, keyPrefix string) (string, error) {
	cache := "  cache:\n    provider: memory\n"
	if cfg.Cache == CacheRedis {
		host, port, err := net.SplitHostPort(redisAddr)
		if err != nil {
			return "", fmt.Errorf("redis address %q: %w", redisAddr, err)
		}
		cache = fmt.Sprintf("  cache:\n    provider: redis\n    parameters: %s\n  keyPrefix: %s\n",
			strconv.Quote("host="+host+",port="+port), strconv.Quote(keyPrefix))
	}
	return fmt.Sprintf(`kind: Registry
apiVersion: v2beta1
spec:
  requesterAddr: %s
  apiAddr: %s
  edgePorts:
    - address: edge.bench:5060
  registerInterval: %s
  startupSpread: 0s
  registersPerSecond: 1000000
  maxInFlight: 512
  memoryLimit: %s
  httpAddr: 127.0.0.1:0
  controlAddr: 127.0.0.1:0
  authMode: edgeport
%s`, requesterAddr, apiAddr, cfg.Interval, cfg.MemoryLimit, cache), nil
}

// serveFakes serves n generated trunks (FindBy calls logged to watch) and req on
// loopback; stop ends both and waits for them.
func serveFakes(n int, watch io.Writer, req requesterv2beta1.RequesterServer) (apiAddr, reqAddr string, stop func(), err error) {
	api := fakeapi.New(fakeapi.Options{Generate: n, FindByLog: watch})
	apiLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, fmt.Errorf("fake api: %w", err)
	}
	reqLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		apiLis.Close()
		return "", "", nil, fmt.Errorf("requester: %w", err)
	}
	reqSrv := grpc.NewServer()
	requesterv2beta1.RegisterRequesterServer(reqSrv, req)
	var serving sync.WaitGroup
	serving.Go(func() { _ = api.Serve(apiLis) })
	serving.Go(func() { _ = reqSrv.Serve(reqLis) })
	return apiLis.Addr().String(), reqLis.Addr().String(), func() {
		reqSrv.Stop()
		api.Stop()
		serving.Wait()
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
