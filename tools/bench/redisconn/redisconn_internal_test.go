package redisconn

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

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
	total, per := b.Since(a)
	if total != 100 || per["set"] != 100 || len(per) != 1 {
		t.Fatalf("since = %d %v, want 100 map[set:100]", total, per)
	}
}

func TestRedisStatsUsedMemory(t *testing.T) {
	st, err := parseInfo("# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Stats\r\ntotal_commands_processed:7\r\n", 0)
	if err != nil || st.UsedMemory != 1<<20 {
		t.Fatalf("parseInfo = %+v, %v", st, err)
	}
	if st, _ := parseInfo("total_commands_processed:7\r\n", 0); st.UsedMemory != -1 {
		t.Fatalf("no used_memory: %d, want -1", st.UsedMemory)
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
	rc, err := Dial(ctx, addr)
	if err != nil {
		t.Skipf("no Redis: %v", err)
	}
	defer rc.Close()
	if n := rc.sent.Load(); n != 2 {
		t.Fatalf("after connecting: %d commands sent, want 2 (HELLO, PING)", n)
	}
	a, err := rc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	b, err := rc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if a.own != 2 || b.own != 3 {
		t.Fatalf("own = %d then %d, want 2 then 3", a.own, b.own)
	}
	// Other clients of a shared Redis may run commands in between, never fewer than none.
	if total, _ := b.Since(a); total < 0 || b.total-a.total < 1 {
		t.Fatalf("since = %d (totals %d, %d): the bench's INFO is not taken out right", total, a.total, b.total)
	}
}
