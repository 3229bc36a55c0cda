package upstream

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// The request's bytes.
//
// gRPC's proto codec marshals a message of up to 1 KiB (a REGISTER is a few hundred
// bytes) into a new slice, boxed as a mem.SliceBuffer: two allocations a call, and the
// bytes, for memory the transport is done with as soon as the frame is written. gRPC
// pools only buffers above mem.IsBelowBufferPoolingThreshold (by capacity), so
// marshalRequest marshals into a pooled buffer of reqBufSize bytes, above it: gRPC gives
// the buffer back (Free) once the frame is written and no retry can need it. The bytes
// are the proto codec's own: the same Size, then MarshalAppend with the cached size.

// reqBufSize is the capacity of a pooled request buffer: above gRPC's pooling threshold
// (1 KiB), and room for any REGISTER the registry builds (a digest answer included).
const reqBufSize = 2 << 10

// reqBufs holds the request buffers; each is reqBufSize bytes, never cleared (only the
// bytes marshalled into it are read).
var reqBufs = &fixedPool{size: reqBufSize}

// fixedPool is a mem.BufferPool of buffers of one size.
type fixedPool struct {
	size int
	pool sync.Pool
}

// Get returns a buffer of length n, at most p.size.
func (p *fixedPool) Get(n int) *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, p.size)
	return &b
}

// Put keeps a buffer of p.size bytes; any other is left to the collector.
func (p *fixedPool) Put(b *[]byte) {
	if cap(*b) == p.size {
		p.pool.Put(b)
	}
}

// marshalRequest marshals v as gRPC's proto codec does, into a pooled buffer when its
// bytes fit one, else with the codec itself.
func marshalRequest(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return encoding.GetCodecV2("proto").Marshal(v) // its error
	}
	size := proto.Size(m)
	if size > reqBufSize || mem.IsBelowBufferPoolingThreshold(reqBufSize) {
		return encoding.GetCodecV2("proto").Marshal(v)
	}
	buf := reqBufs.Get(0)
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(*buf, m)
	if err != nil || cap(out) != reqBufSize {
		// An error, or bytes that did not fit after all (the message changed since
		// Size): nothing of the buffer is handed out.
		reqBufs.Put(buf)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(out)}, nil
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, reqBufs)}, nil
}
