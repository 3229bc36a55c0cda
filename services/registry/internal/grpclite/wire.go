package grpclite

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// callError is a call's status, and whether the server never processed the call.
type callError struct {
	st          *status.Status
	unprocessed bool
}

func (e *callError) Error() string              { return e.st.Err().Error() }
func (e *callError) GRPCStatus() *status.Status { return e.st }

// newError is a status of code with msg, and cause's text when there is one.
func newError(code codes.Code, msg string, cause error) *callError {
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &callError{st: status.New(code, msg)}
}

// unprocessed marks err as a call the server never processed (safe to send again).
func unprocessed(err *callError) *callError {
	err.unprocessed = true
	return err
}

func isUnprocessed(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && ce.unprocessed
}

var errClientClosed = newError(codes.Canceled, "grpclite: the client is closed", nil)

// errNoNewCalls ends a call that never left the client: its connection stopped taking
// calls (GOAWAY, stream IDs used up, lost) before the call had a stream.
var errNoNewCalls = unprocessed(newError(codes.Unavailable, "grpclite: the connection takes no new calls", nil))

// fromContext is the status of a call ended by its context, as grpc-go gives it.
func fromContext(err error) *callError {
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(codes.DeadlineExceeded, "context deadline exceeded", nil)
	}
	return newError(codes.Canceled, "context canceled", nil)
}

// httpCode is the gRPC code of an answer's HTTP status when it carries no grpc-status
// (gRPC's http-grpc-status-mapping).
func httpCode(s int) codes.Code {
	switch s {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}

// decodeMessage undoes grpc-message's percent-encoding; a malformed escape is kept as
// it is (gRPC's rule).
func decodeMessage(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// grpcTimeout encodes d as grpc-timeout: at most 8 digits, in the finest unit that
// holds it, rounded up.
func grpcTimeout(d time.Duration) string {
	units := []struct {
		d time.Duration
		u string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}, {time.Hour, "H"}}
	for _, u := range units {
		n := (d + u.d - 1) / u.d
		if n <= 99999999 {
			return strconv.FormatInt(int64(n), 10) + u.u
		}
	}
	return "99999999H"
}

// headerBlock encodes a call's request headers with HPACK literals that are never
// added to the peer's table, so that the block is the same bytes on every call.
func headerBlock(path, authority, userAgent string, timeout time.Duration) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	// A table of 0 entries: literals without indexing. The size update it makes the
	// encoder announce is written to a block thrown away, never sent: the peer's
	// table simply stays unused.
	enc.SetMaxDynamicTableSizeLimit(0)
	_ = enc.WriteField(hpack.HeaderField{Name: "te", Value: "trailers"})
	buf.Reset()
	for _, f := range [...]hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: authority},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: userAgent},
		{Name: "te", Value: "trailers"},
		{Name: "grpc-timeout", Value: grpcTimeout(timeout)},
	} {
		_ = enc.WriteField(f)
	}
	return bytes.Clone(buf.Bytes())
}

// A request's message is marshalled, behind its 5-byte gRPC prefix, into a pooled
// buffer.
const prefixLen = 5

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

// appendProto appends req's bytes as proto.Marshal makes them.
func appendProto(b []byte, req proto.Message) ([]byte, error) {
	return proto.MarshalOptions{}.MarshalAppend(b, req)
}

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}

// marshal gives req's gRPC message: the prefix (not compressed, the length) and the
// proto bytes, appended by appendTo.
func marshal(req proto.Message, appendTo func([]byte, proto.Message) ([]byte, error)) (*[]byte, error) {
	b := bufs.Get().(*[]byte)
	out, err := appendTo(append((*b)[:0], 0, 0, 0, 0, 0), req)
	if err != nil {
		putBuf(b)
		return nil, newError(codes.Internal, "grpclite: marshalling the request", err)
	}
	binary.BigEndian.PutUint32(out[1:prefixLen], uint32(len(out)-prefixLen))
	*b = out
	return b, nil
}
