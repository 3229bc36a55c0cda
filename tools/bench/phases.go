package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"sipreg.dev/tools/bench/fakes"
	"sipreg.dev/tools/bench/proc"
	"sipreg.dev/tools/bench/redisconn"
	"sipreg.dev/tools/bench/redisproxy"
)

// idleWindowStart returns the start of the first idle window: firstFindBy plus a whole
// number of intervals less half of one, not before notBefore.
func idleWindowStart(firstFindBy, notBefore time.Time, interval time.Duration) time.Time {
	k := max(1, int64(math.Ceil((notBefore.Sub(firstFindBy).Seconds()+interval.Seconds()/2)/interval.Seconds())))
	return firstFindBy.Add(time.Duration(k)*interval - interval/2)
}

// ErrTimeout is a wait that ran out of time.
var ErrTimeout = errors.New("timed out")

// ErrIncomplete is the error of a row in which the registry did not register every
// trunk within Config.Timeout: a measurement (the registry is too slow or stuck),
// not a failure of the bench.
var ErrIncomplete = errors.New("not every trunk registered")

// waitFor waits for done, failing when the registry exits, ctx ends or d passes.
func waitFor(ctx context.Context, done <-chan struct{}, reg *proc.Registry, d time.Duration, what string) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-reg.Exited():
		return reg.ExitError()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("waiting for %s: %w", what, ErrTimeout)
	}
}

// sleepUntil waits until t, failing when the registry exits or ctx ends.
func sleepUntil(ctx context.Context, reg *proc.Registry, t time.Time) error {
	err := waitFor(ctx, nil, reg, time.Until(t), "")
	if errors.Is(err, ErrTimeout) {
		return nil
	}
	return err
}

// point is one reading of the registry's counters.
type point struct {
	at    time.Time
	cpu   float64
	proxy redisproxy.Counts
	redis redisconn.Stats
	quiet bool // (settle) the registry was quiet when this was read
}

// sample reads the registry's CPU, the proxy's counts (proxy may be nil) and Redis's
// own counters (rc may be nil).
func sample(pid int, proxy *redisproxy.Proxy, rc *redisconn.Conn) (point, error) {
	p := point{at: time.Now()}
	var err error
	if p.cpu, err = proc.CPUSeconds(pid); err != nil {
		return p, err
	}
	if proxy != nil {
		p.proxy = proxy.Counts()
	}
	if rc != nil {
		if p.redis, err = rc.Stats(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// settle polls the registry from since until it has been quiet for SettleQuiet (at
// most SettleCPU of CPU and no Redis command through the proxy, which may be nil), or
// SettleMax has passed, and returns the reading that ends the registration phase.
func settle(ctx context.Context, reg *proc.Registry, proxy *redisproxy.Proxy, since time.Time) (point, error) {
	var window []point // readings of the last SettleQuiet
	for {
		p, err := sample(reg.PID(), proxy, nil)
		if err != nil {
			return p, err
		}
		window = append(window, p)
		for len(window) > 1 && p.at.Sub(window[1].at) >= SettleQuiet {
			window = window[1:]
		}
		if old := window[0]; p.at.Sub(old.at) >= SettleQuiet && p.cpu-old.cpu <= SettleCPU &&
			p.proxy.Commands == old.proxy.Commands {
			p.quiet = true
			return p, nil
		}
		if p.at.Sub(since) >= SettleMax {
			return p, nil
		}
		if err := sleepUntil(ctx, reg, p.at.Add(SettlePoll)); err != nil {
			return p, err
		}
	}
}

// RegistryConfig renders the registry's config file for a row; redisAddr is where
// the registry reaches Redis (the proxy). It sets what a deployment must set (the
// addresses, the listeners) and expires, the lifetime the bench's Requester grants;
// everything else is the registry's shipped default, but for registerInterval and
// memoryLimit when the row's Config asks for them (experiments).
func RegistryConfig(cfg Config, requesterAddr, apiAddr, redisAddr, keyPrefix string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: Registry\napiVersion: v2beta1\nspec:\n")
	fmt.Fprintf(&b, "  requesterAddr: %s\n  apiAddr: %s\n  edgePorts:\n    - address: edge.bench:5060\n", requesterAddr, apiAddr)
	fmt.Fprintf(&b, "  httpAddr: %s\n  controlAddr: %s\n", orDefault(cfg.HTTPAddr, "127.0.0.1:0"), orDefault(cfg.ControlAddr, "127.0.0.1:0"))
	fmt.Fprintf(&b, "  expires: %d\n", fakes.GrantedExpires)
	if cfg.Interval > 0 {
		fmt.Fprintf(&b, "  registerInterval: %s\n", cfg.Interval)
	}
	if cfg.MemoryLimit != "" && cfg.MemoryLimit != "0" {
		fmt.Fprintf(&b, "  memoryLimit: %s\n", cfg.MemoryLimit)
	}
	if cfg.Cache == CacheRedis {
		host, port, err := net.SplitHostPort(redisAddr)
		if err != nil {
			return "", fmt.Errorf("redis address %q: %w", redisAddr, err)
		}
		fmt.Fprintf(&b, "  cache:\n    provider: redis\n    parameters: %s\n  keyPrefix: %s\n",
			strconv.Quote("host="+host+",port="+port), strconv.Quote(keyPrefix))
	} else {
		b.WriteString("  cache:\n    provider: memory\n")
	}
	return b.String(), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
