package cluster

import (
	"context"

	"sipreg.dev/services/registry/internal/cluster/changefeed"
)

// Change is one message of the changes channel: records one replica wrote
// (FencedPutMany) or deleted (PublishDeleted). See changefeed.Change.
type Change = changefeed.Change

// changesChannel is the channel FencedPutMany and PublishDeleted publish on.
func (c *Cluster) changesChannel() string { return c.feed.Channel }

// changeHead is the start of the message fencedPutScript publishes for this
// replica (changefeed.Head). The script appends a frame per record written.
func (c *Cluster) changeHead() string { return changefeed.Head(c.id) }

// PublishDeleted tells FollowChanges that the records of refs were deleted.
// The caller deletes them first: a follower that reads the records after this
// message must not find them.
func (c *Cluster) PublishDeleted(ctx context.Context, refs []string) error {
	return c.feed.PublishDeleted(ctx, refs)
}

// FollowChanges subscribes to the records every replica writes or deletes and
// calls onChange with each change, in the order Redis published them, until ctx
// ends; it then returns ctx's error. This replica's own writes are not passed
// on, its deletions are. synced is called each time the subscription is
// confirmed (first, and after each reconnection): changes published while it
// was down are lost. See changefeed.Feed.Follow.
func (c *Cluster) FollowChanges(ctx context.Context, synced func(), onChange func(Change)) error {
	return c.feed.Follow(ctx, synced, onChange)
}
