package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

// pruneAfter is how many LeaseTTLs a dead member stays in the members set
// (ignored, since its score is past) before a heartbeat removes it.
const pruneAfter = 3

// memberEntry is a member as stored in the members set.
type memberEntry struct {
	ID        string `json:"id"`
	Advertise string `json:"advertise,omitempty"`
}

// Run takes part in the membership until ctx ends: a heartbeat at once and
// then every LeaseTTL/3 adds this replica to the members set with an expiry of
// LeaseTTL, removes members dead for 3 LeaseTTL, and reads the live ones into
// the local view (Members). Between heartbeats, a member leaves the view the
// moment its expiry passes by the local clock, so a replica that died is seen
// gone LeaseTTL after its last heartbeat, not up to a heartbeat period later (a
// live member's expiry is always renewed by then). A failed heartbeat is logged
// and retried at the next tick; meanwhile the view keeps the last answer, less
// the members whose expiry passed (this replica included). When ctx ends, Run
// leaves: it removes this replica from the set, gives up the discovery lease
// if it holds it, empties the view, and returns nil. Trunk leases are left to
// the caller (Release). Run must not be called twice at the same time.
func (c *Cluster) Run(ctx context.Context) error {
	every := c.ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	expiry := time.NewTimer(every)
	defer expiry.Stop()
	c.heartbeat(ctx, every)
	for {
		expiry.Reset(c.untilExpiry(every))
		select {
		case <-ctx.Done():
			c.leave(ctx, every)
			return nil
		case <-tick.C:
			c.heartbeat(ctx, every)
		case <-expiry.C:
			c.refreshView(c.now(), nil, nil) // no new answer: only drops the expired
		}
	}
}

// untilExpiry is how long until the soonest expiry in the view passes, at most
// limit.
func (c *Cluster) untilExpiry(limit time.Duration) time.Duration {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	now, wait := c.now(), limit
	for _, exp := range c.entries {
		// A millisecond past it: the view keeps a member until its expiry passes.
		wait = min(wait, exp.Sub(now)+time.Millisecond)
	}
	return max(wait, time.Millisecond)
}

// heartbeat sends one heartbeat and refreshes the view; it takes at most limit.
func (c *Cluster) heartbeat(ctx context.Context, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	now := c.now()
	if c.client == nil {
		c.refreshView(now, nil, errNoClient)
		return
	}
	self, _ := json.Marshal(memberEntry{ID: c.id, Advertise: c.advertise})
	key := c.membersKey()
	nowMS := now.UnixMilli()
	var live *redis.ZSliceCmd
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(c.ttl).UnixMilli()), Member: string(self)})
		p.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(nowMS-pruneAfter*c.ttl.Milliseconds(), 10))
		// The set goes away on its own once every replica is gone.
		p.PExpire(ctx, key, 2*pruneAfter*c.ttl)
		// Every entry, the dead ones too: a member whose score passed (expired, or
		// a tombstone left by leave) is gone; one missing from the set altogether
		// (Redis lost it, e.g. restarted empty) stays alive by the expiry last seen.
		live = p.ZRangeWithScores(ctx, key, 0, -1)
		return nil
	})
	if err != nil {
		c.refreshView(now, nil, err)
		return
	}
	c.refreshView(now, live.Val(), nil)
}

// refreshView replaces the entries with the heartbeat's answer (or, when the
// heartbeat failed with err, keeps them), drops the expired ones, and publishes
// the live members.
func (c *Cluster) refreshView(now time.Time, answer []redis.Z, err error) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if err != nil {
		if c.client != nil {
			c.log.Warn("membership heartbeat failed", "err", err)
		}
	} else {
		entries := make(map[Member]time.Time, len(answer))
		for _, z := range answer {
			s, _ := z.Member.(string)
			var e memberEntry
			if json.Unmarshal([]byte(s), &e) != nil || e.ID == "" {
				c.log.Warn("membership: ignoring a malformed member", "member", s)
				continue
			}
			entries[Member(e)] = time.UnixMilli(int64(z.Score))
		}
		for m, exp := range c.entries {
			if _, ok := entries[m]; !ok {
				entries[m] = exp
			}
		}
		c.entries = entries
	}
	byID := make(map[string]Member)
	latest := make(map[string]time.Time)
	for m, exp := range c.entries {
		if !exp.After(now) {
			delete(c.entries, m)
			continue
		}
		// The same ID under two addresses (a restart): the later heartbeat wins.
		if exp.After(latest[m.ID]) {
			byID[m.ID], latest[m.ID] = m, exp
		}
	}
	members := make([]Member, 0, len(byID))
	for _, m := range byID {
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	c.publishView(members)
}

// publishView sets the view to members and signals MembersChanged when it differs.
func (c *Cluster) publishView(members []Member) {
	if slices.Equal(*c.view.Load(), members) {
		return
	}
	c.view.Store(&members)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// leave removes this replica from the members set and gives up the discovery
// lease, with a short deadline of its own since ctx is done.
func (c *Cluster) leave(ctx context.Context, limit time.Duration) {
	c.viewMu.Lock()
	c.entries = make(map[Member]time.Time)
	c.publishView([]Member{})
	c.viewMu.Unlock()
	if c.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(limit, time.Second))
	defer cancel()
	self, _ := json.Marshal(memberEntry{ID: c.id, Advertise: c.advertise})
	// A tombstone (score now), not a removal: the others see this replica gone at
	// once, and tell a departure from an entry Redis lost. Pruned after 3 TTLs.
	tomb := redis.Z{Score: float64(c.now().UnixMilli()), Member: string(self)}
	if err := c.client.ZAdd(ctx, c.membersKey(), tomb).Err(); err != nil {
		c.log.Warn("membership: leave failed", "err", err)
	}
	if err := c.ReleaseDiscovery(ctx); err != nil {
		c.log.Warn("membership: releasing the discovery lease failed", "err", err)
	}
}

// Members returns the live members (this replica included once its first
// heartbeat succeeded), sorted by ID. The slice is the caller's.
func (c *Cluster) Members() []Member { return slices.Clone(*c.view.Load()) }

// MembersChanged is signalled (without blocking; it holds at most one signal)
// whenever the set of live members changes. Read Members after it fires.
func (c *Cluster) MembersChanged() <-chan struct{} { return c.changed }

// Owner returns the live member that should own ref (Rendezvous over Members),
// or "" when no member is live.
func (c *Cluster) Owner(ref string) string { return Rendezvous(*c.view.Load(), ref) }

// Rendezvous returns the ID of the member of highest random weight for ref:
// the weight of a member is xxhash64(ID + "\x00" + ref), and on a tie the
// smaller ID wins. It returns "" for no members. Adding or removing a member
// moves only the refs that member wins or won.
func Rendezvous(members []Member, ref string) string {
	var (
		buf  [256]byte
		best string
		top  uint64
	)
	for _, m := range members {
		key := append(append(append(buf[:0], m.ID...), 0), ref...)
		w := xxhash.Sum64(key)
		if best == "" || w > top || (w == top && m.ID < best) {
			best, top = m.ID, w
		}
	}
	return best
}
