// Package cluster lets several registry replicas share the trunks through Redis:
// each trunk is owned by one live replica at a time (a lease with a fencing
// token), trunks are spread over the live replicas by rendezvous hashing over a
// membership set, writes of a trunk's record are refused once another replica
// took it over, and one replica at a time (the discovery leader) asks the
// Routr API for the desired set and publishes it for the others.
//
// # Safety
//
// A lease is a Redis key holding "<replicaID>:<fence>" with a TTL of LeaseTTL.
// The fence comes from a per-trunk counter incremented at every change of owner,
// so it grows by exactly one per owner. A replica acts for a trunk (Valid) only
// until the start of its last successful claim or renewal of that lease plus
// LeaseTTL minus a safety margin (10% of LeaseTTL, at least 500ms, at most half
// of it), by its own clock. The round started before Redis set the TTL, so the
// local window ends before the lease can expire in Redis and be taken by another
// replica: there is no moment with two owners acting, even when Redis is
// unreachable or the old owner was paused, provided the clocks' rates agree to
// within the margin. A write that still arrives late (a replica paused between
// Valid and the write) is refused by FencedPutMany, which compares the lease
// with the writer's fence in the same Lua call that writes the record.
//
// # Key layout
//
// With P the Options.Prefix (default "sipreg:") and L the lease base, which is
// P when P holds a Redis Cluster hash tag ("{...}" with something inside) and
// P+"{leases}:" otherwise:
//
//	P+"members"       ZSET   member: JSON {"id","advertise"}; score: heartbeat
//	                         expiry in Unix ms. Live while the score is after
//	                         now; pruned 3 LeaseTTL after it.
//	L+"lease:"+ref    STRING "<replicaID>:<fence>", PX LeaseTTL.
//	L+"fence:"+ref    HASH   n: the fence counter (HINCRBY, never expires, so it
//	                         never goes back); owner: the last replica that
//	                         claimed it (to count takeovers).
//	L+"discovery"     STRING the discovery leader's replica ID, PX the caller's TTL.
//	L+"desired"       HASH   version: hex SHA-256 of blob; blob: the desired set
//	                         as published by the leader. No TTL.
//
// Record keys are the store's: storePrefix+ref, written with the value and TTL of
// recordfmt.Encode.
//
// # Lua scripts and hash slots
//
//   - claim (KEYS: lease and fence key of up to 1000 trunks): per trunk, no
//     lease: HINCRBY the fence, SET the lease PX LeaseTTL; our lease: PEXPIRE it;
//     another's: nothing. Returns each trunk's fence (0 when not got) and
//     whether it was new, kept, or taken over from another replica.
//   - renew (KEYS: up to 1000 lease keys): PEXPIRE each lease whose value is
//     still ours with the fence we hold; returns which were.
//   - release (KEYS: up to 1000 lease keys): DEL each lease that is ours.
//   - fencedPut (KEYS: record and lease key of up to 500 trunks): SET each record
//     PX its TTL only when its lease holds "<ourID>:<rec.Fence>", then PUBLISH
//     the records written, as one message, on the changes channel (prefix +
//     "changes"; see FollowChanges and the subpackage changefeed, which owns
//     the channel's message format).
//   - discovery, discoveryRelease, publish, fetch: one or two keys under L.
//
// Every lease, fence, discovery and desired key carries the same hash tag, so
// each script's keys are in one hash slot of a Redis Cluster: the batched scripts
// work there unchanged, at the price of keeping all leases on one shard (at
// 100,000 trunks a few megabytes). FencedPutMany needs the record keys in that
// slot too: on a Redis Cluster give the store prefix the same hash tag as the
// cluster prefix (for example Prefix "{sipreg}:" and store prefix
// "{sipreg}:registration:"); CheckStorePrefix tells at start whether they fit,
// and FencedPutMany refuses to run with ErrCrossSlot otherwise. A single server
// and Sentinel have no such constraint. Scripts run by EVALSHA, up to 20 (8 for
// fenced writes) per pipeline, so a renewal round of 100,000 leases is five
// round trips; a NOSCRIPT answer (new or restarted server) loads the script and
// resends the batches it refused.
//
// # Membership and discovery
//
// Run heartbeats every LeaseTTL/3 with one pipeline on the members key (ZADD
// self, prune the dead, read the live) and keeps a local view (the subpackage
// membership holds the set and the view; Cluster runs one); Owner ranks the
// live members by rendezvous hashing (xxhash of memberID+"\x00"+ref, highest
// wins), so a member that joins or leaves moves only its own share. Replicas'
// clocks are assumed synchronised (NTP) to well within LeaseTTL/3 for
// membership; leases do not depend on it.
//
// TryDiscovery takes or renews the discovery lease; only its holder calls the
// Routr API and publishes the answer (PublishDesired, refused to a replica that
// lost the lease); the others read it with FetchDesired, one small round trip
// when the version has not changed. The discovery lease has no local validity
// window: a leader paused past its TTL may call the API once more next to the
// new leader, which costs an API call, not correctness (the trunk leases guard
// the registrations).
//
// # Files and subpackages
//
// cluster.go holds Options, New and the key layout; lease.go claims, renews
// and releases trunk leases (Valid, Held); fenced_put.go is FencedPutMany and
// CheckStorePrefix; eval.go runs the batched scripts; fenced_store.go wraps a
// store with fenced writes; discovery.go is the discovery lease and the
// desired set; handover.go, gate.go and trace.go are the leaving marks
// (MarkLeaving), the send window (SendWindowOpen) and the spans.
// membership.go and changes.go offer the subpackages membership (the members
// set and its view, Rendezvous) and changefeed (the changes channel: its
// message format, PublishDeleted, the follower). The subpackages ownership
// and mirror build on Cluster.
package cluster
