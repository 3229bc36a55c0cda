package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/controlapi"
	"sipreg.dev/services/registry/internal/logging"
	"sipreg.dev/services/registry/internal/metrics"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/upstream"
)

// serve runs the service until ctx ends.
func serve(ctx context.Context, cfg *config.Config, logOut io.Writer) error {
	rt, err := config.FromEnv(cfg.Spec, os.Getenv)
	if err != nil {
		return err
	}
	log := logging.New(logOut, rt.LogLevel, rt.LogFormat)
	for _, w := range cfg.Warnings {
		log.Warn("config", "warning", w)
	}
	// go-redis logs connection trouble through a package global; the cache fault is
	// reported once by the engine, the details go to debug.
	redis.SetLogger(redisLog{log})
	// OpenTelemetry tracing, off unless the OTEL_* environment asks for it (tracing.go).
	tr, err := setupTracing(ctx, os.Getenv, log)
	if err != nil {
		return err
	}
	defer tr.shutdown(log)
	spec := cfg.Spec
	if rt.MemoryLimit > 0 {
		debug.SetMemoryLimit(rt.MemoryLimit)
	}

	// The engine and its metrics observe each other: the engine reports what it does
	// to the metrics, and the metrics read the engine's own records at scrape time once
	// it exists (WatchEngine below).
	met := metrics.New(nil)

	st, err := openStore(spec, skipReporter(log, met))
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	api, err := upstream.DialAPI(spec.APIAddr, spec.APITimeout, tr.dial()...)
	if err != nil {
		return err
	}
	defer api.Close()
	ctlLis, err := net.Listen("tcp", spec.ControlAddr)
	if err != nil {
		return fmt.Errorf("listen %s (spec.controlAddr): %w", spec.ControlAddr, err)
	}
	var coord *cluster.Cluster
	opts := reconcile.Options{Spec: spec, Store: st, Trunks: api, Logger: log, TracerProvider: tr.provider}
	if spec.ClusterMode {
		rs, ok := st.(*store.Redis)
		if !ok {
			return errors.New("spec.clusterMode needs the redis cache")
		}
		coord = cluster.New(cluster.Options{
			Client: rs.Client(), Prefix: clusterPrefix(spec.KeyPrefix), LeaseTTL: spec.LeaseTTL,
			Advertise: advertiseAddr(spec.AdvertiseAddr, ctlLis.Addr()), ReplicaID: spec.ReplicaID, Logger: log,
			TracerProvider: tr.provider,
		})
		fenced, err := cluster.NewFencedStore(coord, rs)
		switch {
		case errors.Is(err, cluster.ErrCrossSlot):
			return fmt.Errorf("%s: spec.keyPrefix: %w (on Redis Cluster give it a hash tag, e.g. \"{sipreg}:registration:\")", cfg.Path, err)
		case err != nil:
			return fmt.Errorf("checking the hash slot of spec.keyPrefix on the Redis Cluster: %w", err)
		}
		opts.Coord, opts.Store = coord, fenced
		opts.Ownership = ownership.NewLeases(coord, fenced, log, nil)
	}
	reqOpts := tr.dial()
	if coord != nil {
		// The backstop of the lease check at the send: a replica paused between that
		// check and the write resumes with its leases run out, and the bytes of a
		// REGISTER built before the pause never leave.
		reqOpts = append(reqOpts, upstream.WithWriteGate(coord.SendWindowOpen))
	}
	req, err := upstream.DialRequester(spec.RequesterAddr, spec.RequestTimeout, reqOpts...)
	if err != nil {
		return err
	}
	defer req.Close()
	opts.Requester = req

	opts.Observer = met
	if coord != nil {
		met.WatchCluster(coord)
	}
	rec := reconcile.New(opts)
	met.WatchEngine(rec)
	ctlSrv := controlapi.NewServer(spec.ControlAddr, controlapi.NewHandler(rec, controlapi.Options{
		Token: spec.ControlToken, Logger: log, MaxWatchStreams: spec.MaxWatchStreams, Observer: met,
		TracerProvider: tr.provider, Propagator: tr.propagator,
	}))

	httpLis, err := net.Listen("tcp", spec.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s (spec.httpAddr): %w", spec.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", met.Handler())
	if rt.Pprof {
		mountPprof(mux)
	}
	if rt.Healthchecks {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if since, err := rec.StoreFault(); err != nil && time.Since(since) > controlapi.StoreFaultGrace {
				http.Error(w, fmt.Sprintf("cache unreachable for %s", time.Since(since).Round(time.Second)), http.StatusServiceUnavailable)
				return
			}
			if lapsing, why := rec.Lapsing(); lapsing {
				http.Error(w, why, http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "OK")
		})
	}
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("registry starting", "version", version, "config", cfg.Path, "requester", spec.RequesterAddr,
		"api", spec.APIAddr, "cache", spec.Cache.Provider, "http", httpLis.Addr().String(),
		"control", ctlLis.Addr().String(), "control_auth", spec.ControlToken != "",
		"register_interval", spec.RegisterInterval.String(), "auth_mode", spec.AuthMode)

	g, gctx := errgroup.WithContext(ctx)
	if coord != nil {
		// Membership outlives the engine: it leaves only after the leases are released.
		memberCtx, leave := context.WithCancel(context.WithoutCancel(ctx))
		memberDone := make(chan error, 1)
		go func() { memberDone <- coord.Run(memberCtx) }()
		defer func() { leave(); <-memberDone }()
		log.Info("cluster mode", "replica", coord.ID(), "lease_ttl", spec.LeaseTTL.String())
	}
	g.Go(func() error { return rec.Run(gctx) })
	g.Go(func() error {
		if err := httpSrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := ctlSrv.Serve(ctlLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("control api: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Watch streams end with the server; a slow client does not hold the exit.
		if err := ctlSrv.Shutdown(sctx); err != nil {
			_ = ctlSrv.Close()
		}
		return httpSrv.Shutdown(sctx)
	})
	err = g.Wait()
	log.Info("registry stopped")
	return err
}

// clusterPrefix puts the cluster's keys next to the records, never under their prefix
// (the store lists records by prefix).
func clusterPrefix(keyPrefix string) string {
	return strings.TrimSuffix(keyPrefix, ":") + "-cluster:"
}

// advertiseAddr is the configured address, else this host's name with the control port.
func advertiseAddr(configured string, lis net.Addr) string {
	if configured != "" {
		return configured
	}
	_, port, _ := net.SplitHostPort(lis.String())
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "127.0.0.1"
	}
	if tcp, ok := lis.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		host = tcp.IP.String()
	}
	return net.JoinHostPort(host, port)
}

// openStore opens the Redis cache; with the memory provider it returns nil: the engine
// keeps every record in its own memory, with no second copy. onSkip is told of each key
// under the record prefix that holds no readable record.
func openStore(spec config.Spec, onSkip func(key string, reason error)) (store.Store, error) {
	if spec.Cache.Provider != config.CacheRedis {
		return nil, nil
	}
	p := spec.Cache.Redis
	addrs := p.Addrs
	if len(addrs) == 0 {
		addrs = []string{p.Addr()}
	}
	st, err := store.NewRedis(store.RedisOptions{
		Addrs: addrs, Username: p.Username, Password: p.Password, TLS: p.Secure,
		MasterName: p.MasterName, Prefix: spec.KeyPrefix, OnSkip: onSkip,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return st, nil
}

// skipCounter counts the unreadable records skipped (*metrics.Metrics).
type skipCounter interface{ CacheRecordSkipped() }

// skipReporter is the store's OnSkip: a warning with the key and why (never its value),
// and sipreg_cache_skipped_records_total.
func skipReporter(log *slog.Logger, c skipCounter) func(key string, reason error) {
	return func(key string, reason error) {
		c.CacheRecordSkipped()
		log.Warn("cache: a key under the record prefix holds no readable record; skipped",
			"key", key, "reason", reason)
	}
}

// redisLog sends go-redis's own log lines to slog at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// mountPprof serves Go's profiles under /debug/pprof/ (ENABLE_PPROF=true): e.g.
// /debug/pprof/profile?seconds=30 (CPU) and /debug/pprof/allocs.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
