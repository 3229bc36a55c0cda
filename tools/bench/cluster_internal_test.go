package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestStartLineControl(t *testing.T) {
	line := `{"time":"2026-11-23T11:35:49Z","level":"INFO","msg":"registry starting","version":"dev","http":"127.0.0.1:40001","control":"127.0.0.1:41234","control_auth":false}`
	if got, ok := startLineControl([]byte(line)); !ok || got != "127.0.0.1:41234" {
		t.Fatalf("startLineControl = %q, %v", got, ok)
	}
	for _, other := range []string{
		`{"level":"INFO","msg":"cluster mode","replica":"r1"}`,
		`{"level":"INFO","msg":"registered","trunk":"registry starting"}`, // the text elsewhere
		`time=x level=INFO msg="registry starting" control=127.0.0.1:1`,   // text format
		``,
	} {
		if got, ok := startLineControl([]byte(other)); ok {
			t.Errorf("startLineControl(%q) = %q, true", other, got)
		}
	}
}

func TestWarnOrError(t *testing.T) {
	for line, want := range map[string]bool{
		`{"level":"INFO","msg":"registered"}`:      false,
		`{"level":"WARN","msg":"config"}`:          true,
		`{"level":"ERROR","msg":"x"}`:              true,
		`panic: runtime error: index out of range`: true,
		`   `: false,
		`{"level":"DEBUG","msg":"lease renewal ok"}`: false,
	} {
		if got := warnOrError([]byte(line)); got != want {
			t.Errorf("warnOrError(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestTallyLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{`{"level":"INFO","msg":"leases taken back after they vanished; bindings continue","count":50107}`, 50107, true},
		{`{"level":"INFO","msg":"trunks taken over from a replica that left","from":"r3","count":1200}`, 1200, true},
		{`{"level":"INFO","msg":"registered","trunk":"leases taken back after they vanished; bindings continue"}`, 0, false},
		{`not json: leases taken back after they vanished; bindings continue`, 0, false},
	} {
		msg := msgTakenBack
		if strings.Contains(tc.line, msgTakenOver) {
			msg = msgTakenOver
		}
		if n, ok := tallyLine([]byte(tc.line), msg); n != tc.n || ok != tc.ok {
			t.Errorf("tallyLine(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func TestParseCSeq(t *testing.T) {
	for in, want := range map[string]int{"7 REGISTER": 7, " 12  register ": 12, "7 INVITE": -1, "x REGISTER": -1, "": -1, "-1 REGISTER": -1} {
		if got := parseCSeq(in); got != want {
			t.Errorf("parseCSeq(%q) = %d, want %d", in, got, want)
		}
	}
}

// register sends one REGISTER for user to q with a Call-ID and CSeq.
func register(t *testing.T, q *okRequester, user, callID string, cseq int) {
	t.Helper()
	_, err := q.SendMessage(context.Background(), &requesterv2beta1.SendMessageRequest{
		Target: "10.0.0.1:5060",
		Message: &sipmessagev2beta1.SIPMessage{
			CallId:     &sipmessagev2beta1.CallID{CallId: callID},
			To:         &sipmessagev2beta1.To{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "x"}}},
			Expires:    &sipmessagev2beta1.Expires{Expires: 600},
			Extensions: []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: fmt.Sprintf("%d REGISTER", cseq)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrackingRequesterWatch(t *testing.T) {
	q := newTrackingRequester(3)
	register(t, q, "a", "call-a", 1)
	register(t, q, "b", "call-b", 1)
	register(t, q, "a", "call-a", 2)
	if last, ok := q.lastOf("a"); !ok || last.callID != "call-a" || last.cseq != 2 {
		t.Fatalf("lastOf(a) = %+v, %v", last, ok)
	}
	if _, ok := q.lastOf("c"); ok {
		t.Fatal("lastOf(c): a REGISTER that never came")
	}

	mark := time.Now()
	done := q.watchFrom([]string{"a", "b", "c"}, mark)
	register(t, q, "a", "call-a", 3)
	register(t, q, "a", "call-a", 4) // not the first after the mark: ignored
	register(t, q, "b", "call-new", 1)
	select {
	case <-done:
		t.Fatal("done before c got a REGISTER")
	default:
	}
	got, last := q.watched()
	if !last.IsZero() || len(got) != 2 {
		t.Fatalf("watched = %v, %v; want two users and no last", got, last)
	}
	if a := got["a"]; a.before.cseq != 2 || a.after.cseq != 3 || a.after.callID != "call-a" || a.after.at.Before(mark) {
		t.Fatalf("a: before %+v after %+v", *a.before, *a.after)
	}
	if b := got["b"]; b.before.callID != "call-b" || b.after.callID != "call-new" {
		t.Fatalf("b: before %+v after %+v", *b.before, *b.after)
	}
	register(t, q, "c", "call-c", 1)
	select {
	case <-done:
	default:
		t.Fatal("not done after every watched user got a REGISTER")
	}
	got, last = q.watched()
	if c := got["c"]; c.before != nil || c.after.cseq != 1 || !last.Equal(c.after.at) {
		t.Fatalf("c: %+v, last %v", c, last)
	}
	if q.distinct.Load() != 3 {
		t.Fatalf("distinct %d, want 3", q.distinct.Load())
	}
	// Nobody to watch: done at once.
	select {
	case <-newTrackingRequester(1).watchFrom(nil, time.Now()):
	default:
		t.Fatal("watching no user: not done")
	}
}

func TestRenewalRounds(t *testing.T) {
	for _, tc := range []struct {
		idle, ttl time.Duration
		rounds    int
	}{
		{60 * time.Second, 10 * time.Second, 18},
		{20 * time.Second, 10 * time.Second, 6},
		{21 * time.Second, 10 * time.Second, 6},
		{time.Second, 10 * time.Second, 1},
		{10 * time.Second, 3 * time.Second, 10},
	} {
		n, window := renewalRounds(tc.idle, tc.ttl)
		if n != tc.rounds || window != time.Duration(n)*(tc.ttl/3) {
			t.Errorf("renewalRounds(%s, %s) = %d, %s; want %d rounds of %s", tc.idle, tc.ttl, n, window, tc.rounds, tc.ttl/3)
		}
	}
}

func TestPrefixesAndOwners(t *testing.T) {
	if got := clusterPrefix("bench-0a1b2c:"); got != "bench-0a1b2c-cluster:" {
		t.Fatalf("clusterPrefix = %q", got)
	}
	if got := leasePrefix("bench-0a1b2c:"); got != "bench-0a1b2c-cluster:{leases}:lease:" {
		t.Fatalf("leasePrefix = %q", got)
	}
	got := leaseOwners(map[string]string{"trunk-1": "r1:5", "trunk-2": "r2:1", "trunk-3": "host:1:9", "trunk-4": "junk"})
	want := map[string]string{"trunk-1": "r1", "trunk-2": "r2", "trunk-3": "host:1"}
	if !maps.Equal(got, want) {
		t.Fatalf("leaseOwners = %v, want %v", got, want)
	}
	if got := mostOwned(map[string]int{"r3": 10, "r2": 12, "r1": 12}); got != "r1" {
		t.Fatalf("mostOwned = %q, want r1 (tie: smallest ID)", got)
	}
	if got := mostOwned(nil); got != "" {
		t.Fatalf("mostOwned(nil) = %q", got)
	}
	for aor, want := range map[string]string{"sip:user000001@10.0.0.1": "user000001", "sips:x@y:5061": "x", "u@h": "u", "sip:host": ""} {
		if got := aorUser(aor); got != want {
			t.Errorf("aorUser(%q) = %q, want %q", aor, got, want)
		}
	}
	users := trunkUsers(300)
	if len(users) != 300 || users["trunk-000001"] != "user000001" || users["trunk-000300"] != "user000300" {
		t.Fatalf("trunkUsers: %d, %q, %q", len(users), users["trunk-000001"], users["trunk-000300"])
	}
}

func TestClusterRegistryConfig(t *testing.T) {
	cfg := ClusterConfig{Interval: 5 * time.Second, LeaseTTL: 10 * time.Second, MemoryLimit: "280MiB"}
	got, err := clusterRegistryConfig(cfg, "r2", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "bench-ab:")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  registerInterval: 5s\n", "  memoryLimit: 280MiB\n", "  controlAddr: 127.0.0.1:0\n",
		"    provider: redis\n", `    parameters: "host=127.0.0.1,port=3"` + "\n", `  keyPrefix: "bench-ab:"` + "\n",
		"  clusterMode: true\n", "  leaseTTL: 10s\n", `  replicaId: "r2"` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

func TestWriteCluster(t *testing.T) {
	r := ClusterResult{
		Trunks: 100_000, Replicas: []string{"r1", "r2", "r3"}, LeaseTTL: 10 * time.Second, Interval: 5 * time.Second,
		Registered: true, RegisterTime: 30 * time.Second, RedisCommands: 190_000, RedisRoundTrips: 189_000,
		RegisterCPU:  []float64{10, 11, 12},
		IdleMeasured: true, IdleWindow: 20 * time.Second, IdleRounds: 6, IdleCPU: []float64{1, 0.5, 0.5},
		IdleRedisCommands: 720, IdleRedisRoundTrips: 90, IdleRedisServerCommands: 1_200_000,
		Owned:            map[string]int{"r1": 33_000, "r2": 34_000, "r3": 33_000},
		Leases:           100_000,
		FailoverMeasured: true, Victim: "r2", Moved: 34_000, Refreshed: 34_000, FailoverComplete: true,
		FailoverTime: 16 * time.Second, Continued: 34_000, MovedTo: map[string]int{"r1": 17_000, "r3": 17_000},
		TakenOver: []int64{17_000, 0, 17_000}, TakenBack: []int64{0, 0, 51_000}, LostLeases: []int64{0, 0, 0},
	}
	var out bytes.Buffer
	WriteCluster(&out, r, nil)
	text := out.String()
	for _, want := range []string{
		"### Several replicas (3 × registry, 100,000 trunks)",
		"| every trunk registered, from the first FindBy (s) | 30.00 | — |  |",
		"| Redis commands / registration (round trips) | 1.90 (1.890) | ≤ 2 round trips | met |",
		"| Redis commands / lease-renewal round (round trips) | 40.0 (5.00) | — |  |",
		"the Lua scripts' own included (Redis's count) | 66,667 |",
		"| idle CPU s / replica / minute: r1, r2, r3 (mean) | 3.000, 1.500, 1.500 (2.000) | — |  |",
		"| failover after SIGKILL of r2: kill → every trunk it owned REGISTERed again (s) | 16.00 | ≤ 15 (lease TTL 10 s + 5 s) | **not met** |",
		"| trunks moved; of them, kept Call-ID with a higher CSeq | 34,000; 34,000 | all | met |",
		"their leases afterwards: r1 17,000, r3 17,000",
		"trunks taken over from a replica that left: r1 17,000, r2 0, r3 17,000; leases taken back after they vanished from Redis: r1 0, r2 0, r3 51,000",
		"**leases lapsed**",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	// Nothing measured: every line says so, and the error is in the notes.
	out.Reset()
	WriteCluster(&out, ClusterResult{Trunks: 10, Replicas: []string{"r1", "r2", "r3"}, LeaseTTL: 10 * time.Second},
		fmt.Errorf("replica r2: %w", errors.New("registry exited early")))
	text = out.String()
	notMeasuredLines := 0
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "| ") && strings.Contains(line, "| not measured |") {
			notMeasuredLines++
		}
	}
	if notMeasuredLines != 7 {
		t.Errorf("%d lines not measured, want 7:\n%s", notMeasuredLines, text)
	}
	if !strings.Contains(text, "- **not measured**: replica r2: registry exited early") {
		t.Errorf("no error note:\n%s", text)
	}

	// A failover not complete within the timeout.
	r.FailoverComplete, r.Refreshed, r.FailoverTimeout, r.Continued = false, 30_000, time.Minute, 30_000
	out.Reset()
	WriteCluster(&out, r, nil)
	if text := out.String(); !strings.Contains(text, "| > 60 (30,000 of 34,000) | ≤ 15 (lease TTL 10 s + 5 s) | **not met** |") ||
		!strings.Contains(text, "| 34,000; 30,000 | all | **not met** |") {
		t.Errorf("incomplete failover:\n%s", text)
	}
}

// TestValuesByPrefix needs Redis (REDIS_ADDR, else 127.0.0.1:6379); it is skipped
// without one.
func TestValuesByPrefix(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := dialRedis(ctx, addr)
	if err != nil {
		t.Skipf("no Redis: %v", err)
	}
	defer rc.close()
	prefix := "bench-test-" + randomHex(6) + "-cluster:{leases}:lease:"
	defer func() {
		if _, err := rc.deletePrefix(prefix); err != nil {
			t.Error(err)
		}
	}()
	want := map[string]string{}
	for i := range 2500 {
		ref := fmt.Sprintf("trunk-%06d", i)
		want[ref] = fmt.Sprintf("r%d:%d", i%3+1, i)
		if err := rc.client.Set(ctx, prefix+ref, want[ref], time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rc.valuesByPrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("valuesByPrefix: %d values, want %d", len(got), len(want))
	}
}

// TestRedisConnCountsItsCommands needs Redis (REDIS_ADDR, else 127.0.0.1:6379); it is
// skipped without one. The commands the bench's connection writes are what Redis counts
// of it: HELLO and PING when it connects, then each INFO in the reading after it.
func TestRedisConnCountsItsCommands(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := dialRedis(ctx, addr)
	if err != nil {
		t.Skipf("no Redis: %v", err)
	}
	defer rc.close()
	if n := rc.sent.Load(); n != 2 {
		t.Fatalf("after connecting: %d commands sent, want 2 (HELLO, PING)", n)
	}
	a, err := rc.stats()
	if err != nil {
		t.Fatal(err)
	}
	b, err := rc.stats()
	if err != nil {
		t.Fatal(err)
	}
	if a.own != 2 || b.own != 3 {
		t.Fatalf("own = %d then %d, want 2 then 3", a.own, b.own)
	}
	// Other clients of a shared Redis may run commands in between, never fewer than none.
	if total, _ := b.since(a); total < 0 || b.total-a.total < 1 {
		t.Fatalf("since = %d (totals %d, %d): the bench's INFO is not taken out right", total, a.total, b.total)
	}
}
