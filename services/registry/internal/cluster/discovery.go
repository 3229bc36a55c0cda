package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// discoveryScript takes the discovery lease when free, or renews it when ours.
// KEYS: discovery key. ARGV: replica ID, TTL in ms. Returns 1 when ours after.
var discoveryScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// discoveryReleaseScript deletes the discovery lease when ours.
// KEYS: discovery key. ARGV: replica ID. Returns 1 when deleted.
var discoveryReleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// publishScript stores the desired set when the caller holds the discovery lease.
// KEYS: discovery key, desired key. ARGV: replica ID, version, blob.
// Returns 1 when stored, 0 when not the leader.
var publishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], 'version', ARGV[2], 'blob', ARGV[3])
return 1
`)

// fetchScript reads the desired set unless its version is the caller's.
// KEYS: desired key. ARGV: the version the caller has.
// Returns {} when none is published, {version} when unchanged, {version, blob}.
var fetchScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'version')
if not v then
  return {}
end
if v == ARGV[1] then
  return {v}
end
return {v, redis.call('HGET', KEYS[1], 'blob')}
`)

// TryDiscovery takes the discovery lease when it is free (SET NX PX ttl) or
// renews it when this replica holds it (compare and PEXPIRE), in one round
// trip, and reports whether this replica holds it now. Only the holder calls
// the Routr API; call it every interval with a ttl of about two intervals, so
// that the lease outlives one missed round but passes on soon after the leader
// is gone. Run gives it up when it leaves.
func (c *Cluster) TryDiscovery(ctx context.Context, ttl time.Duration) (leader bool, err error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("cluster discovery: ttl %s below 1ms", ttl)
	}
	if c.client == nil {
		return false, fmt.Errorf("cluster discovery: %w", errNoClient)
	}
	n, err := discoveryScript.Run(ctx, c.client, []string{c.discoveryKey()}, c.id, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("cluster discovery: %w", err)
	}
	return n == 1, nil
}

// ReleaseDiscovery gives up the discovery lease if this replica holds it, so
// another replica can take it at once. Run calls it when it leaves.
func (c *Cluster) ReleaseDiscovery(ctx context.Context) error {
	if c.client == nil {
		return fmt.Errorf("cluster discovery release: %w", errNoClient)
	}
	if err := discoveryReleaseScript.Run(ctx, c.client, []string{c.discoveryKey()}, c.id).Err(); err != nil {
		return fmt.Errorf("cluster discovery release: %w", err)
	}
	return nil
}

// DesiredVersion returns the version PublishDesired gives blob: the hex
// SHA-256 of its bytes.
func DesiredVersion(blob []byte) string {
	sum := sha256.Sum256(blob)
	return hex.EncodeToString(sum[:])
}

// PublishDesired publishes blob (the desired set, opaque to this package) with
// its version (DesiredVersion) for the other replicas. When Redis already has
// that version it writes nothing (one small round trip, blob not sent);
// otherwise it writes version and blob together, only if this replica holds the
// discovery lease: a replica that lost it (paused, cut off) cannot overwrite
// the new leader's set, and gets an error wrapping ErrNotLeader.
func (c *Cluster) PublishDesired(ctx context.Context, blob []byte) error {
	if c.client == nil {
		return fmt.Errorf("cluster publish desired: %w", errNoClient)
	}
	version := DesiredVersion(blob)
	have, err := c.client.HGet(ctx, c.desiredKey(), "version").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cluster publish desired: %w", err)
	}
	if have == version {
		return nil
	}
	n, err := publishScript.Run(ctx, c.client, []string{c.discoveryKey(), c.desiredKey()}, c.id, version, blob).Int64()
	if err != nil {
		return fmt.Errorf("cluster publish desired: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("cluster publish desired: %w", ErrNotLeader)
	}
	return nil
}

// FetchDesired returns the published desired set when its version differs
// from have (changed true, blob and its version), in one round trip; when it is
// have, only the version comes back (blob nil, changed false). When nothing is
// published yet it returns "", false: never an empty set that would read as
// "no trunks".
func (c *Cluster) FetchDesired(ctx context.Context, have string) (blob []byte, version string, changed bool, err error) {
	if c.client == nil {
		return nil, "", false, fmt.Errorf("cluster fetch desired: %w", errNoClient)
	}
	reply, err := fetchScript.Run(ctx, c.client, []string{c.desiredKey()}, have).Slice()
	if err != nil {
		return nil, "", false, fmt.Errorf("cluster fetch desired: %w", err)
	}
	switch len(reply) {
	case 0:
		return nil, "", false, nil
	case 1:
		version, _ = reply[0].(string)
		return nil, version, false, nil
	case 2:
		version, _ = reply[0].(string)
		data, ok := reply[1].(string)
		if !ok {
			// The blob went between the two reads of one script: impossible,
			// but never report a set that is not there.
			return nil, "", false, fmt.Errorf("cluster fetch desired: no blob for version %s", version)
		}
		return []byte(data), version, true, nil
	}
	return nil, "", false, fmt.Errorf("cluster fetch desired: unexpected reply of %d values", len(reply))
}
