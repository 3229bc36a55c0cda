package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// redisTimeout bounds one command of the bench's own Redis connection.
const redisTimeout = 10 * time.Second

// redisConn is the bench's own connection to Redis: just enough RESP2 for INFO, SCAN
// and UNLINK, so that the tools module needs no Redis client library. It is not safe
// for concurrent use.
type redisConn struct {
	conn net.Conn
	rd   *bufio.Reader
	sent int64 // commands sent so far, to subtract the bench's own from INFO counts
}

// redisError is an error reply ("-ERR ...").
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

func dialRedis(ctx context.Context, addr string) (*redisConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	c := &redisConn{conn: conn, rd: bufio.NewReader(conn)}
	if _, err := c.do("PING"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return c, nil
}

func (c *redisConn) close() error { return c.conn.Close() }

// do sends one command and reads its reply: string, int64, nil, []any, or a
// redisError as the error.
func (c *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := c.conn.SetDeadline(time.Now().Add(redisTimeout)); err != nil {
		return nil, err
	}
	c.sent++
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return nil, fmt.Errorf("redis %s: %w", args[0], err)
	}
	v, err := readReply(c.rd)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", args[0], err)
	}
	return v, nil
}

// readReply reads one RESP2 reply.
func readReply(rd *bufio.Reader) (any, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, redisError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("bulk length %q: %w", body, err)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("array length %q: %w", body, err)
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(rd); err != nil {
				var re redisError
				if !errors.As(err, &re) {
					return nil, err
				}
				out[i] = re
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

// redisStats is one reading of the server's command counters.
type redisStats struct {
	total int64            // total_commands_processed
	calls map[string]int64 // calls per command (INFO commandstats)
	own   int64            // commands the bench had sent before this reading
}

// stats reads the server's command counters. Redis counts a command once it has run,
// so the INFO that takes a reading is counted in the next one, with the bench's own.
func (c *redisConn) stats() (redisStats, error) {
	own := c.sent
	v, err := c.do("INFO", "all")
	if err != nil {
		return redisStats{}, err
	}
	text, ok := v.(string)
	if !ok {
		return redisStats{}, fmt.Errorf("redis INFO: unexpected reply %T", v)
	}
	return parseInfo(text, own)
}

func parseInfo(text string, own int64) (redisStats, error) {
	st := redisStats{total: -1, calls: map[string]int64{}, own: own}
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

// since returns the commands other clients ran between an earlier reading and this
// one, overall and per command. Only INFO, PING, SCAN and UNLINK are ever sent by
// the bench, so the per-command counts of the others are exact.
func (s redisStats) since(earlier redisStats) (int64, map[string]int64) {
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

// deletePrefix removes every key starting with prefix (SCAN + UNLINK) and returns how
// many there were.
func (c *redisConn) deletePrefix(prefix string) (int, error) {
	cursor, deleted := "0", 0
	for {
		v, err := c.do("SCAN", cursor, "MATCH", escapeGlob(prefix)+"*", "COUNT", "1000")
		if err != nil {
			return deleted, err
		}
		arr, ok := v.([]any)
		if !ok || len(arr) != 2 {
			return deleted, fmt.Errorf("redis SCAN: unexpected reply %v", v)
		}
		cursor, _ = arr[0].(string)
		keys, _ := arr[1].([]any)
		if len(keys) > 0 {
			args := make([]string, 0, len(keys)+1)
			args = append(args, "UNLINK")
			for _, k := range keys {
				if s, ok := k.(string); ok {
					args = append(args, s)
				}
			}
			n, err := c.do(args...)
			if err != nil {
				return deleted, err
			}
			if k, ok := n.(int64); ok {
				deleted += int(k)
			}
		}
		if cursor == "0" || cursor == "" {
			return deleted, nil
		}
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

// valuesByPrefix returns the string value of every key starting with prefix (SCAN +
// MGET), by the rest of the key; keys that vanish in between are left out.
func (c *redisConn) valuesByPrefix(prefix string) (map[string]string, error) {
	out := map[string]string{}
	cursor := "0"
	for {
		v, err := c.do("SCAN", cursor, "MATCH", escapeGlob(prefix)+"*", "COUNT", "1000")
		if err != nil {
			return out, err
		}
		arr, ok := v.([]any)
		if !ok || len(arr) != 2 {
			return out, fmt.Errorf("redis SCAN: unexpected reply %v", v)
		}
		cursor, _ = arr[0].(string)
		keys, _ := arr[1].([]any)
		if len(keys) > 0 {
			args := make([]string, 0, len(keys)+1)
			args = append(args, "MGET")
			for _, k := range keys {
				if s, ok := k.(string); ok {
					args = append(args, s)
				}
			}
			v, err := c.do(args...)
			if err != nil {
				return out, err
			}
			vals, ok := v.([]any)
			if !ok || len(vals) != len(args)-1 {
				return out, fmt.Errorf("redis MGET: unexpected reply %T", v)
			}
			for i, val := range vals {
				if s, ok := val.(string); ok {
					out[strings.TrimPrefix(args[i+1], prefix)] = s
				}
			}
		}
		if cursor == "0" || cursor == "" {
			return out, nil
		}
	}
}
