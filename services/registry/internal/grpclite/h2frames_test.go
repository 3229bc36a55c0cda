package grpclite

import (
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// write writes frames (a connection that failed is left to its reader to notice).
func (c *h2conn) write(frames func(fr *http2.Framer) error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = frames(c.fr)
}

// headers writes a HEADERS frame of the name, value pairs kv.
func (c *h2conn) headers(id uint32, end bool, kv ...string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: end})
	if end {
		c.ended(id)
	}
}

func (c *h2conn) ended(id uint32) {
	c.mu.Lock()
	if !c.reset[id] {
		c.reset[id] = true
		c.open--
	}
	c.mu.Unlock()
}

// data sends b on stream id in frames of 16 KiB at most, within the client's windows;
// false when the stream was reset or the connection ended first.
func (c *h2conn) data(id uint32, end bool, b []byte) bool {
	for first := true; first || len(b) > 0; first = false {
		c.mu.Lock()
		for !c.closed && !c.reset[id] && len(b) > 0 && (c.sendConn <= 0 || c.send[id] <= 0) {
			c.cond.Wait()
		}
		if c.closed || c.reset[id] {
			c.mu.Unlock()
			return false
		}
		n := min(int64(len(b)), c.sendConn, c.send[id], defaultFrame)
		c.sendConn -= n
		c.send[id] -= n
		c.mu.Unlock()
		last := end && int(n) == len(b)
		c.write(func(fr *http2.Framer) error { return fr.WriteData(id, last, b[:n]) })
		if last {
			c.ended(id)
		}
		b = b[n:]
	}
	return true
}

func (c *h2conn) rst(id uint32, code http2.ErrCode) {
	c.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	c.ended(id)
}

// setInitialWindow sends SETTINGS_INITIAL_WINDOW_SIZE v, which applies to the
// streams open as to the next ones.
func (c *h2conn) setInitialWindow(v uint32) {
	c.mu.Lock()
	for id := range c.recv {
		c.recv[id] += int64(v) - c.recvInit
	}
	c.recvInit = int64(v)
	c.mu.Unlock()
	c.write(func(fr *http2.Framer) error {
		return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: v})
	})
}

// violationCount is the number of DATA frames beyond the server's windows.
func (c *h2conn) violationCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.violations
}

// grpcMessage is b behind a gRPC prefix with flags.
func grpcMessage(flags byte, b []byte) []byte {
	out := make([]byte, prefixLen, prefixLen+len(b))
	out[0] = flags
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// reply is the message of an answer whose reason phrase is phrase.
func reply(phrase string) []byte {
	b, err := proto.Marshal(&requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{ReasonPhrase: phrase}})
	if err != nil {
		panic(err)
	}
	return b
}

// answer sends a whole good answer: headers, one message, trailers with grpc-status 0.
func (r *h2req) answer(msg []byte) {
	r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
	if r.c.data(r.id, false, grpcMessage(0, msg)) {
		r.c.headers(r.id, true, "grpc-status", "0")
	}
}

// callID is the Call-ID of the request's message ("" when it does not decode).
func (r *h2req) callID() string {
	if len(r.body) < prefixLen {
		return ""
	}
	var req requesterv2beta1.SendMessageRequest
	if proto.Unmarshal(r.body[prefixLen:], &req) != nil {
		return ""
	}
	return req.GetMessage().GetCallId().GetCallId()
}

// liteClient is a client of s whose dials are counted.
func liteClient(t testing.TB, addr string, o Options) (*Client, *atomic.Int32) {
	var dials atomic.Int32
	o.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	c := New(addr, o)
	t.Cleanup(func() { _ = c.Close() })
	return c, &dials
}
