package e2e

// Hardening tests of a single registry on Redis: a restart never forgets a binding that
// Redis still holds (odd keys under the record prefix, Redis unreachable at start), and
// a REGISTER cut by our own shutdown is not held against the registrar.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakerequester"
)

// hardeningConfig is a single registry's config on the Redis at redisAddr.
func hardeningConfig(f *chaosFakes, redisAddr, prefix string, extra ...string) string {
	host, port, _ := net.SplitHostPort(redisAddr)
	return registryConfig(f.reqAddrs["r"], f.apiAddr, append([]string{
		"registerInterval: 1", "startupSpread: 0s", "httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0",
		"keyPrefix: \"" + prefix + "\"", "cache:", "  provider: redis",
		fmt.Sprintf("  parameters: host=%s,port=%s", host, port)}, extra...)...)
}

// hardeningSkipWarning is the one matcher of the warning a registry logs when it skips
// a key under the record prefix that holds no readable record: a JSON log line at WARN
// level that names the key (whole, or the part after the prefix) and is about the cache.
// Wording aside, nothing else is assumed.
func hardeningSkipWarning(line, prefix, key string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil || m["level"] != "WARN" {
		return false
	}
	if !strings.Contains(line, prefix+key) && !strings.Contains(line, `"`+key+`"`) {
		return false
	}
	l := strings.ToLower(line)
	return strings.Contains(l, "cache") || strings.Contains(l, "redis") || strings.Contains(l, "record") || strings.Contains(l, "skip")
}

// hardeningWaitsForCache matches the log line of a registry that waits for an
// unreachable cache at start: its msg mentions the cache and waiting. (The config
// loader's warning about an unknown startupCacheWait field is not it: msg "config".)
func hardeningWaitsForCache(line string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return false
	}
	msg := strings.ToLower(fmt.Sprint(m["msg"]))
	return strings.Contains(msg, "cache") && strings.Contains(msg, "wait")
}

// hardeningHasLine reports whether p printed a line that matches (no waiting).
func hardeningHasLine(p *proc, match func(string) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if match(l) {
			return true
		}
	}
	return false
}

// hardeningCheckContinued checks that the first REGISTER of each trunk after seq has
// the Call-ID of its last REGISTER before and a higher CSeq.
func hardeningCheckContinued(t *testing.T, f *chaosFakes, before map[string]fakerequester.Recorded, seq int64, refs []string) {
	t.Helper()
	first := map[string]fakerequester.Recorded{}
	for _, r := range chaosSince(f.req.Arrivals(), seq) {
		if _, ok := first[r.Key]; !ok {
			first[r.Key] = r
		}
	}
	for _, ref := range refs {
		old, next := before[ref], first[ref]
		oldID, nextID := old.Req.GetMessage().GetCallId().GetCallId(), next.Req.GetMessage().GetCallId().GetCallId()
		if nextID != oldID {
			t.Errorf("%s: the registry forgot the binding: new Call-ID %s (CSeq %d), Redis held %s (CSeq %d)",
				ref, nextID, chaosCSeqOf(next), oldID, chaosCSeqOf(old))
			continue
		}
		if chaosCSeqOf(next) <= chaosCSeqOf(old) {
			t.Errorf("%s: CSeq %d after the restart, %d before", ref, chaosCSeqOf(next), chaosCSeqOf(old))
		}
	}
}

// TestHardeningRestartWithOddKeys: a registry with 10 registered trunks is killed
// (SIGKILL); keys that hold no record are put under the record prefix (a hash, a list,
// garbage, another trunk's record under a key of its own); at restart every trunk's
// next REGISTER continues its binding (same Call-ID, higher CSeq), and each odd key is
// reported in a warning.
func TestHardeningRestartWithOddKeys(t *testing.T) {
	const n = 10
	refs := chaosRefs(n)
	// 20 s bindings, refreshed 10 s after each grant: nothing is sent around the kill,
	// and the restarted registry refreshes every trunk within the test.
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 20}}, chaosTrunks(n), "r")
	host, port, prefix := sharedRedis(t, "hardening-odd")
	cfg := hardeningConfig(f, net.JoinHostPort(host, port), prefix)
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	reg, _ := registry(t, cfg)
	f.waitArrivals(t, "every trunk registered", 30*time.Second, chaosAllGranted(refs))
	before := chaosWaitPersisted(t, f, host, port, prefix, refs)
	killedAt := chaosLastSeq(f)
	if err := reg.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = reg.wait(30 * time.Second)
	if got := chaosLastSeq(f); got != killedAt {
		t.Fatalf("a REGISTER went out while the registry was being killed (#%d)", got)
	}

	_, other, ok := chaosReadRecord(t, host, port, prefix+"u003")
	if !ok {
		t.Fatalf("no record of u003 in Redis: %q", other)
	}
	odd := []string{"odd-hash", "odd-list", "odd-garbage", "odd-other-trunk"}
	chaosRedisCLI(t, host, port, "HSET", prefix+"odd-hash", "a", "b")
	chaosRedisCLI(t, host, port, "RPUSH", prefix+"odd-list", "x", "y")
	chaosRedisCLI(t, host, port, "SET", prefix+"odd-garbage", "\xff\xfenot a record {")
	// COPY, not SET: a stored value is binary (a NUL byte cannot be an argument).
	chaosRedisCLI(t, host, port, "COPY", prefix+"u003", prefix+"odd-other-trunk")

	again, _ := registry(t, cfg)
	f.waitArrivals(t, "a REGISTER of every trunk after the restart", 40*time.Second, func(r []fakerequester.Recorded) bool {
		return chaosEachHas(chaosSince(r, killedAt), refs)
	})
	hardeningCheckContinued(t, f, before, killedAt, refs)
	for _, key := range odd {
		if !hardeningHasLine(again, func(l string) bool { return hardeningSkipWarning(l, prefix, key) }) {
			t.Errorf("no warning names the skipped key %s%s", prefix, key)
		}
	}
}

// TestHardeningRedisUnreachableAtStart: the registry's Redis goes through a proxy. With
// the trunks registered and their records written, the registry stops; the proxy is
// cut and the registry started again (startupCacheWait 20 s): it sends no REGISTER
// while Redis is unreachable and says it waits for the cache; the proxy heals, and
// every trunk continues its binding (same Call-ID, higher CSeq).
func TestHardeningRedisUnreachableAtStart(t *testing.T) {
	const n = 5
	refs := chaosRefs(n)
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 20}}, chaosTrunks(n), "r")
	host, port, prefix := sharedRedis(t, "hardening-away")
	proxy := chaosStartProxy(t, net.JoinHostPort(host, port))
	cfg := hardeningConfig(f, proxy.addr(), prefix, "startupCacheWait: 20s")
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	reg, _ := registry(t, cfg)
	f.waitArrivals(t, "every trunk registered", 30*time.Second, chaosAllGranted(refs))
	before := chaosWaitPersisted(t, f, host, port, prefix, refs)
	if err := reg.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stoppedAt := chaosLastSeq(f)

	proxy.Cut()
	again, _ := registry(t, cfg)
	// A few seconds with Redis away: nothing may be sent (a REGISTER now would be a
	// new binding, the records being out of reach).
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	err := f.req.WaitArrivals(ctx, func(r []fakerequester.Recorded) bool { return len(chaosSince(r, stoppedAt)) > 0 })
	cancel()
	if err == nil {
		sent := chaosSince(f.req.Arrivals(), stoppedAt)
		t.Errorf("%d REGISTERs sent with Redis unreachable at start; first: %s Call-ID %s CSeq %d (Redis holds Call-ID %s)",
			len(sent), sent[0].Key, sent[0].Req.GetMessage().GetCallId().GetCallId(), chaosCSeqOf(sent[0]),
			before[sent[0].Key].Req.GetMessage().GetCallId().GetCallId())
	}
	if !hardeningHasLine(again, hardeningWaitsForCache) {
		t.Errorf("the registry did not log that it waits for the cache")
	}
	healAt := chaosLastSeq(f)
	proxy.Heal()
	f.waitArrivals(t, "a REGISTER of every trunk after the heal", 40*time.Second, func(r []fakerequester.Recorded) bool {
		return chaosEachHas(chaosSince(r, stoppedAt), refs)
	})
	hardeningCheckContinued(t, f, before, stoppedAt, refs)
	t.Logf("%d REGISTERs before the heal, %d after", healAt-stoppedAt, chaosLastSeq(f)-healAt)
}

// TestHardeningShutdownMidFlight: 4 s bindings, refreshed half-way (2 s before they
// run out). With every trunk registered, answers start to be held 3 s; once a refresh
// of every trunk is in flight the registry gets SIGTERM with shutdownTimeout 1s, which
// cuts them. That is our shutdown, not the registrar's failure: the next process shows
// each record as it was before the cut attempt (no failure counted, not retrying) and
// sends the refreshes that were due promptly, far within the 30 s backoff base (a
// failure with 2 s left on the binding waits for that backoff).
func TestHardeningShutdownMidFlight(t *testing.T) {
	const n = 5
	refs := chaosRefs(n)
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4}}, chaosTrunks(n), "r")
	host, port, prefix := sharedRedis(t, "hardening-shutdown")
	cfg := hardeningConfig(f, net.JoinHostPort(host, port), prefix, "shutdownTimeout: 1s")
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	reg, _ := registry(t, cfg)
	f.waitArrivals(t, "every trunk registered", 30*time.Second, chaosAllGranted(refs))
	chaosWaitPersisted(t, f, host, port, prefix, refs)

	// Hold answers 3 s; SIGTERM once a refresh of every trunk is in flight.
	f.req.SetDefault(fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4, Delay: 3 * time.Second})
	heldFrom := chaosLastSeq(f)
	f.waitArrivals(t, "a refresh of every trunk in flight", 30*time.Second, func(r []fakerequester.Recorded) bool {
		since := chaosSince(r, heldFrom)
		for _, x := range since {
			if x.Resp != nil || x.Err != nil {
				return false
			}
		}
		return chaosEachHas(since, refs)
	})
	if err := reg.stop(); err != nil {
		t.Fatalf("exit on SIGTERM: %v", err)
	}
	f.waitArrivals(t, "the cut calls ended", 30*time.Second, chaosAnswered)
	stoppedAt := chaosLastSeq(f)

	again, _ := registry(t, cfg)
	restarted := &chaosReplica{name: "r", p: again, control: fmt.Sprint(again.logEntry("start line", 10*time.Second, "registry starting", nil)["control"])}
	// The records as the new process loaded them (polled until every trunk is known).
	regs := chaosWaitRegs(t, restarted, "every trunk known", 30*time.Second, func(m map[string]*registryv1.Registration) bool {
		for _, ref := range refs {
			if m[ref] == nil {
				return false
			}
		}
		return true
	})
	for _, ref := range refs {
		r := regs[ref]
		if r.GetFailureCount() != 0 || r.GetState() == registryv1.RegistrationState_REGISTRATION_STATE_RETRYING {
			t.Errorf("%s after the restart: state %s, %d failures, last error %q, next %s at %s: our shutdown counted as a failure",
				ref, strings.TrimPrefix(r.GetState().String(), "REGISTRATION_STATE_"), r.GetFailureCount(), r.GetLastError(),
				r.GetNextAction(), r.GetNextActionAt().AsTime().Format("15:04:05.000"))
		}
	}
	// Registered again promptly by the new process: a poll with a deadline far
	// shorter than the 30 s backoff base.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f.req.WaitArrivals(ctx, func(r []fakerequester.Recorded) bool { return chaosEachHas(chaosSince(r, stoppedAt), refs) }); err != nil {
		have := map[string]bool{}
		for _, r := range chaosSince(f.req.Arrivals(), stoppedAt) {
			have[r.Key] = true
		}
		var missing []string
		for _, ref := range refs {
			if !have[ref] {
				missing = append(missing, ref)
			}
		}
		t.Errorf("no REGISTER from the new process within 15 s for %v", missing)
		return
	}
	f.req.SetDefault(fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4})
	chaosWaitRegs(t, restarted, "every trunk registered with no failure", 30*time.Second, func(m map[string]*registryv1.Registration) bool {
		for _, ref := range refs {
			if m[ref].GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED || m[ref].GetFailureCount() != 0 {
				return false
			}
		}
		return true
	})
}
