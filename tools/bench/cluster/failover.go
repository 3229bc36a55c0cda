package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sipreg.dev/tools/bench"
	"sipreg.dev/tools/bench/fakes"
)

// failover reads who owns what (every page of ListRegistrations through the first
// replica, and each replica's /metrics), SIGKILLs the replica owning the most trunks,
// waits until each of its trunks is REGISTERed again, and reads where they went. It
// fills res's ownership and failover fields.
func failover(ctx context.Context, cfg Config, res *Result, reps []*replica, req *fakes.OKRequester,
	progress func(format string, args ...any)) error {
	// Phase 5: who owns what, from every page of ListRegistrations through the first
	// replica (its mirror holds every trunk's record with its owner), and each
	// replica's cluster series from /metrics.
	progress("reading the owners from ListRegistrations through %s, and every replica's /metrics", reps[0].id)
	res.MetricsBefore = scrapeAll(ctx, reps)
	users := trunkUsers(cfg.Trunks)
	listStart := time.Now()
	regs, err := listAll(ctx, reps[0].control)
	if err != nil {
		return fmt.Errorf("ListRegistrations on replica %s (%s): %w", reps[0].id, reps[0].control, err)
	}
	res.ListTime, res.ListedFrom, res.Listed = time.Since(listStart), reps[0].id, len(regs)
	before := readListing(regs, users)
	res.Owned, res.ListAgree = before.owned, before.agree
	byOwner := map[string][]string{}
	for ref, o := range before.owners {
		byOwner[o] = append(byOwner[o], ref)
	}
	victim := mostOwned(res.Owned)
	var killed *replica
	for _, rp := range reps {
		if rp.id == victim {
			killed = rp
		}
	}
	if killed == nil {
		return fmt.Errorf("ListRegistrations through %s names no replica as an owner (owners %v)", reps[0].id, res.Owned)
	}

	// Phase 6: SIGKILL the victim; wait until each of its trunks is REGISTERed again.
	res.Victim, res.Moved = victim, len(byOwner[victim])
	var watchUsers []string
	for _, ref := range byOwner[victim] {
		u := users[ref]
		if _, ok := req.LastOf(u); u == "" || !ok {
			res.Unmatched++
			continue
		}
		watchUsers = append(watchUsers, u)
	}
	var survivors []*replica
	for _, rp := range reps {
		if rp != killed {
			survivors = append(survivors, rp)
		}
	}
	survivorExits := watchExits(survivors)
	progress("SIGKILL %s (owns %d trunks); waiting up to %s for its trunks to be REGISTERed again", victim, res.Moved, cfg.FailoverTimeout)
	callsBefore := req.Calls()
	killedAt := time.Now()
	refreshed := req.WatchFrom(watchUsers, killedAt)
	killed.killed = true
	killed.reg.Kill()
	werr := survivorExits.wait(ctx, refreshed, cfg.FailoverTimeout-time.Since(killedAt), "the killed replica's trunks")
	if werr != nil && !errors.Is(werr, bench.ErrTimeout) {
		return werr
	}
	res.FailoverRegisters = req.Calls() - callsBefore
	refreshedRegs, last := req.Watched()
	res.FailoverMeasured = true
	res.FailoverComplete = werr == nil && res.Unmatched == 0
	res.Refreshed = len(refreshedRegs)
	if werr == nil {
		res.FailoverTime = last.Sub(killedAt)
	}
	firstAt := time.Time{}
	for _, e := range refreshedRegs {
		if firstAt.IsZero() || e.After.At.Before(firstAt) {
			firstAt = e.After.At
		}
		if b := e.Before; b != nil && b.CSeq >= 0 && e.After.CallID == b.CallID && e.After.CSeq > b.CSeq {
			res.Continued++
		}
	}
	if !firstAt.IsZero() {
		res.FailoverFirst = firstAt.Sub(killedAt)
	}
	// Where the trunks went: the survivors' takeovers, and every page of
	// ListRegistrations through the first survivor. A new owner's record reaches the
	// survivor's mirror a moment after its REGISTER was answered, so the listing is
	// read again, up to bench.SettleMax, until no moved trunk names the killed replica.
	res.MetricsAfter = scrapeAll(ctx, reps)
	res.MovedFrom = survivors[0].id
	listedAt := time.Now()
	for {
		if regs, err = listAll(ctx, survivors[0].control); err != nil {
			return fmt.Errorf("ListRegistrations on replica %s (%s) after the failover: %w", survivors[0].id, survivors[0].control, err)
		}
		after := readListing(regs, users).owners
		res.MovedTo = map[string]int{}
		for _, ref := range byOwner[victim] {
			res.MovedTo[after[ref]]++
		}
		res.MovedListedIn = time.Since(listedAt)
		if res.MovedTo[victim] == 0 || res.MovedListedIn >= bench.SettleMax {
			break
		}
		if err := survivorExits.sleepUntil(ctx, time.Now().Add(10*bench.SettlePoll)); err != nil {
			return err
		}
	}
	if werr == nil {
		progress("every trunk of %s REGISTERed again %.2f s after the kill; stopping the replicas", victim, res.FailoverTime.Seconds())
	} else {
		progress("%d of %d trunks of %s REGISTERed again within %s; stopping the replicas", res.Refreshed, res.Moved, victim, cfg.FailoverTimeout)
	}
	return nil
}
