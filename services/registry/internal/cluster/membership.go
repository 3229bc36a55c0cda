package cluster

import (
	"context"

	"sipreg.dev/services/registry/internal/cluster/membership"
)

// Member is a live replica as seen in the membership set.
type Member = membership.Member

// newMembers returns the membership set of c (see the subpackage membership):
// its leave gives up the discovery lease.
func (c *Cluster) newMembers() *membership.Set {
	return membership.New(membership.Options{
		Client: c.client, Key: c.membersKey(), ID: c.id, Advertise: c.advertise,
		TTL: c.ttl, Clock: c.now, Log: c.log,
		OnLeave: func(ctx context.Context) {
			if err := c.ReleaseDiscovery(ctx); err != nil {
				c.log.Warn("membership: releasing the discovery lease failed", "err", err)
			}
		},
	})
}

// Run takes part in the membership until ctx ends, heartbeating every
// LeaseTTL/3 (membership.Set.Run: the view, its expiries, failed heartbeats).
// When ctx ends, Run leaves: it removes this replica from the set, gives up the
// discovery lease if it holds it, empties the view, and returns nil. Trunk
// leases are left to the caller (Release). Run must not be called twice at the
// same time.
func (c *Cluster) Run(ctx context.Context) error { return c.members.Run(ctx) }

// Members returns the live members (this replica included once its first
// heartbeat succeeded), sorted by ID. The slice is the caller's.
func (c *Cluster) Members() []Member { return c.members.Members() }

// MembersChanged is signalled (without blocking; it holds at most one signal)
// whenever the set of live members changes. Read Members after it fires.
func (c *Cluster) MembersChanged() <-chan struct{} { return c.members.MembersChanged() }

// Owner returns the live member that should own ref (Rendezvous over Members),
// or "" when no member is live.
func (c *Cluster) Owner(ref string) string { return c.members.Owner(ref) }

// Rendezvous returns the ID of the member of highest random weight for ref:
// the weight of a member is xxhash64(ID + "\x00" + ref), and on a tie the
// smaller ID wins. It returns "" for no members. Adding or removing a member
// moves only the refs that member wins or won.
func Rendezvous(members []Member, ref string) string { return membership.Rendezvous(members, ref) }
