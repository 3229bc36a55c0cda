package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	storev1 "sipreg.dev/gen/pb/sipreg/registry/store/v1"

	"sipreg.dev/tools/fakerequester"
)

// chaosProxy is a TCP proxy that can be cut (every connection closed with a reset, new
// ones accepted and reset at once) and healed.
type chaosProxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func chaosStartProxy(t *testing.T, target string) *chaosProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *chaosProxy) addr() string { return p.lis.Addr().String() }

func (p *chaosProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			chaosReset(c)
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *chaosProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		chaosReset(c)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		chaosReset(c)
		chaosReset(up)
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
	_ = c.Close()
	_ = up.Close()
	<-done
}

// chaosReset closes c with a TCP reset (no orderly FIN).
func chaosReset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Cut closes every connection and refuses new ones until Heal.
func (p *chaosProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		chaosReset(c)
	}
}

// Heal lets new connections through again.
func (p *chaosProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *chaosProxy) close() {
	_ = p.lis.Close()
	p.Cut()
	p.wg.Wait()
}

// TestChaosPartitionedFromRedis: one replica (the victim) loses Redis (its proxy to
// Redis is cut) but still reaches the Requester, while its trunks are registered and
// refreshing (4 s bindings, refreshed every 2 s); the other, still on Redis, takes them
// over; the proxy heals. The invariant holds over the whole run: what the victim sent
// while cut off is never repeated or undercut by the new owner.
func TestChaosPartitionedFromRedis(t *testing.T) {
	n := chaosScale(20, 60)
	f := chaosStartFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4}},
		chaosTrunks(n), "a", "b")
	host, port, prefix := sharedRedis(t, "chaos-partition")
	redis := net.JoinHostPort(host, port)
	// Each replica reaches Redis through a proxy of its own; only the victim's is cut.
	proxies := map[string]*chaosProxy{"a": chaosStartProxy(t, redis), "b": chaosStartProxy(t, redis)}
	a := chaosStartReplica(t, "a", chaosClusterConfig(f, "a", proxies["a"].addr(), prefix))
	b := chaosStartReplica(t, "b", chaosClusterConfig(f, "b", proxies["b"].addr(), prefix))
	defer func() { chaosCheckCSeq(t, f.req.Arrivals()) }()

	f.waitArrivals(t, "every trunk registered", 60*time.Second, chaosAllGranted(chaosRefs(n)))
	victim, survivor, mine := chaosPickVictim(chaosWaitSettled(t, b, n, "a", "b"), a, b)
	from := chaosLastSeq(f)
	f.waitArrivals(t, victim.name+" refreshing each of its trunks", 30*time.Second, func(r []fakerequester.Recorded) bool {
		return chaosEachHas(f.from(chaosSince(r, from), victim.name), mine)
	})
	proxies[victim.name].Cut()
	cutAt := chaosLastSeq(f)
	t.Logf("replica %s cut off from Redis at %s, owning %d trunks", victim.name, time.Now().Format(chaosClock), len(mine))
	chaosWaitRegs(t, survivor, survivor.name+" owning every trunk", 30*time.Second, chaosOwnsAll(survivor.name, chaosRefs(n)))
	f.waitArrivals(t, survivor.name+"'s refresh of every trunk it took over", 30*time.Second, func(r []fakerequester.Recorded) bool {
		return chaosEachHas(f.from(chaosSince(r, cutAt), survivor.name), mine)
	})
	sentCut := len(f.from(chaosSince(f.req.Arrivals(), cutAt), victim.name))
	healAt := chaosLastSeq(f)
	proxies[victim.name].Heal()
	t.Logf("replica %s's Redis healed at %s", victim.name, time.Now().Format(chaosClock))
	// Two more refresh rounds after the heal (every 2 s), by whoever owns each trunk
	// then (the victim may rejoin and take its share back).
	f.waitArrivals(t, "every trunk refreshed twice after the heal", 30*time.Second, func(r []fakerequester.Recorded) bool {
		count := map[string]int{}
		for _, x := range chaosSince(r, healAt) {
			count[x.Key]++
		}
		for _, ref := range chaosRefs(n) {
			if count[ref] < 2 {
				return false
			}
		}
		return true
	})
	t.Logf("replica %s sent %d REGISTERs while cut off from Redis, %d after the heal", victim.name, sentCut,
		len(f.from(chaosSince(f.req.Arrivals(), healAt), victim.name)))
}

// chaosRedisCLI runs redis-cli against the shared Redis and returns its output.
func chaosRedisCLI(t *testing.T, host, port string, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port, "--raw"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// chaosRecord is the part of a stored registration record these tests read.
type chaosRecord struct {
	TrunkRef string `json:"trunkRef"`
	State    string `json:"state"`
	CallID   string `json:"callId"`
	CSeq     int    `json:"cseq"`
	Failures int    `json:"failures"`
}

// chaosReadRecord reads one trunk's record from Redis (ok false: none, or unreadable).
// The registry writes the compact format (a version byte, 3, then the protobuf of
// proto/sipreg/registry/store/v1/record_v3.proto); version 2 and the JSON records of
// older releases are read too. raw is the stored value, for messages.
func chaosReadRecord(t *testing.T, host, port, key string) (chaosRecord, string, bool) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, port)})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return chaosRecord{}, "", false
	}
	if err != nil {
		t.Fatalf("redis GET %s: %v", key, err)
	}
	var rec chaosRecord
	if len(raw) > 0 && raw[0] == 3 {
		// Format version 3: the state as an enum (or its text), a registry-made Call-ID
		// as the bytes its hex digits spell (the "@sipreg" suffix left out), or as text.
		var m storev1.RecordV3
		if proto.Unmarshal([]byte(raw[1:]), &m) != nil {
			return rec, raw, false
		}
		state := m.GetStateText()
		if m.GetState() != storev1.State_STATE_UNSPECIFIED {
			state = strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(m.GetState().String(), "STATE_")), "_", "-")
		}
		callID := m.GetCallIdText()
		if len(m.GetCallId()) > 0 {
			callID = hex.EncodeToString(m.GetCallId()) + "@sipreg"
		}
		rec = chaosRecord{TrunkRef: m.GetTrunkRef(), State: state, CallID: callID, CSeq: int(m.GetCseq()), Failures: int(m.GetFailures())}
		return rec, raw, true
	}
	if len(raw) > 0 && raw[0] == 2 {
		var m storev1.Record
		if proto.Unmarshal([]byte(raw[1:]), &m) != nil {
			return rec, raw, false
		}
		rec = chaosRecord{TrunkRef: m.GetTrunkRef(), State: m.GetState(), CallID: m.GetCallId(), CSeq: int(m.GetCseq()), Failures: int(m.GetFailures())}
		return rec, raw, true
	}
	if raw == "" || json.Unmarshal([]byte(raw), &rec) != nil {
		return rec, raw, false
	}
	return rec, raw, true
}

// chaosLastPerKey is the last request received for each trunk.
func chaosLastPerKey(recs []fakerequester.Recorded) map[string]fakerequester.Recorded {
	out := map[string]fakerequester.Recorded{}
	for _, r := range recs {
		if prev, ok := out[r.Key]; !ok || r.Seq > prev.Seq {
			out[r.Key] = r
		}
	}
	return out
}

// chaosWaitPersisted polls Redis until every trunk's record is registered with the
// Call-ID and CSeq of the last REGISTER received for it, and every REGISTER was
// answered: a kill now loses nothing the registry sent.
func chaosWaitPersisted(t *testing.T, f *chaosFakes, host, port, prefix string, refs []string) map[string]fakerequester.Recorded {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := f.req.Arrivals()
		last := chaosLastPerKey(recs)
		missing := ""
		if !chaosAnswered(recs) {
			missing = "a REGISTER in flight"
		}
		for _, ref := range refs {
			if missing != "" {
				break
			}
			r, ok := last[ref]
			if !ok {
				missing = ref + ": no REGISTER yet"
				break
			}
			rec, raw, ok := chaosReadRecord(t, host, port, prefix+ref)
			if !ok || rec.State != "registered" || rec.CallID != r.Req.GetMessage().GetCallId().GetCallId() || rec.CSeq != chaosCSeqOf(r) {
				missing = fmt.Sprintf("%s: stored %q, last sent CSeq %d", ref, raw, chaosCSeqOf(r))
			}
		}
		if missing == "" && len(f.req.Arrivals()) == len(recs) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not persisted: %s", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
