package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// Get returns the record of trunkRef, an error wrapping ErrNotFound, or one
// wrapping ErrCorrupt when the key holds no record this code can read (the
// reason, which OnSkip is told as well).
func (r *Redis) Get(ctx context.Context, trunkRef string) (registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return registration.Record{}, fmt.Errorf("redis get %s: %w", trunkRef, err)
	}
	if trunkRef == "" {
		// Put never writes it: no need to ask.
		return registration.Record{}, fmt.Errorf("redis get %s: %w", trunkRef, ErrNotFound)
	}
	key := r.key(trunkRef)
	rec, err := readGet(trunkRef, r.client.Get(ctx, key))
	switch {
	case errors.Is(err, redis.Nil):
		return registration.Record{}, fmt.Errorf("redis get %s: %w", trunkRef, ErrNotFound)
	case errors.Is(err, ErrCorrupt):
		r.report([]skipped{{key, err}})
		return registration.Record{}, fmt.Errorf("redis get %s: %w", trunkRef, err)
	case err != nil:
		return registration.Record{}, fmt.Errorf("redis get %s: %w", trunkRef, err)
	}
	return rec, nil
}

// GetMany reads the records of refs in pipelines of 1000 GETs. Unknown refs
// (and the empty one) are left out of the answer; so is a key that holds no
// record this code can read, reported to OnSkip (Get returns why for one). Any
// other failure stops it: it returns the records read until then and the error.
func (r *Redis) GetMany(ctx context.Context, refs []string) (map[string]registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return map[string]registration.Record{}, fmt.Errorf("redis get many: %w", err)
	}
	// Each key is asked for, and reported, once.
	unique := make([]string, 0, len(refs))
	seen := make(map[string]struct{}, len(refs))
	for _, ref := range refs {
		if _, dup := seen[ref]; dup || ref == "" {
			continue
		}
		seen[ref] = struct{}{}
		unique = append(unique, ref)
	}
	out := make(map[string]registration.Record, len(unique))
	var skips []skipped
	for start := 0; start < len(unique); start += batchSize {
		chunk := unique[start:min(start+batchSize, len(unique))]
		keys := make([]string, len(chunk))
		for i, ref := range chunk {
			keys[i] = r.key(ref)
		}
		err := r.getBatch(ctx, keys, chunk, func(rec registration.Record) {
			out[rec.TrunkRef] = rec
		}, &skips)
		if err != nil {
			return out, fmt.Errorf("redis get many: %w", err)
		}
	}
	r.report(skips)
	return out, nil
}

// skipped is a key that holds no record this code can read, and why.
type skipped struct {
	key    string
	reason error
}

// report tells OnSkip of each key skipped.
func (r *Redis) report(skips []skipped) {
	if r.opts.OnSkip == nil {
		return
	}
	for _, s := range skips {
		r.opts.OnSkip(s.key, s.reason)
	}
}

// getBatch GETs keys, the keys of refs, in one pipeline: found is called with
// each record read, a key that holds no record this code can read is added to
// skips, and a vanished key is left out. Any other failure is returned, naming
// the trunk when one command carries it.
func (r *Redis) getBatch(ctx context.Context, keys, refs []string, found func(registration.Record), skips *[]skipped) error {
	gets := make([]*redis.StringCmd, len(keys))
	// The pipeline's own error is the first of its commands' errors (a vanished
	// key's redis.Nil or a WRONGTYPE included): each command is looked at below.
	_, pipeErr := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			gets[i] = p.Get(ctx, key)
		}
		return nil
	})
	var batchSkips []skipped
	for i, get := range gets {
		rec, err := readGet(refs[i], get)
		switch {
		case err == nil:
			found(rec)
		case errors.Is(err, redis.Nil):
			// Expired or deleted meanwhile.
		case errors.Is(err, ErrCorrupt):
			batchSkips = append(batchSkips, skipped{keys[i], err})
		default:
			return fmt.Errorf("get %s: %w", refs[i], err)
		}
	}
	if pipeErr != nil && !errors.Is(pipeErr, redis.Nil) && !wrongType(pipeErr) {
		// Not carried by any command (none failed above).
		return pipeErr
	}
	*skips = append(*skips, batchSkips...)
	return nil
}

// readGet reads the answer to the GET of trunkRef's key: its record; an error
// wrapping ErrCorrupt when the key holds no record this code can read (told
// from the GET's own answer: no TYPE is asked); or the command's error as it
// is, redis.Nil for a missing key.
func readGet(trunkRef string, get *redis.StringCmd) (registration.Record, error) {
	data, err := get.Bytes()
	switch {
	case wrongType(err):
		return registration.Record{}, fmt.Errorf("%w: wrong type: not a string", ErrCorrupt)
	case err != nil:
		return registration.Record{}, err
	}
	return decode(trunkRef, data)
}

// wrongType reports whether err is Redis's answer to a GET of a key of another
// type than string (a hash, a list, ...).
func wrongType(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "WRONGTYPE")
}

// List returns every record under the prefix: SCAN (on every master, with a
// Cluster) for the keys, then one pipeline of GETs per 1000 keys. A key that
// expires or is deleted meanwhile is left out. A key that holds no record this
// code can read (another type, a value that is not a record, a record of another
// trunk or of an unknown version) is skipped and reported to OnSkip; it is not
// written to (Get returns why, and the next Put of that trunk replaces it). Any
// other failure fails the whole call, and then nothing is reported.
func (r *Redis) List(ctx context.Context) ([]registration.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redis list: %w", err)
	}
	keys, err := r.scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis list: scan: %w", err)
	}
	refs := make([]string, len(keys))
	for i, key := range keys {
		refs[i] = strings.TrimPrefix(key, r.opts.Prefix)
	}
	out := make([]registration.Record, 0, len(keys))
	var skips []skipped
	for start := 0; start < len(keys); start += batchSize {
		end := min(start+batchSize, len(keys))
		err := r.getBatch(ctx, keys[start:end], refs[start:end], func(rec registration.Record) {
			out = append(out, rec)
		}, &skips)
		if err != nil {
			return nil, fmt.Errorf("redis list: %w", err)
		}
	}
	r.report(skips)
	return out, nil
}

// scan returns every key under the prefix, once each and sorted.
func (r *Redis) scan(ctx context.Context) ([]string, error) {
	var mu sync.Mutex
	seen := make(map[string]struct{})
	scanNode := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, r.match, batchSize).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = struct{}{}
			}
			mu.Unlock()
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cluster, ok := r.client.(*redis.ClusterClient); ok {
		// SCAN on a ClusterClient visits one node only.
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scanNode(ctx, node)
		})
	} else {
		err = scanNode(ctx, r.client)
	}
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// decode reads back the record stored under the key of trunkRef. Every error
// wraps ErrCorrupt.
func decode(trunkRef string, data []byte) (registration.Record, error) {
	rec, err := recordfmt.Decode(data)
	switch {
	case err != nil:
		return registration.Record{}, err
	case rec.TrunkRef != trunkRef:
		return registration.Record{}, fmt.Errorf("%w: holds trunk %q", ErrCorrupt, rec.TrunkRef)
	case trunkRef == "":
		// The key is the bare prefix, which Put never writes.
		return registration.Record{}, fmt.Errorf("%w: record without trunk ref", ErrCorrupt)
	}
	return rec, nil
}

// escapeGlob quotes the characters SCAN MATCH treats as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
