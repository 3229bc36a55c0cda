package grpclite

import (
	"context"
	"runtime"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// endWrite ends a write begun with wmu.Lock and asks for a flush. A write error ends
// the connection.
func (cn *conn) endWrite(err error) error {
	if !cn.flushing && err == nil {
		cn.flushing = true
		cn.flush <- struct{}{}
	}
	cn.wmu.Unlock()
	if err != nil {
		cn.close(newError(codes.Unavailable, "grpclite: writing to the connection", err))
	}
	return err
}

// flusher writes what the writers left in bw, once per request, until the connection
// ends.
func (cn *conn) flusher() {
	for {
		select {
		case <-cn.flush:
		case <-cn.done:
			return
		}
		// Let the goroutines that are ready to run write their frames first: under load
		// one write then carries many calls (a write costs about what a call does).
		runtime.Gosched()
		cn.wmu.Lock()
		cn.flushing = false
		err := cn.bw.Flush()
		cn.wmu.Unlock()
		if err != nil {
			cn.close(newError(codes.Unavailable, "grpclite: writing to the connection", err))
			return
		}
	}
}

// write writes one control frame.
func (cn *conn) write(frame func(fr *http2.Framer) error) {
	cn.wmu.Lock()
	_ = cn.endWrite(frame(cn.fr))
}

// sendData writes msg in as many DATA frames as flow control and the frame size ask,
// waiting for WINDOW_UPDATEs in between (never holding wmu while waiting).
func (cn *conn) sendData(ctx context.Context, s *stream, msg []byte) error {
	for off := 0; off < len(msg); {
		cn.mu.Lock()
		for !s.finished && (cn.sendWindow <= 0 || s.sendWindow <= 0) {
			if err := cn.waitLocked(ctx, s); err != nil {
				cn.mu.Unlock()
				cn.cancel(s, err)
				return nil // s holds err
			}
		}
		if s.finished {
			cn.mu.Unlock()
			return nil
		}
		n := min(int64(len(msg)-off), cn.sendWindow, s.sendWindow, int64(cn.maxFrame))
		cn.sendWindow -= n
		s.sendWindow -= n
		cn.mu.Unlock()
		cn.wmu.Lock()
		end := off+int(n) == len(msg)
		if cn.endWrite(cn.fr.WriteData(s.id, end, msg[off:off+int(n)])) != nil {
			return nil
		}
		off += int(n)
	}
	return nil
}
