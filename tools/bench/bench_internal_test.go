package bench

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestParseStatTicks(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (reg (x) y) S 1 4242 4242 0 -1 4194560 1363 0 0 0 157 43 0 0 20 0 7 0 1234 1000 200 18446744073709551615\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 200 {
		t.Fatalf("parseStatTicks = %d, %v; want 200", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat: no error")
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tregistry\nVmPeak:\t 900000 kB\nVmHWM:\t  512000 kB\nVmRSS:\t  256000 kB\nThreads:\t7\n"
	peak, rss, err := parseStatusMemory([]byte(status))
	if err != nil || peak != 512000<<10 || rss != 256000<<10 {
		t.Fatalf("parseStatusMemory = %d, %d, %v", peak, rss, err)
	}
	if _, _, err := parseStatusMemory([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmHWM: no error")
	}
}

func TestRedisStatsSince(t *testing.T) {
	info := func(total, set, info int) string {
		return "# Stats\r\ntotal_commands_processed:" + strconv.Itoa(total) + "\r\n# Commandstats\r\n" +
			"cmdstat_set:calls=" + strconv.Itoa(set) + ",usec=1,usec_per_call=1.0\r\n" +
			"cmdstat_info:calls=" + strconv.Itoa(info) + ",usec=1\r\n"
	}
	a, err := parseInfo(info(1000, 10, 5), 3)
	if err != nil {
		t.Fatal(err)
	}
	// In between: 100 SETs from the registry, and the bench's INFO that took a,
	// plus two more INFOs of the bench (own goes 3 -> 6).
	b, err := parseInfo(info(1103, 110, 8), 6)
	if err != nil {
		t.Fatal(err)
	}
	total, per := b.since(a)
	if total != 100 || per["set"] != 100 || len(per) != 1 {
		t.Fatalf("since = %d %v, want 100 map[set:100]", total, per)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestVerdict(t *testing.T) {
	r := Result{Trunks: TargetTrunks, Cache: CacheRedis, RegisterTime: 20 * time.Second, RegisterCPU: 5,
		PeakRSS: 100 << 20, RedisCommands: 3 * TargetTrunks, RedisRoundTrips: 3 * TargetTrunks, IdleTickCPU: 0.1}
	got := verdict(checks(r))
	want := "**not met** (3/5 met): time, Redis"
	if got != want {
		t.Fatalf("verdict = %q, want %q", got, want)
	}
	small := Result{Trunks: 1000, Cache: CacheMemory, RegisterCPU: 0.05, RedisCommands: -1, RedisRoundTrips: -1}
	if got := verdict(checks(small)); got != "met (1/1)" {
		t.Fatalf("verdict = %q, want met (1/1)", got)
	}
}

func TestOKRequesterCountsDistinctTrunks(t *testing.T) {
	q := newOKRequester(2)
	send := func(user string, expires int32) *sipmessagev2beta1.SIPMessage {
		t.Helper()
		resp, err := q.SendMessage(context.Background(), &requesterv2beta1.SendMessageRequest{
			Target: "10.0.0.1:5060",
			Message: &sipmessagev2beta1.SIPMessage{
				To:         &sipmessagev2beta1.To{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "x"}}},
				Expires:    &sipmessagev2beta1.Expires{Expires: expires},
				Extensions: []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: "7 REGISTER"}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMessage()
	}
	m := send("user1", 3600)
	if m.GetResponseType() != sipmessagev2beta1.ResponseType_OK || m.GetContact().GetExpires() != grantedExpires ||
		m.GetExpires().GetExpires() != grantedExpires || m.GetExtensions()[0].GetValue() != "7 REGISTER" {
		t.Fatalf("answer = %v", m)
	}
	send("user1", 600) // the same trunk again
	send("user2", 0)   // an unregister does not count
	select {
	case <-q.done:
		t.Fatal("done after one distinct trunk")
	default:
	}
	send("user2", 300)
	select {
	case <-q.done:
	default:
		t.Fatal("not done after two distinct trunks")
	}
	if q.calls.Load() != 4 || q.distinct.Load() != 2 {
		t.Fatalf("calls %d distinct %d, want 4 and 2", q.calls.Load(), q.distinct.Load())
	}
}

func TestFindByWatchWaitAfter(t *testing.T) {
	firstAt := make(chan time.Time, 1)
	w := newFindByWatch(func(at time.Time) { firstAt <- at })
	before := time.Now()
	go func() { _, _ = w.Write([]byte("line\n")) }()
	at, err := w.waitAfter(context.Background(), before, nil)
	if err != nil || at.Before(before) {
		t.Fatalf("waitAfter = %v, %v", at, err)
	}
	if first := <-firstAt; !first.Equal(at) {
		t.Fatalf("onFirst got %v, waitAfter %v", first, at)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.waitAfter(ctx, at, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitAfter on a cancelled context = %v", err)
	}
}
