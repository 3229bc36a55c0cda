package grpclite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// read reads frames until the connection ends, then ends every call left on it.
func (cn *conn) read() {
	defer cn.c.forget(cn)
	for {
		f, err := cn.fr.ReadFrame()
		var b *block
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			b, err = cn.hd.read(hf)
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) && se.StreamID != 0 {
				// One stream's frame was malformed (its headers): that call ends, the
				// connection goes on.
				cn.endStream(se.StreamID, newError(codes.Internal, "grpclite: malformed answer", err), se.Code)
				continue
			}
			cn.close(newError(codes.Unavailable, "grpclite: connection lost", err))
			return
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			cn.onHeaders(b)
		case *http2.DataFrame:
			cn.onData(f)
		case *http2.RSTStreamFrame:
			cn.onReset(f)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				cn.mu.Lock()
				cn.settings(f)
				cn.mu.Unlock()
				cn.write((*http2.Framer).WriteSettingsAck)
			}
		case *http2.WindowUpdateFrame:
			cn.onWindowUpdate(f)
		case *http2.PingFrame:
			data := f.Data
			if f.IsAck() {
				cn.onPingAck(data)
			} else {
				cn.write(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
			}
		case *http2.GoAwayFrame:
			cn.onGoAway(f)
		case *http2.PushPromiseFrame:
			cn.close(newError(codes.Internal, "grpclite: the server pushed a stream (push is disabled)", nil))
			return
		}
	}
}

// settings applies the server's SETTINGS (mu held, or before the reader starts).
func (cn *conn) settings(f *http2.SettingsFrame) {
	_ = f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cn.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			// The difference applies to every open stream (RFC 9113, 6.9.2).
			delta := int64(s.Val) - cn.initWindow
			cn.initWindow = int64(s.Val)
			for _, st := range cn.streams {
				st.sendWindow += delta
			}
		case http2.SettingMaxFrameSize:
			cn.maxFrame = int(s.Val)
		}
		return nil
	})
	cn.signalLocked()
}

// onHeaders reads a call's response headers, or its trailers.
func (cn *conn) onHeaders(b *block) {
	cn.mu.Lock()
	s := cn.streams[b.streamID]
	if s == nil {
		cn.mu.Unlock() // a call that ended already
		return
	}
	first := !s.gotHeaders
	s.gotHeaders = true
	var err *callError
	switch {
	case first && !b.ended:
		err = responseHeaders(b)
		if err == nil {
			cn.mu.Unlock()
			return
		}
	case !b.ended:
		err = newError(codes.Internal, "grpclite: headers after the answer's headers without the end of the stream", nil)
	default:
		// Trailers, or a trailers-only answer.
		if first {
			err = responseHeaders(b)
		}
		if err == nil {
			err = trailerStatus(b)
		}
	}
	ended := cn.finishLocked(s, err)
	cn.mu.Unlock()
	if ended && !b.ended {
		id := b.streamID
		cn.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
}

// responseHeaders checks an answer's first headers: HTTP 200 and a gRPC content type,
// unless a grpc-status says what happened.
func responseHeaders(b *block) *callError {
	if b.status != "200" {
		if b.ended && b.hasGRPCStatus {
			return nil // trailers-only: its status tells
		}
		code, _ := strconv.Atoi(b.status)
		return newError(httpCode(code), fmt.Sprintf("grpclite: unexpected HTTP status code received from server: %q", b.status), nil)
	}
	ct := b.contentType
	if ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") && !strings.HasPrefix(ct, "application/grpc;") {
		return newError(codes.Internal, fmt.Sprintf("grpclite: unexpected content-type %q", ct), nil)
	}
	return nil
}

// trailerStatus is the status in an answer's trailers: nil when OK.
func trailerStatus(b *block) *callError {
	code, err := strconv.ParseUint(b.grpcStatus, 10, 32)
	if err != nil {
		return newError(codes.Internal, fmt.Sprintf("grpclite: malformed grpc-status %q in the trailers", b.grpcStatus), nil)
	}
	if code == 0 {
		return nil
	}
	return &callError{st: status.New(codes.Code(code), decodeMessage(b.grpcMessage))}
}

// onData adds a DATA frame's bytes to its call's answer, and gives the flow-control
// windows back as the bytes are taken.
func (cn *conn) onData(f *http2.DataFrame) {
	n := int64(f.Length) // padding included: it counts against the windows
	var connInc, streamInc int64
	var err *callError
	cn.mu.Lock()
	cn.recvUnacked += n
	if cn.recvUnacked >= connUpdate {
		connInc, cn.recvUnacked = cn.recvUnacked, 0
	}
	s := cn.streams[f.StreamID]
	switch {
	case s == nil:
	case !s.gotHeaders:
		err = newError(codes.Internal, "grpclite: DATA before the answer's headers", nil)
	case len(s.buf)+len(f.Data()) > prefixLen+cn.c.o.MaxRecvSize:
		err = newError(codes.ResourceExhausted, fmt.Sprintf("grpclite: received message larger than max (%d)", cn.c.o.MaxRecvSize), nil)
	default:
		s.buf = append(s.buf, f.Data()...)
		if f.StreamEnded() {
			err = newError(codes.Internal, "grpclite: the server closed the stream without sending trailers", nil)
			break
		}
		s.recvUnacked += n
		if s.recvUnacked >= streamUpdate {
			streamInc, s.recvUnacked = s.recvUnacked, 0
		}
	}
	reset := s != nil && err != nil && cn.finishLocked(s, err) && !f.StreamEnded()
	cn.mu.Unlock()
	id := f.StreamID
	if connInc > 0 || streamInc > 0 || reset {
		cn.write(func(fr *http2.Framer) error {
			var err error
			if connInc > 0 {
				err = fr.WriteWindowUpdate(0, uint32(connInc))
			}
			if streamInc > 0 && err == nil {
				err = fr.WriteWindowUpdate(id, uint32(streamInc))
			}
			if reset && err == nil {
				err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			return err
		})
	}
}

// onReset ends the call of a stream the server reset. A refused stream was not
// processed: its call is sent again.
func (cn *conn) onReset(f *http2.RSTStreamFrame) {
	cn.mu.Lock()
	if s := cn.streams[f.StreamID]; s != nil {
		cn.finishLocked(s, resetError(f.ErrCode, time.Since(s.start) >= cn.timeout))
	}
	cn.mu.Unlock()
}

// resetError is the status of a call whose stream the server reset with code; late:
// the call's timeout has passed.
func resetError(code http2.ErrCode, late bool) *callError {
	switch code {
	case http2.ErrCodeRefusedStream:
		return unprocessed(newError(codes.Unavailable, "grpclite: the server refused the stream", nil))
	case http2.ErrCodeCancel:
		// A server resets the stream at the deadline the call's grpc-timeout gave it
		// (grpc-go's server does): that is the call's deadline, as grpc-go reads it.
		if late {
			return errDeadline
		}
		return newError(codes.Canceled, "grpclite: the server canceled the stream", nil)
	default:
		// grpc-go's codes (its http2ErrConvTab; Unknown for a code it does not know).
		c := codes.Internal
		switch {
		case code == http2.ErrCodeEnhanceYourCalm || code == http2.ErrCodeFlowControl:
			c = codes.ResourceExhausted
		case code == http2.ErrCodeInadequateSecurity:
			c = codes.PermissionDenied
		case code > http2.ErrCodeHTTP11Required:
			c = codes.Unknown
		}
		return newError(c, "grpclite: stream terminated by RST_STREAM with error code: "+code.String(), nil)
	}
}

// endStream ends the call of stream id with err and resets the stream with code.
func (cn *conn) endStream(id uint32, err *callError, code http2.ErrCode) {
	cn.mu.Lock()
	ended := false
	if s := cn.streams[id]; s != nil {
		ended = cn.finishLocked(s, err)
	}
	cn.mu.Unlock()
	if ended {
		cn.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
	}
}

// maxWindow is the largest flow-control window (RFC 9113, 6.9.1).
const maxWindow = 1<<31 - 1

func (cn *conn) onWindowUpdate(f *http2.WindowUpdateFrame) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		cn.sendWindow = min(cn.sendWindow+inc, maxWindow)
	} else if s := cn.streams[f.StreamID]; s != nil {
		s.sendWindow = min(s.sendWindow+inc, maxWindow)
	}
	cn.signalLocked()
}

// onGoAway stops new calls on the connection; the calls the server will not process
// (above its last stream ID) are sent again on a new connection; the others end as
// they would.
func (cn *conn) onGoAway(f *http2.GoAwayFrame) {
	cn.draining.Store(true)
	cn.mu.Lock()
	for id, s := range cn.streams {
		if id > f.LastStreamID {
			cn.finishLocked(s, unprocessed(newError(codes.Unavailable, "grpclite: the server is going away ("+f.ErrCode.String()+")", nil)))
		}
	}
	if cn.active == 0 {
		_ = cn.nc.Close()
	}
	cn.mu.Unlock()
}
