package ownership

import (
	"context"
	"time"
)

// Run renews this replica's leases every third of the lease TTL, tells eng the ones
// lost, and asks it to apply the desired set again when the members change, leases
// were lost, or claims are left.
//
// After the members change, trunks that could not be claimed yet (the lease of a
// replica that died has not run out, or a replica handing over has not released) are
// tried again every RetryInterval, or as soon as the leases that kept them have run
// out when that is sooner (retryIn), not only at the next renewal, for a lease TTL and
// a renewal period: the takeover follows the lease's expiry closely.
func (l *Leases) Run(ctx context.Context, eng Engine, span func(ctx context.Context, name string) (context.Context, func(RoundInfo))) {
	ttl := l.c.LeaseTTL()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	retry := make(chan struct{}, 1)
	var changedAt time.Time
	for {
		info := RoundInfo{Renew: true}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.c.MembersChanged():
			info.MembersChanged, changedAt = true, l.clock()
		case <-retry:
			info.Renew = false
		}
		rctx, end := span(ctx, "registry.lease.round")
		var lost []string
		if info.Renew {
			if lost, info.RenewErr = l.c.Renew(rctx); info.RenewErr != nil {
				l.log.Debug("lease renewal failed", "err", info.RenewErr)
			}
			if len(lost) > 0 {
				eng.LeasesLost(rctx, lost)
			}
		}
		info.Lost = len(lost)
		l.mu.Lock()
		unclaimed := l.unclaimed
		l.mu.Unlock()
		info.Reassign = (info.MembersChanged || unclaimed > 0 || len(lost) > 0) && l.reassigning.CompareAndSwap(false, true)
		end(info)
		if !info.Reassign {
			continue
		}
		soon := l.clock().Sub(changedAt) < ttl+ttl/3
		// Claims may take a while at scale: renewals must go on meanwhile.
		actx, aend := span(rctx, "registry.reassign")
		go func() {
			defer l.reassigning.Store(false)
			defer aend(RoundInfo{})
			eng.Reassign(actx)
			l.mu.Lock()
			left := l.unclaimed
			l.mu.Unlock()
			if left > 0 && soon {
				time.AfterFunc(l.retryIn(ttl), func() {
					select {
					case retry <- struct{}{}:
					default:
					}
				})
			}
		}()
	}
}

// RoundInfo describes one round of Run, for its trace span.
type RoundInfo struct {
	Renew, MembersChanged, Reassign bool
	Lost                            int
	RenewErr                        error
}

// RetryInterval is how often trunks not claimed yet are tried again after the members
// change: a twentieth of the lease TTL (500 ms at the default 10 s).
func RetryInterval(ttl time.Duration) time.Duration { return ttl / 20 }

// retryMargin is how long after a lease's expiry (as the claim read it) the claim is
// tried again, and the least wait between two tries.
const retryMargin = 5 * time.Millisecond

// retryIn is how long Run waits before it tries the unclaimed trunks again:
// RetryInterval, or until retryMargin after the last lease that kept one runs out,
// when that is sooner.
func (l *Leases) retryIn(ttl time.Duration) time.Duration {
	l.mu.Lock()
	freeAt := l.freeAt
	l.mu.Unlock()
	wait := RetryInterval(ttl)
	if !freeAt.IsZero() {
		wait = min(wait, max(freeAt.Sub(l.clock()), 0)+retryMargin)
	}
	return wait
}
