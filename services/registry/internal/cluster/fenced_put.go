package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// fencedPutScript writes each record whose lease holds the writer's value, and
// publishes the records it wrote on the changes channel (one message per call:
// the head, then the frame of each value written, its length in decimal, ':'
// and its bytes as stored; see putMark and FollowChanges). KEYS: record and
// lease key of each record, in turn. ARGV: the channel, the message's head,
// then per record the expected lease value, the record's value and its TTL in
// ms. Returns a string with '1' for each record written and '0' for each
// refused. It reads nothing of a value: values are binary (recordfmt.Encode).
// #v is the length of v in bytes, which Lua writes in decimal without a
// fraction (values are far below 2^53).
var fencedPutScript = redis.NewScript(`
local out, pub = {}, {ARGV[2]}
for i = 1, #KEYS / 2 do
  if redis.call('GET', KEYS[2*i]) == ARGV[3*i] then
    local v = ARGV[3*i+1]
    redis.call('SET', KEYS[2*i-1], v, 'PX', ARGV[3*i+2])
    out[i] = '1'
    pub[#pub+1] = #v .. ':'
    pub[#pub+1] = v
  else
    out[i] = '0'
  end
end
if #pub > 1 then
  redis.call('PUBLISH', ARGV[1], table.concat(pub))
end
return table.concat(out)
`)

// CheckStorePrefix reports whether FencedPutMany can write records under
// storePrefix: always on a single server or with Sentinel; on a Redis Cluster
// only when storePrefix holds a hash tag of the lease keys' slot (see the
// package documentation). The error wraps ErrCrossSlot. On a Redis Cluster
// whose store prefix has another hash tag than the lease keys, the server is
// asked for both slots (CLUSTER KEYSLOT, once per key, within 5 seconds): the
// check then fails, without ErrCrossSlot, when the server cannot answer.
func (c *Cluster) CheckStorePrefix(storePrefix string) error {
	return c.checkStorePrefix(context.Background(), storePrefix)
}

// checkStorePrefix is CheckStorePrefix, asking the server within ctx when it
// must ask. Equal hash tags mean one slot, by Redis Cluster's definition, so
// the usual configuration (one tag for the store and the cluster's keys) and
// a store prefix without tag are decided without asking.
func (c *Cluster) checkStorePrefix(ctx context.Context, storePrefix string) error {
	cc, ok := c.client.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	leaseKey := c.leaseKey("")
	tag, ok := hashTag(storePrefix)
	if !ok {
		return fmt.Errorf("store prefix %q has no hash tag (leases under %q): %w", storePrefix, c.leaseBase, ErrCrossSlot)
	}
	if leaseTag, ok := hashTag(leaseKey); ok && leaseTag == tag {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, slotTimeout)
	defer cancel()
	leaseSlot, err := c.keySlot(ctx, cc, leaseKey)
	if err != nil {
		return err
	}
	slot, err := c.keySlot(ctx, cc, storePrefix)
	if err != nil {
		return err
	}
	if slot != leaseSlot {
		return fmt.Errorf("store prefix %q is in slot %d, leases under %q in slot %d: %w",
			storePrefix, slot, c.leaseBase, leaseSlot, ErrCrossSlot)
	}
	return nil
}

// FencedPutMany writes records as the store does (key storePrefix+TrunkRef,
// value and TTL of recordfmt.Encode with grace; grace <= 0 means
// store.DefaultTTLGrace), each only if the lease of its TrunkRef is held in
// Redis by this replica with rec.Fence: the check and the write are one Lua
// call per 500 records (8 calls per round trip). Owner is set to ID() in what
// is written. It returns the refs refused, each once, and drops them from Held
// when held with that fence. It writes nothing when a record has an empty
// TrunkRef or cannot be encoded, or when on a Redis Cluster storePrefix fails
// CheckStorePrefix (ErrCrossSlot, or the server could not tell the slots). On a failed round trip it returns the
// error and the refs refused before it; records of later round trips are not
// written. The records written are published to FollowChanges, in the same
// Lua call as their write.
func (c *Cluster) FencedPutMany(ctx context.Context, storePrefix string, recs []registration.Record, grace time.Duration) (refused []string, err error) {
	if err := c.checkStorePrefix(ctx, storePrefix); err != nil {
		return nil, fmt.Errorf("cluster fenced put: %w", err)
	}
	if grace <= 0 {
		grace = store.DefaultTTLGrace
	}
	now := c.now()
	args := make([]any, 0, 3*len(recs))
	for i, rec := range recs {
		if rec.TrunkRef == "" {
			return nil, fmt.Errorf("cluster fenced put: record %d: empty trunk ref", i)
		}
		rec.Owner = c.id
		value, ttl, err := recordfmt.Encode(rec, now, grace)
		if err != nil {
			return nil, fmt.Errorf("cluster fenced put %s: %w", rec.TrunkRef, err)
		}
		args = append(args, c.leaseValue(rec.Fence), value, ttl.Milliseconds())
	}
	var batches []scriptBatch
	channel, head := c.changesChannel(), c.changeHead()
	for start := 0; start < len(recs); start += fencedChunk {
		end := min(start+fencedChunk, len(recs))
		keys := make([]string, 0, 2*(end-start))
		for _, rec := range recs[start:end] {
			keys = append(keys, storePrefix+rec.TrunkRef, c.leaseKey(rec.TrunkRef))
		}
		batchArgs := append([]any{channel, head}, args[3*start:3*end]...)
		batches = append(batches, scriptBatch{keys: keys, args: batchArgs})
	}
	seen := make(map[string]bool)
	err = c.evalBatches(ctx, fencedPutScript, batches, fencedScriptsPerRT, func(b int, reply any) error {
		chunk := recs[b*fencedChunk : min((b+1)*fencedChunk, len(recs))]
		flags, ok := reply.(string)
		if !ok || len(flags) != len(chunk) {
			return fmt.Errorf("fenced put script: unexpected reply %T", reply)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, rec := range chunk {
			if flags[i] == '1' || seen[rec.TrunkRef] {
				continue
			}
			seen[rec.TrunkRef] = true
			refused = append(refused, rec.TrunkRef)
			if l, ok := c.held[rec.TrunkRef]; ok && l.fence == rec.Fence {
				delete(c.held, rec.TrunkRef)
				c.lost.Add(1)
			}
		}
		return nil
	})
	if err != nil {
		return refused, fmt.Errorf("cluster fenced put: %w", err)
	}
	return refused, nil
}
