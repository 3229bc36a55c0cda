package bench

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
		var c respCounter
		got := append(c.feed([]byte(stream[:cut])), c.feed([]byte(stream[cut:]))...)
		if !slices.Equal(got, want) {
			t.Fatalf("split at %d: %v, want %v", cut, got, want)
		}
	}
	var c respCounter
	var got []string
	for i := range len(stream) {
		got = append(got, c.feed([]byte{stream[i]})...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("byte by byte: %v, want %v", got, want)
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
				var c respCounter
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					if n > 0 {
						if _, err := io.WriteString(conn, strings.Repeat("+OK\r\n", len(c.feed(buf[:n])))); err != nil {
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

func TestRedisProxyCountsRoundTrips(t *testing.T) {
	p, err := startRedisProxy(fakeRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	conn, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
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
	got := p.counts()
	if got.commands != 5 || got.trips != 2 {
		t.Fatalf("commands %d, round trips %d; want 5 and 2", got.commands, got.trips)
	}
	want := map[string]int64{"set": 1, "get": 2, "ping": 1, "hello": 1}
	if !maps.Equal(got.byName, want) {
		t.Fatalf("by name %v, want %v", got.byName, want)
	}
	if d := got.since(proxyCounts{commands: 1, trips: 1, byName: map[string]int64{"get": 2}}); d.commands != 4 || d.trips != 1 || len(d.byName) != 3 {
		t.Fatalf("since = %+v", d)
	}
}
