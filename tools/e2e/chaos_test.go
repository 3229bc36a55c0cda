package e2e

// Chaos tests of the real binaries: replicas paused (SIGSTOP) while REGISTERs wait to be
// sent or are in flight, and a replica cut off from Redis while it still reaches the
// Requester. The key invariant, checked by chaosCheckCSeq over every request the fake
// Requester received from all replicas: for every Call-ID, CSeq numbers strictly
// increase in arrival order (RFC 3261 §10.3: a registrar refuses a REGISTER whose CSeq is
// not higher than the last of its Call-ID), so a replica that lost its lease never sends
// a stale REGISTER. This file holds the helpers (fakes with one Requester listener per
// replica, a cuttable TCP proxy, the checker) and the partition test; the pause tests
// are in chaos_pause_test.go, the single-replica ones in hardening_test.go. Longer
// variants (more trunks, more moments) run with SIPREG_CHAOS_LONG=1;
// SIPREG_CHAOS_DEBUG=1 logs every REGISTER received.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	storev1 "sipreg.dev/gen/pb/sipreg/registry/store/v1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"

	"sipreg.dev/tools/fakeapi"
	"sipreg.dev/tools/fakerequester"
)

// chaosLong reports whether the longer variants run (SIPREG_CHAOS_LONG=1).
func chaosLong() bool { return os.Getenv("SIPREG_CHAOS_LONG") == "1" }

// chaosScale is short in the default run, long with SIPREG_CHAOS_LONG=1.
func chaosScale(short, long int) int {
	if chaosLong() {
		return long
	}
	return short
}

// chaosNames names the fake Requester's listeners ("replica a") in failure messages:
// Recorded.Local is the listener a request came in on, one listener per replica.
var chaosNames sync.Map

func chaosName(local string) string {
	if v, ok := chaosNames.Load(local); ok {
		return v.(string)
	}
	return local
}

// chaosFakes are the fake Routr API and one fake Requester served on one listener per
// replica, so that every recorded request tells which replica sent it.
type chaosFakes struct {
	api     *fakeapi.Server
	apiAddr string
	req     *fakerequester.Server
	// reqAddrs maps a replica's name to the Requester address it is given.
	reqAddrs map[string]string
}

func chaosStartFakes(t *testing.T, script fakerequester.Script, trunks []*trunksv2beta1.Trunk, replicas ...string) *chaosFakes {
	t.Helper()
	f := &chaosFakes{
		api:      fakeapi.New(fakeapi.Options{}),
		req:      fakerequester.New(fakerequester.Options{Script: script}),
		reqAddrs: map[string]string{},
	}
	f.api.SetTrunks(trunks)
	f.apiAddr = serve(t, f.api.Serve, f.api.Stop)
	for _, name := range replicas {
		addr := serve(t, f.req.Serve, f.req.Stop)
		f.reqAddrs[name] = addr
		chaosNames.Store(addr, "replica "+name)
	}
	return f
}

// from keeps the requests that came from one replica.
func (f *chaosFakes) from(recs []fakerequester.Recorded, replica string) []fakerequester.Recorded {
	var out []fakerequester.Recorded
	for _, r := range recs {
		if r.Local == f.reqAddrs[replica] {
			out = append(out, r)
		}
	}
	return out
}

// waitArrivals waits (up to d) until pred holds over every request received, in
// arrival order, and returns them.
func (f *chaosFakes) waitArrivals(t *testing.T, what string, d time.Duration, pred func([]fakerequester.Recorded) bool) []fakerequester.Recorded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := f.req.WaitArrivals(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return f.req.Arrivals()
}

// chaosTrunks are n trunks u000..., each with its own host.
func chaosTrunks(n int) []*trunksv2beta1.Trunk {
	out := make([]*trunksv2beta1.Trunk, 0, n)
	for i := range n {
		u := fmt.Sprintf("u%03d", i)
		out = append(out, trunk(u, "sip."+u+".example", u, "pw-"+u))
	}
	return out
}

func chaosRefs(n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, fmt.Sprintf("u%03d", i))
	}
	return out
}

// chaosCSeqOf reads a recorded REGISTER's CSeq number (-1 when unreadable).
func chaosCSeqOf(r fakerequester.Recorded) int {
	v := ext(r.Req.GetMessage(), "CSeq")
	if len(v) != 1 {
		return -1
	}
	var n int
	var method string
	if _, err := fmt.Sscanf(v[0], "%d %s", &n, &method); err != nil || method != "REGISTER" {
		return -1
	}
	return n
}

// chaosClock formats times of day in messages.
const chaosClock = "15:04:05.000"

// chaosCheckCSeq checks the key invariant over requests the fake Requester received
// (in any order: they are put in arrival order by Seq): for every Call-ID, the CSeq
// numbers strictly increase in arrival order, whichever replica sent them, and none is
// received twice. A CSeq may jump by more than one (RFC 3261 only asks for a higher
// one; a new owner may move past any CSeq the old one can have sent).
func chaosCheckCSeq(t *testing.T, recorded []fakerequester.Recorded) {
	t.Helper()
	recs := slices.Clone(recorded)
	slices.SortFunc(recs, func(a, b fakerequester.Recorded) int { return cmp.Compare(a.Seq, b.Seq) })
	type seen struct {
		cseq int
		rec  fakerequester.Recorded
	}
	last := map[string]seen{}
	used := map[string]map[int]bool{}
	var bad []string
	for _, r := range recs {
		id := r.Req.GetMessage().GetCallId().GetCallId()
		c := chaosCSeqOf(r)
		if id == "" || c < 0 {
			bad = append(bad, fmt.Sprintf("#%d %s from %s: Call-ID %q, CSeq %v: unreadable", r.Seq, r.Key, chaosName(r.Local), id, ext(r.Req.GetMessage(), "CSeq")))
			continue
		}
		if used[id] == nil {
			used[id] = map[int]bool{}
		}
		if prev, ok := last[id]; ok && c <= prev.cseq {
			what := "lower than"
			if used[id][c] {
				what = "a repeat of a CSeq already received; last was"
			}
			bad = append(bad, fmt.Sprintf("%s, Call-ID %s: CSeq %d (#%d at %s, from %s, Expires %d) %s %d (#%d at %s, from %s)",
				r.Key, id, c, r.Seq, r.At.Format(chaosClock), chaosName(r.Local), r.Req.GetMessage().GetExpires().GetExpires(), what,
				prev.cseq, prev.rec.Seq, prev.rec.At.Format(chaosClock), chaosName(prev.rec.Local)))
		}
		used[id][c] = true
		if prev, ok := last[id]; !ok || c > prev.cseq {
			last[id] = seen{cseq: c, rec: r}
		}
	}
	if os.Getenv("SIPREG_CHAOS_DEBUG") != "" {
		for _, r := range recs {
			t.Logf("#%d %s %s %s cseq %d exp %d resp %v err %v", r.Seq, r.At.Format(chaosClock), chaosName(r.Local), r.Key, chaosCSeqOf(r), r.Req.GetMessage().GetExpires().GetExpires(), r.Resp.GetResponseType(), r.Err)
		}
	}
	if len(bad) == 0 {
		t.Logf("CSeq invariant holds over %d REGISTERs of %d Call-IDs", len(recs), len(last))
		return
	}
	const show = 15
	total, more := len(bad), ""
	if total > show {
		more = fmt.Sprintf("\n... and %d more", total-show)
		bad = bad[:show]
	}
	t.Errorf("CSeq invariant broken %d times over %d REGISTERs (each one a registrar would drop: stale, sent after the lease was lost, or a CSeq sent twice):\n%s%s",
		total, len(recs), strings.Join(bad, "\n"), more)
}

// chaosReplica is one registry process.
type chaosReplica struct {
	name    string
	p       *proc
	control string
	http    string
}

// chaosStartReplica starts a registry with cfg (JSON logs at info level).
func chaosStartReplica(t *testing.T, name, cfg string) *chaosReplica {
	t.Helper()
	path := writeFile(t, "registry-"+name+".yaml", cfg)
	p := startProc(t, "registry", []string{"LOGS_FORMAT=json", "LOGS_LEVEL=info"}, "--config", path)
	start := p.logEntry("start line", 30*time.Second, "registry starting", nil)
	return &chaosReplica{name: name, p: p, control: fmt.Sprint(start["control"]), http: fmt.Sprint(start["http"])}
}

func (r *chaosReplica) client() registryv1connect.RegistrationServiceClient {
	return registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+r.control)
}

// chaosList lists every registration through one replica's control API.
func chaosList(ctx context.Context, r *chaosReplica) (map[string]*registryv1.Registration, error) {
	out := map[string]*registryv1.Registration{}
	token := ""
	for {
		resp, err := r.client().ListRegistrations(ctx, connect.NewRequest(&registryv1.ListRegistrationsRequest{PageSize: 1000, PageToken: token}))
		if err != nil {
			return nil, err
		}
		for _, reg := range resp.Msg.GetRegistrations() {
			out[reg.GetTrunkRef()] = reg
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// chaosWaitRegs polls a replica's ListRegistrations until pred holds (up to d).
func chaosWaitRegs(t *testing.T, r *chaosReplica, what string, d time.Duration, pred func(map[string]*registryv1.Registration) bool) map[string]*registryv1.Registration {
	t.Helper()
	deadline := time.Now().Add(d)
	var last map[string]*registryv1.Registration
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		regs, err := chaosList(ctx, r)
		cancel()
		if err == nil {
			last = regs
			if pred(regs) {
				return regs
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("replica %s: timed out waiting for %s (last error %v); owners: %v", r.name, what, lastErr, chaosOwnerCounts(last))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// chaosOwnerCounts counts registered trunks per owner ("" for none or not registered).
func chaosOwnerCounts(regs map[string]*registryv1.Registration) map[string]int {
	out := map[string]int{}
	for _, r := range regs {
		o := r.GetOwner()
		if r.GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
			o += "(" + strings.TrimPrefix(r.GetState().String(), "REGISTRATION_STATE_") + ")"
		}
		out[o]++
	}
	return out
}

// chaosOwnedBy lists the trunks of one owner that are registered or being refreshed
// (a replica shows its own REGISTERs waiting for their turn as registering), sorted.
func chaosOwnedBy(regs map[string]*registryv1.Registration, owner string) []string {
	var out []string
	for ref, r := range regs {
		switch r.GetState() {
		case registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERING:
			if r.GetOwner() == owner && r.GetCallId() != "" {
				out = append(out, ref)
			}
		}
	}
	slices.Sort(out)
	return out
}

// chaosShared: all n trunks registered or refreshing, each owned by one of the
// replicas, every replica owning some. (That each was granted a binding is checked at
// the fake Requester: chaosAllGranted.)
func chaosShared(n int, replicas ...string) func(map[string]*registryv1.Registration) bool {
	return func(regs map[string]*registryv1.Registration) bool {
		total := 0
		for _, name := range replicas {
			k := len(chaosOwnedBy(regs, name))
			if k == 0 {
				return false
			}
			total += k
		}
		return total == n
	}
}

// chaosWaitSettled polls a replica's ListRegistrations until all n trunks are shared
// by the replicas (chaosShared) and the owners stay the same for 2 s (trunks move
// between replicas for a while after they start): the snapshot it returns tells which
// trunks each replica holds.
func chaosWaitSettled(t *testing.T, r *chaosReplica, n int, replicas ...string) map[string]*registryv1.Registration {
	t.Helper()
	ownersOf := func(regs map[string]*registryv1.Registration) map[string]string {
		out := map[string]string{}
		for ref, reg := range regs {
			out[ref] = reg.GetOwner()
		}
		return out
	}
	var since time.Time
	var prev map[string]string
	return chaosWaitRegs(t, r, "every trunk owned by one of "+strings.Join(replicas, ", ")+", settled", 60*time.Second, func(regs map[string]*registryv1.Registration) bool {
		if !chaosShared(n, replicas...)(regs) {
			prev = nil
			return false
		}
		cur := ownersOf(regs)
		if prev == nil || !maps.Equal(prev, cur) {
			prev, since = cur, time.Now()
			return false
		}
		return time.Since(since) >= 2*time.Second
	})
}

// chaosPickVictim picks, of two replicas sharing the trunks (a settled snapshot), the
// one owning more as the victim of the chaos (more trunks at stake), the other as the
// survivor; mine lists the victim's trunks.
func chaosPickVictim(regs map[string]*registryv1.Registration, a, b *chaosReplica) (victim, survivor *chaosReplica, mine []string) {
	victim, survivor = a, b
	if len(chaosOwnedBy(regs, b.name)) > len(chaosOwnedBy(regs, a.name)) {
		victim, survivor = b, a
	}
	return victim, survivor, chaosOwnedBy(regs, victim.name)
}

// chaosOwnsAll: replica owns every one of refs (state aside: taking a trunk over,
// the new owner may be refreshing it).
func chaosOwnsAll(owner string, refs []string) func(map[string]*registryv1.Registration) bool {
	return func(regs map[string]*registryv1.Registration) bool {
		for _, ref := range refs {
			if regs[ref].GetOwner() != owner {
				return false
			}
		}
		return true
	}
}

// chaosClusterConfig is a cluster replica's config: lease TTL 3 s, the given Redis
// address, the Requester listener of the replica.
func chaosClusterConfig(f *chaosFakes, name, redisAddr, prefix string, extra ...string) string {
	host, port, _ := net.SplitHostPort(redisAddr)
	return registryConfig(f.reqAddrs[name], f.apiAddr, append([]string{
		"replicaId: " + name, "registerInterval: 1", "startupSpread: 1s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s",
		"keyPrefix: \"" + prefix + "\"", "cache:", "  provider: redis",
		fmt.Sprintf("  parameters: host=%s,port=%s", host, port)}, extra...)...)
}

// chaosSince keeps the requests received after the first seq ones.
func chaosSince(recs []fakerequester.Recorded, seq int64) []fakerequester.Recorded {
	var out []fakerequester.Recorded
	for _, r := range recs {
		if r.Seq > seq {
			out = append(out, r)
		}
	}
	return out
}

// chaosEachHas: every one of refs has a request among recs.
func chaosEachHas(recs []fakerequester.Recorded, refs []string) bool {
	have := map[string]bool{}
	for _, r := range recs {
		have[r.Key] = true
	}
	for _, ref := range refs {
		if !have[ref] {
			return false
		}
	}
	return true
}

// chaosAllGranted: every one of refs got a 200 OK.
func chaosAllGranted(refs []string) func([]fakerequester.Recorded) bool {
	return func(recs []fakerequester.Recorded) bool {
		ok := map[string]bool{}
		for _, r := range recs {
			if r.Resp.GetResponseType().String() == "OK" {
				ok[r.Key] = true
			}
		}
		for _, ref := range refs {
			if !ok[ref] {
				return false
			}
		}
		return true
	}
}

// chaosAnswered: no request of recs is still in flight.
func chaosAnswered(recs []fakerequester.Recorded) bool {
	for _, r := range recs {
		if r.Resp == nil && r.Err == nil {
			return false
		}
	}
	return true
}

// chaosLastSeq is the Seq of the last request received (0: none).
func chaosLastSeq(f *chaosFakes) int64 {
	a := f.req.Arrivals()
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1].Seq
}

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
// The registry writes the compact format (a version byte, 2, then the protobuf of
// proto/sipreg/registry/store/v1/record.proto); JSON records of older releases are
// read too. raw is the stored value, for messages.
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
