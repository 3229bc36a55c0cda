package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"sipreg.dev/tools/bench"
	"sipreg.dev/tools/bench/proc"
	"sipreg.dev/tools/bench/redisconn"
	"sipreg.dev/tools/bench/redisproxy"
)

// replica is one registry of the scenario.
type replica struct {
	id      string
	reg     *proc.Registry
	control string // the control API's host:port
	metrics string // /metrics's host:port (spec.httpAddr)
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
			<-rp.reg.Exited()
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
	return fmt.Errorf("replica %s: %w", w.first.id, w.first.reg.ExitError())
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
		return fmt.Errorf("waiting for %s: %w", what, bench.ErrTimeout)
	}
}

// sleepUntil waits until t, failing when a watched registry exits or ctx ends.
func (w *exitWatch) sleepUntil(ctx context.Context, t time.Time) error {
	err := w.wait(ctx, nil, time.Until(t), "")
	if errors.Is(err, bench.ErrTimeout) {
		return nil
	}
	return err
}

// clusterPoint is one reading of the replicas' counters.
type clusterPoint struct {
	at    time.Time
	cpu   []float64 // per replica
	proxy redisproxy.Counts
	redis redisconn.Stats
	quiet bool
}

// sampleCluster reads each pid's CPU, the proxy's counts and (rc not nil) Redis's.
func sampleCluster(pids []int, proxy *redisproxy.Proxy, rc *redisconn.Conn) (clusterPoint, error) {
	p := clusterPoint{at: time.Now(), cpu: make([]float64, len(pids)), proxy: proxy.Counts()}
	for i, pid := range pids {
		c, err := proc.CPUSeconds(pid)
		if err != nil {
			return p, err
		}
		p.cpu[i] = c
	}
	if rc != nil {
		var err error
		if p.redis, err = rc.Stats(); err != nil {
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

// settleCluster is the single-replica bench's settle for several replicas: quiet is at
// most bench.SettleCPU of CPU per replica and no Redis command through the proxy over
// bench.SettleQuiet.
func settleCluster(ctx context.Context, w *exitWatch, pids []int, proxy *redisproxy.Proxy, since time.Time) (clusterPoint, error) {
	var window []clusterPoint
	for {
		p, err := sampleCluster(pids, proxy, nil)
		if err != nil {
			return p, err
		}
		window = append(window, p)
		for len(window) > 1 && p.at.Sub(window[1].at) >= bench.SettleQuiet {
			window = window[1:]
		}
		if old := window[0]; p.at.Sub(old.at) >= bench.SettleQuiet && sum(p.cpu)-sum(old.cpu) <= bench.SettleCPU*float64(len(pids)) &&
			p.proxy.Commands == old.proxy.Commands {
			p.quiet = true
			return p, nil
		}
		if p.at.Sub(since) >= bench.SettleMax {
			return p, nil
		}
		if err := w.sleepUntil(ctx, p.at.Add(bench.SettlePoll)); err != nil {
			return p, err
		}
	}
}
