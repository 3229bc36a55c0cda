// Package membership is the membership set of a registry cluster: each replica
// heartbeats every TTL/3 into one Redis sorted set (member: JSON
// {"id","advertise"}; score: heartbeat expiry in Unix ms; pruned 3 TTL after it)
// and keeps a local view of the live members, from which a member drops the
// moment its expiry passes by the local clock. Rendezvous hashing over the view
// spreads the trunks (Owner), so a member that joins or leaves moves only its
// own share. The cluster package runs one Set per replica (Cluster.Run,
// Members, MembersChanged, Owner).
package membership

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

// Member is a live replica as seen in the membership set.
type Member struct{ ID, Advertise string }

var errNoClient = errors.New("no redis client")

// Options configures a Set.
type Options struct {
	// Client is the Redis client; nil makes every heartbeat fail.
	Client redis.UniversalClient
	// Key is the members set.
	Key string
	// ID names this replica; Advertise is its control API address (may be empty).
	ID, Advertise string
	// TTL is a heartbeat's lifetime; Run heartbeats every TTL/3.
	TTL time.Duration
	// Clock gives the heartbeats' expiries and ends them in the view.
	Clock func() time.Time
	// Log receives warnings.
	Log *slog.Logger
	// OnLeave, when set, is called as Run leaves, after the tombstone is written
	// (not without Client), with a short deadline of its own.
	OnLeave func(ctx context.Context)
}

// Set is one replica's part in the membership set and its view of it. It is
// safe for concurrent use.
type Set struct {
	client        redis.UniversalClient
	key           string
	id, advertise string
	ttl           time.Duration
	now           func() time.Time
	log           *slog.Logger
	onLeave       func(ctx context.Context)

	// view is the live membership ([]Member sorted by ID, never mutated).
	view    atomic.Pointer[[]Member]
	changed chan struct{}
	// viewMu guards entries (Run's last answer: member → expiry).
	viewMu  sync.Mutex
	entries map[Member]time.Time
}

// New returns a Set with an empty view. It does not contact Redis.
func New(o Options) *Set {
	s := &Set{
		client: o.Client, key: o.Key, id: o.ID, advertise: o.Advertise, ttl: o.TTL,
		now: o.Clock, log: o.Log, onLeave: o.OnLeave,
		changed: make(chan struct{}, 1),
		entries: make(map[Member]time.Time),
	}
	s.view.Store(&[]Member{})
	return s
}

// pruneAfter is how many LeaseTTLs a dead member stays in the members set
// (ignored, since its score is past) before a heartbeat removes it.
const pruneAfter = 3

// memberEntry is a member as stored in the members set.
type memberEntry struct {
	ID        string `json:"id"`
	Advertise string `json:"advertise,omitempty"`
}

// Run takes part in the membership until ctx ends: a heartbeat at once and
// then every TTL/3 adds this replica to the members set with an expiry of
// TTL, removes members dead for 3 TTL, and reads the live ones into
// the local view (Members). Between heartbeats, a member leaves the view the
// moment its expiry passes by the local clock, so a replica that died is seen
// gone TTL after its last heartbeat, not up to a heartbeat period later (a
// live member's expiry is always renewed by then). A failed heartbeat is logged
// and retried at the next tick; meanwhile the view keeps the last answer, less
// the members whose expiry passed (this replica included). When ctx ends, Run
// leaves: it empties the view, writes this replica's tombstone in the set,
// calls Options.OnLeave, and returns nil. Run must not be called twice at the
// same time.
func (ms *Set) Run(ctx context.Context) error {
	every := ms.ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	expiry := time.NewTimer(every)
	defer expiry.Stop()
	ms.heartbeat(ctx, every)
	for {
		expiry.Reset(ms.untilExpiry(every))
		select {
		case <-ctx.Done():
			ms.leave(ctx, every)
			return nil
		case <-tick.C:
			ms.heartbeat(ctx, every)
		case <-expiry.C:
			ms.refreshView(ms.now(), nil, nil) // no new answer: only drops the expired
		}
	}
}

// untilExpiry is how long until the soonest expiry in the view passes, at most
// limit.
func (ms *Set) untilExpiry(limit time.Duration) time.Duration {
	ms.viewMu.Lock()
	defer ms.viewMu.Unlock()
	now, wait := ms.now(), limit
	for _, exp := range ms.entries {
		// A millisecond past it: the view keeps a member until its expiry passes.
		wait = min(wait, exp.Sub(now)+time.Millisecond)
	}
	return max(wait, time.Millisecond)
}

// heartbeat sends one heartbeat and refreshes the view; it takes at most limit.
func (ms *Set) heartbeat(ctx context.Context, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	now := ms.now()
	if ms.client == nil {
		ms.refreshView(now, nil, errNoClient)
		return
	}
	self, _ := json.Marshal(memberEntry{ID: ms.id, Advertise: ms.advertise})
	key := ms.key
	nowMS := now.UnixMilli()
	var live *redis.ZSliceCmd
	_, err := ms.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(ms.ttl).UnixMilli()), Member: string(self)})
		p.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(nowMS-pruneAfter*ms.ttl.Milliseconds(), 10))
		// The set goes away on its own once every replica is gone.
		p.PExpire(ctx, key, 2*pruneAfter*ms.ttl)
		// Every entry, the dead ones too: a member whose score passed (expired, or
		// a tombstone left by leave) is gone; one missing from the set altogether
		// (Redis lost it, e.g. restarted empty) stays alive by the expiry last seen.
		live = p.ZRangeWithScores(ctx, key, 0, -1)
		return nil
	})
	if err != nil {
		ms.refreshView(now, nil, err)
		return
	}
	ms.refreshView(now, live.Val(), nil)
}

// refreshView replaces the entries with the heartbeat's answer (or, when the
// heartbeat failed with err, keeps them), drops the expired ones, and publishes
// the live members.
func (ms *Set) refreshView(now time.Time, answer []redis.Z, err error) {
	ms.viewMu.Lock()
	defer ms.viewMu.Unlock()
	if err != nil {
		if ms.client != nil {
			ms.log.Warn("membership heartbeat failed", "err", err)
		}
	} else {
		entries := make(map[Member]time.Time, len(answer))
		for _, z := range answer {
			s, _ := z.Member.(string)
			var e memberEntry
			if json.Unmarshal([]byte(s), &e) != nil || e.ID == "" {
				ms.log.Warn("membership: ignoring a malformed member", "member", s)
				continue
			}
			entries[Member(e)] = time.UnixMilli(int64(z.Score))
		}
		for m, exp := range ms.entries {
			if _, ok := entries[m]; !ok {
				entries[m] = exp
			}
		}
		ms.entries = entries
	}
	byID := make(map[string]Member)
	latest := make(map[string]time.Time)
	for m, exp := range ms.entries {
		if !exp.After(now) {
			delete(ms.entries, m)
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
	ms.publishView(members)
}

// publishView sets the view to members and signals MembersChanged when it differs.
func (ms *Set) publishView(members []Member) {
	if slices.Equal(*ms.view.Load(), members) {
		return
	}
	ms.view.Store(&members)
	select {
	case ms.changed <- struct{}{}:
	default:
	}
}

// leave removes this replica from the members set and calls onLeave, with a
// short deadline of its own since ctx is done.
func (ms *Set) leave(ctx context.Context, limit time.Duration) {
	ms.viewMu.Lock()
	ms.entries = make(map[Member]time.Time)
	ms.publishView([]Member{})
	ms.viewMu.Unlock()
	if ms.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(limit, time.Second))
	defer cancel()
	self, _ := json.Marshal(memberEntry{ID: ms.id, Advertise: ms.advertise})
	// A tombstone (score now), not a removal: the others see this replica gone at
	// once, and tell a departure from an entry Redis lost. Pruned after 3 TTLs.
	tomb := redis.Z{Score: float64(ms.now().UnixMilli()), Member: string(self)}
	if err := ms.client.ZAdd(ctx, ms.key, tomb).Err(); err != nil {
		ms.log.Warn("membership: leave failed", "err", err)
	}
	if ms.onLeave != nil {
		ms.onLeave(ctx)
	}
}

// Members returns the live members (this replica included once its first
// heartbeat succeeded), sorted by ID. The slice is the caller's.
func (ms *Set) Members() []Member { return slices.Clone(*ms.view.Load()) }

// MembersChanged is signalled (without blocking; it holds at most one signal)
// whenever the set of live members changes. Read Members after it fires.
func (ms *Set) MembersChanged() <-chan struct{} { return ms.changed }

// Owner returns the live member that should own ref (Rendezvous over Members),
// or "" when no member is live.
func (ms *Set) Owner(ref string) string { return Rendezvous(*ms.view.Load(), ref) }

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
