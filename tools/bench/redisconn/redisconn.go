// Package redisconn is the bench's own connection to Redis, beside the registry's: it
// reads the server's counters (INFO: commands processed, per command and in all, and
// used_memory), samples the size of a run's keys (MEMORY USAGE) and deletes them at
// the end (SCAN, UNLINK). It counts every command it sends itself, so that a reading of
// Redis's server-wide counters can leave the bench's own out: the bench reports
// Redis's count next to the proxy's, as a cross-check that also sees the commands the
// registry's Lua scripts run inside Redis.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"sipreg.dev/tools/bench/redisproxy"
)

// redisTimeout bounds one command of the bench's own Redis connection.
const redisTimeout = 10 * time.Second

// Conn is the bench's own connection to Redis (INFO, SCAN, UNLINK, MEMORY USAGE). It counts
// every command it writes, the connection's HELLO included, so that a reading of the
// server's counters can leave the bench's own commands out.
type Conn struct {
	client *redis.Client
	sent   atomic.Int64 // commands written so far
}

// Dial connects to the Redis server at addr (host:port) and checks it answers.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	c := &Conn{}
	c.client = redis.NewClient(&redis.Options{
		Addr:         addr,
		Dialer:       c.dial,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  redisTimeout,
		WriteTimeout: redisTimeout,
		// One connection and no retries: a command that fails fails the row.
		PoolSize:      1,
		MaxRetries:    -1,
		DialerRetries: 1,
		// RESP2 and no CLIENT SETINFO: after its HELLO the connection sends only
		// what the bench asks for.
		Protocol:        2,
		DisableIdentity: true,
	})
	if err := c.client.Ping(ctx).Err(); err != nil {
		c.client.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return c, nil
}

// dial opens a connection whose writes are counted, command by command.
func (c *Conn) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, sent: &c.sent}, nil
}

// countingConn counts the RESP commands written to it.
type countingConn struct {
	net.Conn
	sent *atomic.Int64

	mu     sync.Mutex // guards parser
	parser redisproxy.CommandCounter
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.sent.Add(int64(len(c.parser.Feed(p[:n]))))
	c.mu.Unlock()
	return n, err
}

// Close closes the connection.
func (c *Conn) Close() error { return c.client.Close() }

// Stats is one reading of the server's command counters.
type Stats struct {
	total      int64            // total_commands_processed
	UsedMemory int64            // used_memory, bytes (-1 when INFO has none)
	calls      map[string]int64 // calls per command (INFO commandstats)
	own        int64            // commands the bench had sent before this reading
}

// Stats reads the server's command counters. Redis counts a command once it has run,
// so the INFO that takes a reading is counted in the next one, with the bench's own.
func (c *Conn) Stats() (Stats, error) {
	own := c.sent.Load()
	text, err := c.client.Info(context.Background(), "all").Result()
	if err != nil {
		return Stats{}, fmt.Errorf("redis INFO: %w", err)
	}
	return parseInfo(text, own)
}

func parseInfo(text string, own int64) (Stats, error) {
	st := Stats{total: -1, UsedMemory: -1, calls: map[string]int64{}, own: own}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return st, fmt.Errorf("redis INFO: total_commands_processed %q: %w", v, err)
			}
			st.total = n
			continue
		}
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return st, fmt.Errorf("redis INFO: used_memory %q: %w", v, err)
			}
			st.UsedMemory = n
			continue
		}
		// cmdstat_set:calls=12,usec=...
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for f := range strings.SplitSeq(fields, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						st.calls[name] = n
					}
				}
			}
		}
	}
	if st.total < 0 {
		return st, errors.New("redis INFO: no total_commands_processed")
	}
	return st, nil
}

// Since returns the commands other clients ran between an earlier reading and this
// one, overall and per command. Between the readings that a row compares the bench
// sends INFOs only (HELLO and PING when it connects, SCAN, UNLINK and MEMORY USAGE outside
// the measured spans), so the per-command counts of the others are exact.
func (s Stats) Since(earlier Stats) (int64, map[string]int64) {
	total := s.total - earlier.total - (s.own - earlier.own)
	per := map[string]int64{}
	for name, n := range s.calls {
		if d := n - earlier.calls[name]; d > 0 {
			per[name] = d
		}
	}
	// Take the bench's INFOs out of the breakdown (the bench's commands in between
	// are INFOs only while a row measures).
	if d := per["info"] - (s.own - earlier.own); d > 0 {
		per["info"] = d
	} else {
		delete(per, "info")
	}
	return total, per
}

// DeletePrefix removes every key starting with prefix (SCAN + UNLINK) and returns how
// many there were.
func (c *Conn) DeletePrefix(prefix string) (int, error) {
	ctx := context.Background()
	var cursor uint64
	deleted := 0
	for {
		keys, next, err := c.client.Scan(ctx, cursor, escapeGlob(prefix)+"*", 1000).Result()
		if err != nil {
			return deleted, fmt.Errorf("redis SCAN: %w", err)
		}
		if len(keys) > 0 {
			n, err := c.client.Unlink(ctx, keys...).Result()
			if err != nil {
				return deleted, fmt.Errorf("redis UNLINK: %w", err)
			}
			deleted += int(n)
		}
		if next == 0 {
			return deleted, nil
		}
		cursor = next
	}
}

// escapeGlob quotes the characters SCAN MATCH reads as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SampleMemory reads MEMORY USAGE (SAMPLES 0: the whole value) of up to n keys starting
// with prefix and returns how many it read and their mean size in bytes.
func (c *Conn) SampleMemory(prefix string, n int) (int, float64, error) {
	ctx := context.Background()
	var cursor uint64
	var keys []string
	for len(keys) < n {
		batch, next, err := c.client.Scan(ctx, cursor, escapeGlob(prefix)+"*", 1000).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("redis SCAN: %w", err)
		}
		keys = append(keys, batch...)
		if next == 0 {
			break
		}
		cursor = next
	}
	keys = keys[:min(len(keys), n)]
	var total int64
	read := 0
	for _, k := range keys {
		b, err := c.client.MemoryUsage(ctx, k, 0).Result()
		if errors.Is(err, redis.Nil) {
			continue // gone in between
		}
		if err != nil {
			return 0, 0, fmt.Errorf("redis MEMORY USAGE: %w", err)
		}
		total += b
		read++
	}
	if read == 0 {
		return 0, 0, nil
	}
	return read, float64(total) / float64(read), nil
}
