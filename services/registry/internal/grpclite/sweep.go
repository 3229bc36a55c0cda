package grpclite

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// armSweepLocked makes sure a sweep is coming.
func (cn *conn) armSweepLocked() {
	if !cn.sweepArmed && cn.err == nil {
		cn.sweepArmed = true
		cn.sweep.Reset(cn.sweepEvery())
	}
}

// sweepExpired ends the calls past their timeout and resets their streams, and wakes
// the waiters so that they check theirs.
//
// A call past its deadline may be the sign of a dead peer whose connection was never
// closed (a node gone without a FIN: writes then wait on TCP retransmissions for many
// minutes, and every call on the connection would time out in turn). So the first
// expiry sends a PING (at most one every pingEvery once one was acked); without its ack
// within pingTimeout the connection is taken for dead and closed, and the next call
// dials again.
func (cn *conn) sweepExpired() {
	now := time.Now()
	var expired []uint32
	var ping bool
	var dead *callError
	cn.mu.Lock()
	cn.sweepArmed = false
	for id, s := range cn.streams {
		if now.Sub(s.start) >= cn.timeout && cn.finishLocked(s, errDeadline) {
			expired = append(expired, id)
		}
	}
	switch {
	case !cn.pingAt.IsZero() && now.Sub(cn.pingAt) >= cn.pingTimeout():
		dead = newError(codes.Unavailable, fmt.Sprintf("grpclite: no answer to a PING within %s after a call's deadline: the connection is taken for dead", cn.pingTimeout()), nil)
	case len(expired) > 0 && cn.pingAt.IsZero() && (cn.ackedAt.IsZero() || now.Sub(cn.ackedAt) >= pingEvery):
		cn.pingAt, ping = now, true
		binary.BigEndian.PutUint64(cn.pingData[:], uint64(now.UnixNano()))
	}
	if cn.waiters > 0 {
		cn.cond.Broadcast()
	}
	if len(cn.streams) > 0 || cn.waiters > 0 || !cn.pingAt.IsZero() {
		cn.armSweepLocked()
	}
	data := cn.pingData
	cn.mu.Unlock()
	if dead != nil {
		cn.close(dead)
		return
	}
	for _, id := range expired {
		cn.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
	if ping {
		cn.write(func(fr *http2.Framer) error { return fr.WritePing(false, data) })
	}
}

// pingEvery spaces the liveness PINGs of a peer that acks them: servers count frequent
// PINGs as abuse (grpc-go's closes the connection with too_many_pings after a few
// sooner than 5 minutes apart while it sends nothing else).
const pingEvery = time.Minute

// pingTimeout is how long the liveness PING's ack may take: a quarter of the call
// timeout, at least a second (10 s at the default requestTimeout of 40 s).
func (cn *conn) pingTimeout() time.Duration { return max(cn.timeout/4, time.Second) }

// onPingAck clears the liveness PING its ack answers.
func (cn *conn) onPingAck(data [8]byte) {
	cn.mu.Lock()
	if !cn.pingAt.IsZero() && data == cn.pingData {
		cn.pingAt, cn.ackedAt = time.Time{}, time.Now()
	}
	cn.mu.Unlock()
}
