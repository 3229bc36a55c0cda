package cluster

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// scriptBatch is one Lua call: its keys and arguments.
type scriptBatch struct {
	keys []string
	args []any
}

// evalBatches runs script once per batch by EVALSHA, perRT calls per pipeline,
// and calls done with each call's reply in order. A NOSCRIPT answer (a server
// that never saw the script, or restarted) loads the script and sends the
// refused calls again: they did not run. It stops at the first round trip with
// a failed call (after calling done for the others of that round trip) or a
// done error.
func (c *Cluster) evalBatches(ctx context.Context, script *redis.Script, batches []scriptBatch, perRT int, done func(b int, reply any) error) error {
	if len(batches) == 0 {
		return nil
	}
	if c.client == nil {
		return errNoClient
	}
	for start := 0; start < len(batches); start += perRT {
		idx := make([]int, 0, perRT)
		for b := start; b < min(start+perRT, len(batches)); b++ {
			idx = append(idx, b)
		}
		if err := c.evalRound(ctx, script, batches, idx, done); err != nil {
			return err
		}
	}
	return nil
}

// evalRound runs the batches idx in one pipeline (two more round trips when
// the script must be loaded first).
func (c *Cluster) evalRound(ctx context.Context, script *redis.Script, batches []scriptBatch, idx []int, done func(b int, reply any) error) error {
	for loaded := false; ; loaded = true {
		cmds := make([]*redis.Cmd, len(idx))
		_, pipeErr := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, b := range idx {
				cmds[j] = p.EvalSha(ctx, script.Hash(), batches[b].keys, batches[b].args...)
			}
			return nil
		})
		var (
			again    []int
			firstErr error
		)
		for j, b := range idx {
			reply, err := cmds[j].Result()
			switch {
			case err == nil:
				if err := done(b, reply); err != nil && firstErr == nil {
					firstErr = err
				}
			case !loaded && redis.HasErrorPrefix(err, "NOSCRIPT"):
				again = append(again, b)
			case firstErr == nil:
				firstErr = err
			}
		}
		switch {
		case firstErr != nil:
			return firstErr
		case len(again) == 0:
			if pipeErr != nil && !redis.HasErrorPrefix(pipeErr, "NOSCRIPT") {
				return pipeErr
			}
			return nil
		}
		if err := script.Load(ctx, c.client).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
		idx = again
	}
}
