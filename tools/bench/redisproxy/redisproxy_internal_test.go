package redisproxy

import (
	"bufio"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
)

// stream holds a pipeline of four commands, one of them inline and one with a bulk
// string that holds CRLF.
const stream = "*3\r\n$3\r\nSET\r\n$5\r\nk:one\r\n$4\r\na\r\nb\r\n" +
	"*2\r\n$3\r\nget\r\n$1\r\nk\r\n" +
	"PING\r\n" +
	"*1\r\n$5\r\nHELLO\r\n"

func TestRespCounterAnySplit(t *testing.T) {
	want := []string{"set", "get", "ping", "hello"}
	for cut := range len(stream) + 1 {
		var c CommandCounter
		got := append(c.Feed([]byte(stream[:cut])), c.Feed([]byte(stream[cut:]))...)
		if !slices.Equal(got, want) {
			t.Fatalf("split at %d: %v, want %v", cut, got, want)
		}
	}
	var c CommandCounter
	var got []string
	for i := range len(stream) {
		got = append(got, c.Feed([]byte{stream[i]})...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("byte by byte: %v, want %v", got, want)
	}
}

// TestRespCounterWholeCommands: a command is begun at its first line and whole at its
// end, however the stream is cut.
func TestRespCounterWholeCommands(t *testing.T) {
	for cut := range len(stream) + 1 {
		var c CommandCounter
		c.Feed([]byte(stream[:cut]))
		if c.whole > c.begun || c.begun > c.whole && !c.midCommand() {
			t.Fatalf("cut at %d: begun %d, whole %d, mid-command %v", cut, c.begun, c.whole, c.midCommand())
		}
		c.Feed([]byte(stream[cut:]))
		if c.begun != 4 || c.whole != 4 || c.midCommand() {
			t.Fatalf("cut at %d: begun %d, whole %d, mid-command %v; want 4, 4, false", cut, c.begun, c.whole, c.midCommand())
		}
	}
}

// replies holds ten replies in RESP2 and RESP3 forms, with a push between them (no
// reply) and an attribute before one (part of it).
const replies = "+OK\r\n" +
	"$5\r\na\r\nbc\r\n" + // CRLF inside a bulk string
	"$-1\r\n" +
	"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n" +
	">2\r\n+message\r\n+x\r\n" +
	"%1\r\n+k\r\n*0\r\n" +
	"|1\r\n+ttl\r\n:3\r\n+val\r\n" +
	"_\r\n" +
	"=10\r\ntxt:hello!\r\n" +
	"-ERR no\r\n" +
	"*-1\r\n"

func TestRespRepliesAnySplit(t *testing.T) {
	const want = 10
	for cut := range len(replies) + 1 {
		var r respReplies
		if got := r.feed([]byte(replies[:cut])) + r.feed([]byte(replies[cut:])); got != want {
			t.Fatalf("split at %d: %d replies, want %d", cut, got, want)
		}
	}
	var r respReplies
	var got int64
	for i := range len(replies) {
		got += r.feed([]byte{replies[i]})
	}
	if got != want {
		t.Fatalf("byte by byte: %d replies, want %d", got, want)
	}
}

// fakeRedis answers +OK to every command it reads.
func fakeRedis(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				var c CommandCounter
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					if n > 0 {
						// Each command is answered as soon as it is whole, as Redis does.
						before := c.whole
						c.Feed(buf[:n])
						if _, err := io.WriteString(conn, strings.Repeat("+OK\r\n", int(c.whole-before))); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// dialProxy starts a proxy in front of a fake Redis and connects to it; both close
// when the test ends.
func dialProxy(t *testing.T) (*Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	p, err := Start(fakeRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return p, conn, bufio.NewReader(conn)
}

func TestRedisProxyCountsRoundTrips(t *testing.T) {
	p, conn, rd := dialProxy(t)
	exchange := func(req string, replies int) {
		t.Helper()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		for range replies {
			if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
				t.Fatalf("reply %q, %v", line, err)
			}
		}
	}
	exchange(stream, 4)                           // one pipeline: one round trip
	exchange("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 1) // then one more
	got := p.Counts()
	if got.Commands != 5 || got.Trips != 2 {
		t.Fatalf("commands %d, round trips %d; want 5 and 2", got.Commands, got.Trips)
	}
	want := map[string]int64{"set": 1, "get": 2, "ping": 1, "hello": 1}
	if !maps.Equal(got.ByName, want) {
		t.Fatalf("by name %v, want %v", got.ByName, want)
	}
	if d := got.Since(Counts{Commands: 1, Trips: 1, ByName: map[string]int64{"get": 2}}); d.Commands != 4 || d.Trips != 1 || len(d.ByName) != 3 {
		t.Fatalf("since = %+v", d)
	}
}

// TestRedisProxyPipelineInChunks: a pipeline the client writes in several TCP chunks is
// one round trip, even when the server answers the first chunk's commands before the
// next chunk arrives; a write after every answer is read starts the next one.
func TestRedisProxyPipelineInChunks(t *testing.T) {
	p, conn, rd := dialProxy(t)
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(conn, s); err != nil {
			t.Fatal(err)
		}
	}
	read := func(replies int) {
		t.Helper()
		for range replies {
			if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
				t.Fatalf("reply %q, %v", line, err)
			}
		}
	}
	set := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
	// Cut inside a command's data, then inside a command's first line: before each next
	// chunk, the answers to the whole commands so far have come back.
	pipeline := strings.Repeat(set, 3)
	cut1 := 2*len(set) + len(set) - 5 // in the third SET's value
	write(pipeline[:cut1])
	read(2)
	write(pipeline[cut1:] + set[:2]) // the rest, and "*3" of a fourth SET
	read(1)
	write(set[2:])
	read(1)
	if got := p.Counts(); got.Commands != 4 || got.Trips != 1 {
		t.Fatalf("commands %d, round trips %d; want 4 in one round trip", got.Commands, got.Trips)
	}
	write(set)
	read(1)
	if got := p.Counts(); got.Commands != 5 || got.Trips != 2 {
		t.Fatalf("commands %d, round trips %d; want 5 in two round trips", got.Commands, got.Trips)
	}
}
