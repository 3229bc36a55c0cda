package bench

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redisProxy sits between the registry and Redis and counts what the registry sends:
// commands (parsed from the RESP stream, by name) and round trips (per connection, a
// burst of requests that follows an answer, or opens the connection). Redis's own
// counters are server-wide, so they also count every other client of a shared server;
// the proxy sees the registry's traffic only.
type redisProxy struct {
	lis      net.Listener
	upstream string

	mu       sync.Mutex // guards the fields below
	commands int64
	trips    int64
	byName   map[string]int64
	conns    map[net.Conn]struct{}
	closed   bool
	handlers sync.WaitGroup
}

// proxyCounts is one reading of a redisProxy's counters.
type proxyCounts struct {
	commands int64
	trips    int64
	byName   map[string]int64
}

// since returns the counts between an earlier reading and this one.
func (c proxyCounts) since(earlier proxyCounts) proxyCounts {
	d := proxyCounts{commands: c.commands - earlier.commands, trips: c.trips - earlier.trips, byName: map[string]int64{}}
	for name, n := range c.byName {
		if k := n - earlier.byName[name]; k > 0 {
			d.byName[name] = k
		}
	}
	return d
}

func startRedisProxy(upstream string) (*redisProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redis proxy: %w", err)
	}
	p := &redisProxy{lis: lis, upstream: upstream, byName: map[string]int64{}, conns: map[net.Conn]struct{}{}}
	p.handlers.Go(p.accept)
	return p, nil
}

func (p *redisProxy) addr() string { return p.lis.Addr().String() }

// counts returns the counters now.
func (p *redisProxy) counts() proxyCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	byName := make(map[string]int64, len(p.byName))
	for k, v := range p.byName {
		byName[k] = v
	}
	return proxyCounts{commands: p.commands, trips: p.trips, byName: byName}
}

// close stops accepting, closes every connection and waits for the handlers.
func (p *redisProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.lis.Close()
	p.handlers.Wait()
}

// track registers c for close; it reports false (and closes c) once closing.
func (p *redisProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *redisProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *redisProxy) accept() {
	for {
		client, err := p.lis.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		p.handlers.Go(func() { p.serve(client) })
	}
}

// serve forwards one client connection to Redis in both directions.
func (p *redisProxy) serve(client net.Conn) {
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)

	// answered is true once Redis has sent something since the client last did: the
	// client's next bytes start a new round trip. Redis's bytes are counted before
	// they are passed on, so the client cannot answer them first.
	var turnMu sync.Mutex
	answered := true
	var parser respCounter
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				turnMu.Lock()
				answered = true
				turnMu.Unlock()
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		client.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			turnMu.Lock()
			trip := answered
			answered = false
			turnMu.Unlock()
			names := parser.feed(buf[:n])
			p.mu.Lock()
			if trip {
				p.trips++
			}
			for _, name := range names {
				p.commands++
				p.byName[name]++
			}
			p.mu.Unlock()
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	server.Close()
	<-done
}

// respCounter reads the RESP requests a client sends, across reads, and returns the
// name of each command as it starts. Requests are arrays of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); an inline command (a plain line) counts too.
type respCounter struct {
	line    []byte // a header line read in part
	elems   int    // bulk strings left in the current command
	skip    int    // bytes of bulk data (and its CRLF) left to pass over
	naming  bool   // the bulk being passed over is the command's name
	name    []byte
	pending bool // a command has started and its name is not complete yet
}

// maxName bounds how much of a command name is kept.
const maxName = 32

func (c *respCounter) feed(p []byte) []string {
	var names []string
	for len(p) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(p))
			if c.naming {
				data := p[:k]
				if keep := c.skip - 2; keep < len(data) { // leave the CRLF out
					data = data[:max(keep, 0)]
				}
				if room := maxName - len(c.name); room > 0 {
					c.name = append(c.name, data[:min(room, len(data))]...)
				}
			}
			c.skip -= k
			p = p[k:]
			if c.skip == 0 && c.naming {
				c.naming = false
				names = append(names, strings.ToLower(string(c.name)))
				c.name, c.pending = c.name[:0], false
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			return names
		}
		c.line = append(c.line, p[:i+1]...)
		p = p[i+1:]
		if name, ok := c.header(bytes.TrimRight(c.line, "\r\n")); ok {
			names = append(names, name)
		}
		c.line = c.line[:0]
	}
	return names
}

// header reads one header line; it returns a command's name when the line is a
// whole inline command or an empty array.
func (c *respCounter) header(line []byte) (string, bool) {
	if len(line) == 0 {
		return "", false
	}
	if c.elems == 0 {
		if line[0] != '*' {
			f := strings.Fields(string(line))
			if len(f) == 0 {
				return "", false
			}
			return strings.ToLower(f[0]), true
		}
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n <= 0 {
			return "?", true
		}
		c.elems, c.pending = n, true
		return "", false
	}
	c.elems--
	if line[0] != '$' {
		return "", false
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 {
		return "", false
	}
	c.skip = n + 2
	c.naming = c.pending
	return "", false
}
