package recordfmt_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// measureDB is the database TestRedisUsedMemoryPerTrunk fills: it must be
// empty, and is flushed after each format.
const measureDB = 15

// TestRedisUsedMemoryPerTrunk measures what the bench measures (see
// tools/bench): how much INFO used_memory grows per trunk when 10,000 and
// 100,000 typical records are written with the store's key layout and TTLs,
// in format versions 2 and 3, and what MEMORY USAGE says of a sample of the
// keys. used_memory counts the whole server, so it runs only against a Redis
// nothing else uses: SIPREG_MEASURE_REDIS=host:port, whose database 15 must
// be empty. It logs; it asserts only that version 3 stays within 400 bytes
// per trunk (issue 12).
func TestRedisUsedMemoryPerTrunk(t *testing.T) {
	addr := os.Getenv("SIPREG_MEASURE_REDIS")
	if addr == "" {
		t.Skip("SIPREG_MEASURE_REDIS (the address of an otherwise idle Redis) is not set")
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DB: measureDB})
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("database %d of %s holds %d keys (%v): it must be empty", measureDB, addr, n, err)
	}
	for _, v := range writeVersions {
		recordfmt.WriteVersion(t, v)
		for _, n := range []int{10_000, 100_000} {
			perTrunk, sample := fill(t, c, n)
			t.Logf("version %d, %d trunks: used_memory %.1f B per trunk; MEMORY USAGE %.1f B per key (mean of 100)",
				v, n, perTrunk, sample)
			if err := c.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if v == recordfmt.Version && perTrunk > 400 {
				t.Errorf("version %d: %.1f B per trunk, want at most 400", v, perTrunk)
			}
		}
	}
}

// fill writes n typical records, each with its own ref, AOR, Call-ID and
// times, and returns how much used_memory grew per record and the mean MEMORY
// USAGE of the first 100 keys.
func fill(t *testing.T, c *redis.Client, n int) (perTrunk, sample float64) {
	t.Helper()
	ctx := t.Context()
	before := usedMemory(t, c)
	p := c.Pipeline()
	var keys []string
	for i := range n {
		rec := typicalRecord()
		rec.TrunkRef = fmt.Sprintf("trunk-%06d", i)
		rec.AOR = fmt.Sprintf("sip:user%06d@sip.acme.example", i)
		rec.CallID = fmt.Sprintf("%032x@sipreg", uint64(i)*0x9e3779b97f4a7c15)
		rec.UpdatedAt = rec.UpdatedAt.Add(time.Duration(i) * time.Microsecond)
		value, ttl, err := recordfmt.Encode(rec, fixedClock, store.DefaultTTLGrace)
		if err != nil {
			t.Fatal(err)
		}
		key := store.DefaultPrefix + rec.TrunkRef
		if len(keys) < 100 {
			keys = append(keys, key)
		}
		p.Set(ctx, key, value, ttl)
		if p.Len() == 1000 || i == n-1 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	perTrunk = float64(usedMemory(t, c)-before) / float64(n)
	var total int64
	for _, k := range keys {
		total += c.MemoryUsage(ctx, k, 0).Val()
	}
	return perTrunk, float64(total) / float64(len(keys))
}

// usedMemory is INFO's used_memory.
func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(t.Context(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory without used_memory")
	return 0
}
