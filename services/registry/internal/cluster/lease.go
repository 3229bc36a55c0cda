package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The kinds of claim the claim script reports for a trunk, next to its fence.
const (
	claimNone     = 0 // held by another replica: not got
	claimNew      = 1 // was free, last claimed by nobody or by us: fence incremented
	claimKept     = 2 // already ours: TTL renewed, fence unchanged
	claimTakeover = 3 // was free, last claimed by another replica: fence incremented
)

// claimScript takes free leases or keeps our own.
// KEYS: lease and fence key of each trunk, in turn. ARGV: replica ID, TTL in ms.
// Returns, per trunk, its fence (0 when not got) and the kind of claim; for a lease
// another replica holds, minus the milliseconds it has left (0 when it has no expiry).
var claimScript = redis.NewScript(`
local id, ttl = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS, 2 do
  local v = redis.call('GET', KEYS[i])
  if not v then
    local n = redis.call('HINCRBY', KEYS[i+1], 'n', 1)
    local prev = redis.call('HGET', KEYS[i+1], 'owner')
    redis.call('HSET', KEYS[i+1], 'owner', id)
    redis.call('SET', KEYS[i], id .. ':' .. n, 'PX', ttl)
    out[#out+1] = n
    if prev and prev ~= id then out[#out+1] = 3 else out[#out+1] = 1 end
  else
    local owner, n = string.match(v, '^(.*):(%d+)$')
    if owner == id then
      redis.call('PEXPIRE', KEYS[i], ttl)
      out[#out+1] = tonumber(n)
      out[#out+1] = 2
    else
      local left = redis.call('PTTL', KEYS[i])
      out[#out+1] = 0
      if left > 0 then out[#out+1] = -left else out[#out+1] = 0 end
    end
  end
end
return out
`)

// renewScript extends the leases still ours.
// KEYS: lease keys. ARGV: TTL in ms, then the value we hold for each key.
// Returns a string with '1' for each lease renewed and '0' for each lost.
var renewScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i+1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = '1'
  else
    out[i] = '0'
  end
end
return table.concat(out)
`)

// releaseScript deletes the leases that are ours, whatever their fence.
// KEYS: lease keys. ARGV: replica ID. Returns how many it deleted.
var releaseScript = redis.NewScript(`
local n = 0
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and string.match(v, '^(.*):%d+$') == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`)

// Claim takes the leases of refs that are free (none in Redis, or expired) and
// keeps (renews) those this replica already holds, in one Lua call per 1000
// refs and 20 calls per round trip. It returns the fence of every lease held
// after the call; a ref held by another replica is left out, and dropped from
// Held if this replica thought it held it. The fence of a lease that was free
// is one more than that trunk's last. Leases got are Valid for LeaseTTL minus
// the safety margin from the start of the call. On an error, got holds what
// the round trips before it claimed (they are held); an empty ref is an error
// before any round trip.
func (c *Cluster) Claim(ctx context.Context, refs []string) (got map[string]int64, err error) {
	got, _, err = c.ClaimNext(ctx, refs)
	return got, err
}

// ClaimNext is Claim that also says when to try again for the refs another replica
// holds: freeIn is the most time one of their leases had left when Redis ran the
// claim (0 when there is none), so that a replica waiting to take over a dead one's
// trunks can ask again once, right when the last of its leases runs out (a replica
// renews its leases in a few round trips: they run out within milliseconds of each
// other, and a try as each runs out would apply the desired set again for each).
func (c *Cluster) ClaimNext(ctx context.Context, refs []string) (got map[string]int64, freeIn time.Duration, err error) {
	refs = unique(refs)
	if slices.Contains(refs, "") {
		return nil, 0, errors.New("cluster claim: empty trunk ref")
	}
	got = make(map[string]int64, len(refs))
	if len(refs) == 0 {
		return got, 0, nil
	}
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	ctx, span := c.startSpan(ctx, "cluster.claim")
	takeovers := 0
	defer func() {
		endSpan(span, err, attrRequested.Int(len(refs)), attrClaimed.Int(len(got)), attrTakeovers.Int(takeovers))
	}()
	start := c.now()
	chunks := slices.Collect(slices.Chunk(refs, leaseChunk))
	batches := make([]scriptBatch, len(chunks))
	ttl := c.ttl.Milliseconds()
	for b, chunk := range chunks {
		keys := make([]string, 0, 2*len(chunk))
		for _, ref := range chunk {
			keys = append(keys, c.leaseKey(ref), c.fenceKey(ref))
		}
		batches[b] = scriptBatch{keys: keys, args: []any{c.id, ttl}}
	}
	err = c.evalBatches(ctx, claimScript, batches, leaseScriptsPerRT, func(b int, reply any) error {
		chunk := chunks[b]
		vals, ok := reply.([]any)
		if !ok || len(vals) != 2*len(chunk) {
			return fmt.Errorf("claim script: unexpected reply %T of %d", reply, len(vals))
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, ref := range chunk {
			fence, _ := vals[2*i].(int64)
			kind, _ := vals[2*i+1].(int64)
			if fence <= 0 {
				freeIn = max(freeIn, -time.Duration(kind)*time.Millisecond)
				if _, held := c.held[ref]; held {
					delete(c.held, ref)
					c.lost.Add(1)
				}
				continue
			}
			got[ref] = fence
			c.holdLocked(ref, fence, start)
			if kind == claimTakeover {
				c.takeovers.Add(1)
				takeovers++
			}
		}
		return nil
	})
	if err != nil {
		return got, freeIn, fmt.Errorf("cluster claim: %w", err)
	}
	return got, freeIn, nil
}

// holdLocked records that ref is held with fence, confirmed by a round that
// started at start. c.mu is held.
func (c *Cluster) holdLocked(ref string, fence int64, start time.Time) {
	until := start.Add(c.ttl - c.margin)
	if l, ok := c.held[ref]; ok && l.fence == fence && l.validUntil.After(until) {
		return
	}
	c.held[ref] = lease{fence: fence, validUntil: until}
	if until.After(c.validMax) {
		c.validMax = until
	}
}

// Renew renews every lease this replica holds (PEXPIRE when Redis still holds
// this replica's value with the same fence), in one Lua call per 1000 leases and
// 20 calls per round trip: at 100,000 leases five round trips. A renewed lease
// is Valid for LeaseTTL minus the safety margin from the start of the call. It
// returns the refs lost (expired in Redis, or taken by another replica), which
// it drops from Held. When a round trip fails, the leases it carried keep their
// old validity (they run out by the local clock unless a later Renew succeeds)
// and Renew returns the error with what it found lost before it.
func (c *Cluster) Renew(ctx context.Context) (lost []string, err error) {
	c.mu.Lock()
	held := maps.Clone(c.held)
	c.mu.Unlock()
	if len(held) == 0 {
		c.renewals.Add(1)
		return nil, nil
	}
	ctx, span := c.startSpan(ctx, "cluster.renew")
	defer func() {
		endSpan(span, err, attrHeld.Int(len(held)), attrLost.Int(len(lost)))
	}()
	refs := slices.Sorted(maps.Keys(held))
	start := c.now()
	chunks := slices.Collect(slices.Chunk(refs, leaseChunk))
	batches := make([]scriptBatch, len(chunks))
	for b, chunk := range chunks {
		keys := make([]string, len(chunk))
		args := make([]any, 1, 1+len(chunk))
		args[0] = c.ttl.Milliseconds()
		for i, ref := range chunk {
			keys[i] = c.leaseKey(ref)
			args = append(args, c.leaseValue(held[ref].fence))
		}
		batches[b] = scriptBatch{keys: keys, args: args}
	}
	err = c.evalBatches(ctx, renewScript, batches, leaseScriptsPerRT, func(b int, reply any) error {
		chunk := chunks[b]
		flags, ok := reply.(string)
		if !ok || len(flags) != len(chunk) {
			return fmt.Errorf("renew script: unexpected reply %T", reply)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, ref := range chunk {
			fence := held[ref].fence
			if l, ok := c.held[ref]; !ok || l.fence != fence {
				// Released or re-claimed meanwhile: not this round's business.
				continue
			}
			if flags[i] == '1' {
				c.holdLocked(ref, fence, start)
				continue
			}
			delete(c.held, ref)
			c.lost.Add(1)
			lost = append(lost, ref)
		}
		return nil
	})
	if err != nil {
		c.renewFailures.Add(1)
		return lost, fmt.Errorf("cluster renew: %w", err)
	}
	c.renewals.Add(1)
	return lost, nil
}

// Release gives up the leases of refs (hand-over, shutdown): they stop being
// Held and Valid at once, and each lease still this replica's in Redis is
// deleted, so another replica can claim it without waiting for it to expire.
// Refs not held are ignored in Redis (a lease of another replica is never
// deleted). On an error the leases not deleted expire on their own.
func (c *Cluster) Release(ctx context.Context, refs []string) error {
	refs = unique(refs)
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	c.mu.Lock()
	for _, ref := range refs {
		delete(c.held, ref)
	}
	c.mu.Unlock()
	var batches []scriptBatch
	for chunk := range slices.Chunk(refs, leaseChunk) {
		keys := make([]string, len(chunk))
		for i, ref := range chunk {
			keys[i] = c.leaseKey(ref)
		}
		batches = append(batches, scriptBatch{keys: keys, args: []any{c.id}})
	}
	err := c.evalBatches(ctx, releaseScript, batches, leaseScriptsPerRT, func(_ int, reply any) error {
		n, ok := reply.(int64)
		if !ok {
			return fmt.Errorf("release script: unexpected reply %T", reply)
		}
		c.handOvers.Add(n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster release: %w", err)
	}
	return nil
}

// Held returns the leases this replica holds (claimed and not lost, released or
// refused) with their fences. A lease stays held while Redis cannot be asked,
// though it stops being Valid when its window ends; the next Renew tells.
func (c *Cluster) Held() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.held))
	for ref, l := range c.held {
		out[ref] = l.fence
	}
	return out
}

// Valid reports whether this replica may still act for ref, and with which
// fence: it holds the lease, and by its own clock now is before the start of
// the last successful Claim or Renew that confirmed it plus LeaseTTL minus the
// safety margin (10% of LeaseTTL, at least 500ms, at most half). Redis keeps
// the lease for LeaseTTL from a moment after that start, so a replica that
// stops when Valid turns false stops before anyone else can take the trunk,
// even when Redis is unreachable or the replica was paused. It returns 0, false
// when not valid.
func (c *Cluster) Valid(ref string) (fence int64, ok bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	l, held := c.held[ref]
	if !held || !now.Before(l.validUntil) {
		return 0, false
	}
	return l.fence, true
}

// unique returns refs without repeats, in first-seen order.
func unique(refs []string) []string {
	seen := make(map[string]struct{}, len(refs))
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if _, ok := seen[ref]; !ok {
			seen[ref] = struct{}{}
			out = append(out, ref)
		}
	}
	return out
}
