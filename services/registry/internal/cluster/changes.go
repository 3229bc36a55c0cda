package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
)

// Change is one message of the changes channel: records one replica wrote
// (FencedPutMany) or deleted (PublishDeleted).
type Change struct {
	// Replica is the ID of the replica that made the change.
	Replica string `json:"replica"`
	// Put holds the records written, as stored.
	Put []registration.Record `json:"put,omitempty"`
	// Deleted holds the refs whose records were deleted.
	Deleted []string `json:"deleted,omitempty"`
}

// followPing is how long FollowChanges waits for a message before it pings the
// server, so that a connection that died silently is found and replaced.
const followPing = 15 * time.Second

func (c *Cluster) changesChannel() string { return c.prefix + "changes" }

// changeHead is the start of the message fencedPutScript publishes: the
// script appends the records and closes the array and the object.
func (c *Cluster) changeHead() string {
	id, _ := json.Marshal(c.id) // a string always encodes
	return `{"replica":` + string(id) + `,"put":[`
}

// PublishDeleted tells FollowChanges that the records of refs were deleted.
// The caller deletes them first: a follower that reads the records after this
// message must not find them.
func (c *Cluster) PublishDeleted(ctx context.Context, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	if c.client == nil {
		return errNoClient
	}
	msg, err := json.Marshal(Change{Replica: c.id, Deleted: refs})
	if err != nil {
		return fmt.Errorf("cluster publish deleted: %w", err)
	}
	if err := c.client.Publish(ctx, c.changesChannel(), msg).Err(); err != nil {
		return fmt.Errorf("cluster publish deleted: %w", err)
	}
	return nil
}

// FollowChanges subscribes to the records every replica writes or deletes and
// calls onChange with each change, in the order Redis published them, until ctx
// ends; it then returns ctx's error. The records this replica wrote itself are
// not decoded nor passed on (its caller has them already); its deletions are,
// and every other replica's changes. synced is called each time the
// subscription is confirmed: first, and again after each reconnection (Redis
// restarted, connection lost). Changes published while the
// subscription was down are lost, so a caller that keeps a copy of the records
// reads them again on synced; every change published after synced returned
// reaches onChange. A message that cannot be read is logged and skipped. The
// callbacks are called from one goroutine, never at once.
func (c *Cluster) FollowChanges(ctx context.Context, synced func(), onChange func(Change)) error {
	if c.client == nil {
		return errNoClient
	}
	own := c.changeHead()
	ps := c.client.Subscribe(ctx, c.changesChannel())
	// Receive does not watch ctx: closing the subscription ends a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		if stop() {
			_ = ps.Close()
		}
	}()
	for {
		msg, err := ps.ReceiveTimeout(ctx, followPing)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// Quiet channel: a ping proves the connection (or breaks it, and the
			// next Receive reconnects and subscribes again).
			_ = ps.Ping(ctx)
			continue
		case err != nil:
			c.log.Debug("changes subscription interrupted; reconnecting", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				synced()
			}
		case *redis.Message:
			if strings.HasPrefix(m.Payload, own) {
				continue // this replica's own writes, as fencedPutScript published them
			}
			var ch Change
			if err := json.Unmarshal([]byte(m.Payload), &ch); err != nil || ch.Replica == "" {
				c.log.Warn("unreadable message on the changes channel skipped", "channel", m.Channel, "bytes", len(m.Payload))
				continue
			}
			onChange(ch)
		}
	}
}
