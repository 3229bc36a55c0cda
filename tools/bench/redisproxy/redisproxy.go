// Package redisproxy is the bench's counting proxy on the registry's Redis connection:
// it passes every byte on, both ways, and counts the commands the registry sends (by
// name) and the round trips they take. The bench judges the Redis cost of a
// registration by it, because Redis's own counters are server-wide: they also count
// every other client of a shared server, and the commands the Lua scripts run inside
// Redis, while the proxy sees the registry's requests on the wire only.
package redisproxy

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Proxy sits between the registry and Redis and counts what the registry sends:
// commands (parsed from the RESP stream, by name) and round trips. A round trip is a
// burst of requests from the client followed by the server's answer to all of it: per
// connection, client bytes start a new one only when every command sent before has
// been answered (replies are parsed too, RESP2 and RESP3) and no command is half
// written. So a pipeline that the client writes in several TCP chunks is one round
// trip, even when Redis answers the first chunk's commands before the rest arrives.
// (What it cannot tell apart: a pipeline cut exactly between two commands, whose first
// part Redis has answered in full before the second part arrives; with pipelines of
// whole records in large chunks that is rare.) Redis's own counters are server-wide, so
// they also count every other client of a shared server; the proxy sees the registry's
// traffic only.
type Proxy struct {
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

// Counts is one reading of a Proxy's counters: the commands the clients sent, by name
// in ByName, and the round trips they took.
type Counts struct {
	Commands int64
	Trips    int64
	ByName   map[string]int64
}

// Since returns the counts between an earlier reading and this one.
func (c Counts) Since(earlier Counts) Counts {
	d := Counts{Commands: c.Commands - earlier.Commands, Trips: c.Trips - earlier.Trips, ByName: map[string]int64{}}
	for name, n := range c.ByName {
		if k := n - earlier.ByName[name]; k > 0 {
			d.ByName[name] = k
		}
	}
	return d
}

// Start listens on a free loopback port and forwards every connection to upstream
// (host:port of the Redis server), counting what the clients send.
func Start(upstream string) (*Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redis proxy: %w", err)
	}
	p := &Proxy{lis: lis, upstream: upstream, byName: map[string]int64{}, conns: map[net.Conn]struct{}{}}
	p.handlers.Go(p.accept)
	return p, nil
}

// Addr returns the host:port the proxy listens on, for the clients.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Counts returns the counters now.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	byName := make(map[string]int64, len(p.byName))
	for k, v := range p.byName {
		byName[k] = v
	}
	return Counts{Commands: p.commands, Trips: p.trips, ByName: byName}
}

// Close stops accepting, closes every connection and waits for the handlers.
func (p *Proxy) Close() {
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
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
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
func (p *Proxy) serve(client net.Conn) {
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)

	// sent counts the commands the client has begun, replied the server's whole
	// replies (at most sent: a RESP3 push or a RESP2 pub/sub message answers nothing).
	// Replies are counted before they are passed on, so the client cannot act on one
	// before it is counted.
	var turnMu sync.Mutex
	var sent, replied int64
	var parser CommandCounter
	var replies respReplies
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				k := replies.feed(buf[:n])
				turnMu.Lock()
				replied = min(replied+k, sent)
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
			trip := replied >= sent && !parser.midCommand()
			turnMu.Unlock()
			names := parser.Feed(buf[:n])
			turnMu.Lock()
			sent = parser.begun
			turnMu.Unlock()
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
