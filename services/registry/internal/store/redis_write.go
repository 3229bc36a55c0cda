package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// Put writes one record with its TTL, in one round trip.
func (r *Redis) Put(ctx context.Context, rec registration.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis put %s: %w", rec.TrunkRef, err)
	}
	if rec.TrunkRef == "" {
		return fmt.Errorf("redis put: %w", errEmptyTrunkRef)
	}
	data, ttl, err := recordfmt.Encode(rec, r.opts.Now(), r.opts.TTLGrace)
	if err != nil {
		return fmt.Errorf("redis put %s: %w", rec.TrunkRef, err)
	}
	err = r.client.Set(ctx, r.key(rec.TrunkRef), data, ttl).Err()
	if err != nil {
		return fmt.Errorf("redis put %s: %w", rec.TrunkRef, err)
	}
	return nil
}

// PutMany encodes every record first, then writes them with one pipeline per
// 1000 records. It writes nothing if a record has an empty TrunkRef or cannot be
// encoded. A failed pipeline stops it; the error names the first trunk that
// failed, or the batch when the pipeline failed as a whole. It refuses none.
func (r *Redis) PutMany(ctx context.Context, recs []registration.Record) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redis put many: %w", err)
	}
	values := make([][]byte, len(recs))
	ttls := make([]time.Duration, len(recs))
	now := r.opts.Now()
	for i, rec := range recs {
		if rec.TrunkRef == "" {
			return nil, fmt.Errorf("redis put many: record %d: %w", i, errEmptyTrunkRef)
		}
		data, ttl, err := recordfmt.Encode(rec, now, r.opts.TTLGrace)
		if err != nil {
			return nil, fmt.Errorf("redis put many %s: %w", rec.TrunkRef, err)
		}
		values[i], ttls[i] = data, ttl
	}
	for start := 0; start < len(recs); start += batchSize {
		end := min(start+batchSize, len(recs))
		cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				p.Set(ctx, r.key(recs[i].TrunkRef), values[i], ttls[i])
			}
			return nil
		})
		if err == nil {
			continue
		}
		for i, cmd := range cmds {
			if cmd.Err() != nil {
				return nil, fmt.Errorf("redis put many %s: %w", recs[start+i].TrunkRef, cmd.Err())
			}
		}
		return nil, fmt.Errorf("redis put many (batch of %d from %s): %w", end-start, recs[start].TrunkRef, err)
	}
	return nil, nil
}

// Delete removes the record of trunkRef, if any.
func (r *Redis) Delete(ctx context.Context, trunkRef string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis delete %s: %w", trunkRef, err)
	}
	if trunkRef == "" {
		// The key would be the bare prefix, which no record uses.
		return nil
	}
	if err := r.client.Del(ctx, r.key(trunkRef)).Err(); err != nil {
		return fmt.Errorf("redis delete %s: %w", trunkRef, err)
	}
	return nil
}
