package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/cluster/changefeed"
	"sipreg.dev/services/registry/internal/cluster/membership"
)

// The defaults of Options.
const (
	// DefaultPrefix is the default Options.Prefix.
	DefaultPrefix = "sipreg:"
	// DefaultLeaseTTL is the default Options.LeaseTTL.
	DefaultLeaseTTL = 10 * time.Second
)

// Batch sizes: trunks per Lua call, and Lua calls per pipeline (one round trip).
const (
	leaseChunk        = 1000
	fencedChunk       = 500
	leaseScriptsPerRT = 20
	// Records are larger than lease keys: about 4 MB per round trip.
	fencedScriptsPerRT = 8
)

// minMargin is the least safety margin between the local validity window and
// the lease's TTL in Redis.
const minMargin = 500 * time.Millisecond

// ErrCrossSlot is returned by FencedPutMany (wrapped) and CheckStorePrefix on a
// Redis Cluster when the store's record keys are not in the hash slot of the
// lease keys, so no Lua call can compare a lease and write a record atomically.
var ErrCrossSlot = errors.New("record keys and lease keys are in different hash slots")

// ErrNotLeader is returned by PublishDesired (wrapped) when this replica does not
// hold the discovery lease.
var ErrNotLeader = errors.New("not the discovery leader")

var errNoClient = errors.New("no redis client")

// Options configures a Cluster. The zero value of every field but Client means
// its default.
type Options struct {
	// Client is the Redis client (single server, Sentinel or Cluster), usually
	// the store's (store.Redis.Client).
	Client redis.UniversalClient
	// Prefix is put before every key of this package (default DefaultPrefix).
	// With a hash tag in it (for example "{sipreg}:"), every key of the package
	// is in that tag's slot; without one, the lease keys get the tag "{leases}".
	Prefix string
	// ReplicaID names this replica in leases and membership (default
	// hostname-pid-random). It must be unique among running replicas.
	ReplicaID string
	// Advertise is this replica's control API address (host:port), shown to the
	// other members for forwarding; may be empty.
	Advertise string
	// LeaseTTL is the TTL of trunk leases and membership heartbeats (default
	// DefaultLeaseTTL; a second or more in practice, Redis counts in
	// milliseconds). Run heartbeats every LeaseTTL/3; call Renew as often.
	LeaseTTL time.Duration
	// Clock is the clock for lease validity and heartbeats (default time.Now).
	Clock func() time.Time
	// Logger receives warnings (default: discard).
	Logger *slog.Logger
	// TracerProvider, when set, gets a span per Claim and Renew (trace.go); nil:
	// no spans.
	TracerProvider trace.TracerProvider
}

// Cluster is one replica's view of and part in the cluster. It is safe for
// concurrent use.
type Cluster struct {
	client    redis.UniversalClient
	prefix    string
	leaseBase string
	id        string
	advertise string
	ttl       time.Duration
	margin    time.Duration
	now       func() time.Time
	log       *slog.Logger
	tracer    trace.Tracer // nil: no spans

	// ownMu serialises Claim and Release, so that a Claim keeping a lease
	// cannot slip between Release forgetting it and deleting it in Redis.
	ownMu sync.Mutex
	// mu guards held and validMax.
	mu   sync.Mutex
	held map[string]lease
	// validMax is the latest validity any lease was given (never lowered): past it,
	// no lease of this replica is valid by its own clock (gate.go).
	validMax time.Time

	// members is the membership set and the view of it (membership.go).
	members *membership.Set

	// feed publishes deletions on, and follows, the changes channel.
	feed changefeed.Feed

	renewals, renewFailures, takeovers, handOvers, lost atomic.Int64

	// slotMu guards slots, the hash slots the Redis Cluster gave for keys
	// (keySlot).
	slotMu sync.Mutex
	slots  map[string]int64
}

// lease is a trunk lease held by this replica.
type lease struct {
	fence int64
	// validUntil ends the local validity window (see Valid).
	validUntil time.Time
}

// New returns a Cluster. It does not contact Redis. A nil Client makes every
// call that needs Redis fail.
func New(o Options) *Cluster {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.ReplicaID == "" {
		o.ReplicaID = defaultReplicaID()
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		client:    o.Client,
		prefix:    o.Prefix,
		leaseBase: leaseBase(o.Prefix),
		id:        o.ReplicaID,
		advertise: o.Advertise,
		ttl:       o.LeaseTTL,
		margin:    safetyMargin(o.LeaseTTL),
		now:       o.Clock,
		log:       o.Logger.With("replica", o.ReplicaID),
		held:      make(map[string]lease),
		slots:     make(map[string]int64),
	}
	c.feed = changefeed.Feed{Client: o.Client, Channel: changefeed.Channel(o.Prefix), Replica: o.ReplicaID, Log: c.log}
	if o.TracerProvider != nil {
		c.tracer = o.TracerProvider.Tracer(tracerName)
	}
	c.members = c.newMembers()
	if _, ok := hashTag(c.leaseBase + "lease:x"); !ok {
		c.log.Warn("cluster prefix has an empty hash tag: lease keys are spread over hash slots, and batched scripts fail on a Redis Cluster",
			"prefix", o.Prefix)
	}
	return c
}

// ID returns this replica's ID.
func (c *Cluster) ID() string { return c.id }

// LeaseTTL returns the lease TTL in use (Options.LeaseTTL or its default). Renew
// should be called every LeaseTTL/3.
func (c *Cluster) LeaseTTL() time.Duration { return c.ttl }

// Renewals returns how many Renew rounds succeeded.
func (c *Cluster) Renewals() int64 { return c.renewals.Load() }

// RenewFailures returns how many Renew rounds failed (Redis unreachable or an
// error answer), in whole or in part.
func (c *Cluster) RenewFailures() int64 { return c.renewFailures.Load() }

// Takeovers returns how many leases Claim took that another replica held before
// (after it expired or was released); the fence was incremented for each.
func (c *Cluster) Takeovers() int64 { return c.takeovers.Load() }

// HandOvers returns how many leases Release gave up (deleted in Redis).
func (c *Cluster) HandOvers() int64 { return c.handOvers.Load() }

// LeasesLost returns how many held leases Claim, Renew or FencedPutMany found
// owned by another replica or gone.
func (c *Cluster) LeasesLost() int64 { return c.lost.Load() }

// safetyMargin is how much shorter the local validity window is than the lease:
// 10% of ttl, at least minMargin, at most half of ttl.
func safetyMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/10, minMargin), ttl/2)
}

// defaultReplicaID is hostname-pid-random.
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "registry"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.ToLower(rand.Text()[:8]))
}

// leaseBase is the base of the lease keys: prefix itself when it holds a hash
// tag, else prefix+"{leases}:". Either way every key built on it has a tag that
// does not depend on what follows the base.
func leaseBase(prefix string) string {
	if _, ok := hashTag(prefix); ok {
		return prefix
	}
	return prefix + "{leases}:"
}

// hashTag returns the part of key Redis Cluster hashes when it is a hash tag:
// what lies between the first "{" and the first "}" after it, when not empty.
func hashTag(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return "", false
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return "", false
	}
	return key[open+1 : open+1+end], true
}

// slotTimeout bounds how long CheckStorePrefix waits for CLUSTER KEYSLOT.
const slotTimeout = 5 * time.Second

// keySlot returns the hash slot of key on the Redis Cluster of cc, as the
// server computes it (CLUSTER KEYSLOT; go-redis computes it too, but not in a
// package it exports). Each key is asked once: the answer is kept, an error
// is not.
//
// Only a Redis Cluster answers it rightly: a server without cluster support
// refuses the command, and miniredis answers 163 for every key, so a check
// that compares two slots from miniredis passes whatever the keys; callers
// ask only on a *redis.ClusterClient, and decide what they can from hash
// tags without asking (see checkStorePrefix).
func (c *Cluster) keySlot(ctx context.Context, cc *redis.ClusterClient, key string) (int64, error) {
	c.slotMu.Lock()
	slot, ok := c.slots[key]
	c.slotMu.Unlock()
	if ok {
		return slot, nil
	}
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("cluster keyslot %q: %w", key, err)
	}
	c.slotMu.Lock()
	c.slots[key] = slot
	c.slotMu.Unlock()
	return slot, nil
}

func (c *Cluster) membersKey() string            { return c.prefix + "members" }
func (c *Cluster) leaseKey(ref string) string    { return c.leaseBase + "lease:" + ref }
func (c *Cluster) fenceKey(ref string) string    { return c.leaseBase + "fence:" + ref }
func (c *Cluster) discoveryKey() string          { return c.leaseBase + "discovery" }
func (c *Cluster) desiredKey() string            { return c.leaseBase + "desired" }
func (c *Cluster) leaseValue(fence int64) string { return fmt.Sprintf("%s:%d", c.id, fence) }
