// Command bench measures the registry binary at scale and prints a Markdown table of
// the results next to the targets, with a verdict per row (see package
// sipreg.dev/tools/bench for what each column means).
//
// Usage:
//
//	bench [--sizes 1000,10000,100000] [--caches memory,redis] [--runs 3]
//	      [--registry bin/registry] [--redis ADDR] [--timeout 2m] [--idle-windows 1]
//	      [--interval D] [--memory-limit SIZE]
//	      [--cluster=true] [--cluster-trunks 100000] [--cluster-idle 60s]
//
// Each (size, cache) row runs the real registry binary --runs times against an
// in-process fake Routr API serving that many generated trunks and an in-process
// Requester that answers 200 OK at once; the table gives the median and the spread
// (min–max) of each figure, and the verdicts are on the median. The registry runs on
// its shipped defaults: the config the bench writes sets the addresses, the listeners
// and expires only. --interval and --memory-limit add registerInterval and memoryLimit
// to it, for experiments; by default the idle tick is measured on the shipped
// registerInterval (60 s), so a run takes about a minute and a half more than its
// registration. Without --registry it uses bin/registry (built by `make build`), or
// builds the registry into a temporary directory when that is missing. Redis is
// REDIS_ADDR, else 127.0.0.1:6379; each run uses its own key prefix and deletes its
// keys at the end.
//
// With --cluster (the default) a second table follows: 3 registries in cluster mode
// share --cluster-trunks trunks on one Redis (through the counting proxy); it gives
// the time until every trunk is registered, Redis commands per registration and per
// lease-renewal round, each replica's idle CPU per minute (over --cluster-idle), and
// the failover after a SIGKILL of the replica owning the most trunks (see package
// sipreg.dev/tools/bench/cluster).
//
// A missed target is a result, not a failure: the exit status is 0 whenever every run
// was measured (a run whose trunks were not all registered within --timeout counts as
// measured, and fails its row). It is 1 when a run could not be measured (the registry
// would not start or exited, Redis unreachable, ...; the table still shows it) and 2 on
// bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sipreg.dev/tools/bench"
	"sipreg.dev/tools/bench/cluster"
)

// defaultRegistry is where `make build` puts the registry.
const defaultRegistry = "bin/registry"

func main() {
	// The bench's fakes (the Requester answering every REGISTER, the Redis proxy) run in
	// this process, on the cores the registry is measured on: fewer GC cycles leave it
	// more of them. The bench's own memory is not measured.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizesFlag := fs.String("sizes", "1000,10000,100000", "comma-separated numbers of trunks, one row each")
	cachesFlag := fs.String("caches", "memory,redis", "comma-separated caches, one row each: memory, redis")
	runs := fs.Int("runs", 3, "runs per (size, cache) row; the table gives their median and spread")
	interval := fs.Duration("interval", 0, fmt.Sprintf("the registry's registerInterval for the runs (default: left out of the config, the shipped %s)", bench.DefaultRegisterInterval))
	memLimit := fs.String("memory-limit", "", "the registry's spec.memoryLimit for the runs, e.g. 280MiB (default: left out, none)")
	registryFlag := fs.String("registry", "", "registry binary (default "+defaultRegistry+", built into a temporary directory when missing)")
	redisAddr := fs.String("redis", redisDefault(), "Redis host:port for the redis cache (default $REDIS_ADDR, else 127.0.0.1:6379)")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait, per row, from the first FindBy until every trunk is registered")
	idleWindows := fs.Int("idle-windows", 1, "idle windows of one registerInterval to measure per row; the idle tick is their mean")
	runCluster := fs.Bool("cluster", true, fmt.Sprintf("also run the several-replicas scenario (%d registries in cluster mode on one Redis)", cluster.Replicas))
	clusterTrunks := fs.Int("cluster-trunks", 100_000, "trunks the replicas of the several-replicas scenario share")
	clusterIdle := fs.Duration("cluster-idle", cluster.DefaultIdle, "idle window of the several-replicas scenario (rounded to whole lease-renewal periods)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		fmt.Fprintln(stderr, "bench: --sizes:", err)
		return 2
	}
	caches, err := parseCaches(*cachesFlag)
	if err != nil {
		fmt.Fprintln(stderr, "bench: --caches:", err)
		return 2
	}
	if *interval < 0 || *timeout <= 0 || *idleWindows < 1 || *runs < 1 {
		fmt.Fprintln(stderr, "bench: --timeout, --idle-windows and --runs must be positive, --interval not negative")
		return 2
	}
	if *clusterTrunks < 1 || *clusterIdle <= 0 {
		fmt.Fprintln(stderr, "bench: --cluster-trunks and --cluster-idle must be positive")
		return 2
	}
	addr := *redisAddr
	if !strings.Contains(addr, ":") {
		addr += ":6379"
	}

	bin, cleanup, err := registryBinary(ctx, *registryFlag, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer cleanup()
	effective := *interval
	if effective == 0 {
		effective = bench.DefaultRegisterInterval
	}
	describe(stderr, bin, *interval, *memLimit, caches, addr, *runCluster)

	var rows []bench.Row
	failed := false
rows:
	for _, n := range sizes {
		for _, cache := range caches {
			row := bench.Row{Trunks: n, Cache: cache}
			for i := range *runs {
				fmt.Fprintf(stderr, "bench: %d trunks, %s: run %d of %d\n", n, cache, i+1, *runs)
				res, err := bench.Run(ctx, bench.Config{
					Registry: bin, Trunks: n, Cache: cache, RedisAddr: addr,
					Interval:    *interval,
					MemoryLimit: *memLimit, Timeout: *timeout, IdleWindows: *idleWindows, Progress: stderr,
				})
				row.Runs = append(row.Runs, bench.RunResult{Result: res, Err: err})
				if err != nil {
					fmt.Fprintf(stderr, "bench: %d trunks, %s, run %d: %v\n", n, cache, i+1, err)
					if !errors.Is(err, bench.ErrIncomplete) {
						failed = true
					}
				}
				if ctx.Err() != nil {
					rows = append(rows, row)
					break rows
				}
			}
			rows = append(rows, row)
		}
	}
	bench.Write(stdout, rows, effective)
	if *runCluster && ctx.Err() == nil {
		res, err := cluster.Run(ctx, cluster.Config{
			Registry: bin, Trunks: *clusterTrunks, RedisAddr: addr, Interval: *interval,
			MemoryLimit: *memLimit, Timeout: *timeout, Idle: *clusterIdle, Progress: stderr,
		})
		if err != nil {
			fmt.Fprintf(stderr, "bench: cluster: %v\n", err)
			if !errors.Is(err, bench.ErrIncomplete) {
				failed = true
			}
		}
		cluster.Write(stdout, res, err)
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func redisDefault() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// describe prints what the run is measuring with, for the record.
func describe(w io.Writer, bin string, interval time.Duration, memLimit string, caches []string, redisAddr string, cluster bool) {
	built := ""
	if fi, err := os.Stat(bin); err == nil {
		built = ", modified " + fi.ModTime().Format(time.RFC3339)
	}
	iv := fmt.Sprintf("the shipped %s", bench.DefaultRegisterInterval)
	if interval > 0 {
		iv = interval.String() + " (--interval)"
	}
	ml := "none (shipped default)"
	if memLimit != "" && memLimit != "0" {
		ml = memLimit + " (--memory-limit)"
	}
	fmt.Fprintf(w, "bench: registry %s%s; %d CPUs; registerInterval %s; memoryLimit %s\n", bin, built, runtime.NumCPU(), iv, ml)
	if cluster || slices.Contains(caches, bench.CacheRedis) {
		fmt.Fprintf(w, "bench: Redis at %s\n", redisAddr)
	}
}

// registryBinary returns the registry to run: the flag's path, else bin/registry, else
// one built now into a temporary directory that cleanup removes.
func registryBinary(ctx context.Context, flagPath string, log io.Writer) (string, func(), error) {
	nothing := func() {}
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", nothing, fmt.Errorf("--registry: %w", err)
		}
		return absolute(flagPath), nothing, nil
	}
	if fi, err := os.Stat(defaultRegistry); err == nil && !fi.IsDir() {
		return absolute(defaultRegistry), nothing, nil
	}
	dir, err := os.MkdirTemp("", "sipreg-bench-bin-")
	if err != nil {
		return "", nothing, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "registry")
	fmt.Fprintf(log, "bench: %s is missing; building the registry into %s\n", defaultRegistry, dir)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "sipreg.dev/services/registry/cmd/registry")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		cleanup()
		return "", nothing, fmt.Errorf("build the registry: %w", err)
	}
	return bin, cleanup, nil
}

func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// parseSizes reads "1000,10000,100000" (underscores allowed: 100_000).
func parseSizes(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.ReplaceAll(strings.TrimSpace(part), "_", "")
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number of trunks", part)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no size given")
	}
	return out, nil
}

// parseCaches reads "memory,redis".
func parseCaches(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		switch part {
		case "":
			continue
		case bench.CacheMemory, bench.CacheRedis:
			out = append(out, part)
		default:
			return nil, fmt.Errorf("%q is not %s or %s", part, bench.CacheMemory, bench.CacheRedis)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no cache given")
	}
	return out, nil
}
