package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// leavingKey marks a replica that hands its trunks over on purpose (SIGTERM).
func (c *Cluster) leavingKey(id string) string { return c.prefix + "leaving:" + id }

// MarkLeaving tells the other replicas, for three lease TTLs, that this replica is
// handing its trunks over on purpose: the bindings are fine and keep their schedule.
// Call it before releasing the leases.
func (c *Cluster) MarkLeaving(ctx context.Context) error {
	if c.client == nil {
		return fmt.Errorf("cluster mark leaving: %w", errNoClient)
	}
	if err := c.client.Set(ctx, c.leavingKey(c.id), "1", 3*c.ttl).Err(); err != nil {
		return fmt.Errorf("cluster mark leaving: %w", err)
	}
	return nil
}

// Leaving reports whether replica id marked itself leaving (MarkLeaving) recently.
func (c *Cluster) Leaving(ctx context.Context, id string) (bool, error) {
	if c.client == nil {
		return false, fmt.Errorf("cluster leaving: %w", errNoClient)
	}
	err := c.client.Get(ctx, c.leavingKey(id)).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cluster leaving %s: %w", id, err)
	}
	return true, nil
}
