package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
)

// The defaults of RedisOptions.
const (
	// DefaultPrefix is the default RedisOptions.Prefix.
	DefaultPrefix = "sipreg:registration:"
	// DefaultDialTimeout is the default RedisOptions.DialTimeout.
	DefaultDialTimeout = 2 * time.Second
	// DefaultReadTimeout is the default RedisOptions.ReadTimeout.
	DefaultReadTimeout = time.Second
	// DefaultWriteTimeout is the default RedisOptions.WriteTimeout.
	DefaultWriteTimeout = time.Second
	// DefaultTTLGrace is the default RedisOptions.TTLGrace.
	DefaultTTLGrace = 24 * time.Hour
)

// batchSize is how many commands go into one pipeline (PutMany, List) and how
// many keys one SCAN step asks for.
const batchSize = 1000

// RedisOptions configures a Redis store. The zero value of every field but Addrs
// means its default.
type RedisOptions struct {
	// Addrs is one host:port for a single server; the Sentinels when MasterName
	// is set; the seed nodes of a Redis Cluster when it holds several addresses
	// and MasterName is empty (redis.NewUniversalClient decides).
	Addrs []string
	// Username and Password authenticate (ACL user, or the password alone).
	// The password never appears in an error or a log value.
	Username string
	Password string
	// TLS negotiates TLS 1.2 or later, verifying the server against the system
	// roots and the host name of the address dialled.
	TLS bool
	// Prefix is put before the trunk ref to make a key (default DefaultPrefix).
	Prefix string
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step (defaults
	// 2s, 1s, 1s); a context deadline, when sooner, bounds it as well.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MasterName is the Sentinel master name; empty when not using Sentinel.
	MasterName string
	// TTLGrace is how long a record outlives the later of its ExpiresAt and
	// NextActionAt (default 24h), and the TTL of a record with neither in the
	// future. Dead entries go away on their own.
	TTLGrace time.Duration
	// Now is the clock for TTLs (default time.Now); tests inject their own.
	Now func() time.Time
	// OnSkip, when not nil, is told of each key under Prefix that holds no
	// record this code can read (another type than string, a value that is not
	// a record, a record of another trunk or of an unknown version): the full Redis
	// key, and a reason wrapping ErrCorrupt (and ErrUnknownVersion for an
	// unknown version). List and GetMany skip such a key and Get returns the
	// reason; each call reports each such key once, just before it returns,
	// and only when it does not fail otherwise. It runs on the goroutine of the
	// call, so concurrent calls may run it at once: it must be safe for
	// concurrent use, and quick.
	OnSkip func(key string, reason error)
}

// LogValue logs the options without the password.
func (o RedisOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("addrs", o.Addrs),
		slog.String("username", o.Username),
		slog.Bool("password", o.Password != ""),
		slog.Bool("tls", o.TLS),
		slog.String("prefix", o.Prefix),
		slog.String("masterName", o.MasterName),
		slog.Duration("ttlGrace", o.TTLGrace),
	)
}

// withDefaults fills in the defaults and rejects options no client can use.
func (o RedisOptions) withDefaults() (RedisOptions, error) {
	if len(o.Addrs) == 0 {
		return o, errors.New("redis options: no address")
	}
	if slices.Contains(o.Addrs, "") {
		return o, errors.New("redis options: empty address")
	}
	o.Addrs = slices.Clone(o.Addrs)
	for _, d := range []struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{
		{"dial timeout", &o.DialTimeout, DefaultDialTimeout},
		{"read timeout", &o.ReadTimeout, DefaultReadTimeout},
		{"write timeout", &o.WriteTimeout, DefaultWriteTimeout},
		{"ttl grace", &o.TTLGrace, DefaultTTLGrace},
	} {
		switch {
		case *d.value < 0:
			return o, fmt.Errorf("redis options: negative %s %s", d.name, *d.value)
		case *d.value == 0:
			*d.value = d.def
		}
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// universal translates the options (with defaults) for redis.NewUniversalClient.
func (o RedisOptions) universal() *redis.UniversalOptions {
	u := &redis.UniversalOptions{
		Addrs:        o.Addrs,
		Username:     o.Username,
		Password:     o.Password,
		MasterName:   o.MasterName,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		// A context deadline bounds a command, not only the timeouts above.
		ContextTimeoutEnabled: true,
		// Fail fast when Redis is down (the caller retries with its own
		// backoff): one retry covers a pooled connection that died with a
		// restart; one dial attempt per connection.
		MaxRetries:    1,
		DialerRetries: 1,
	}
	if o.TLS {
		// ServerName stays empty: the TLS dialer takes it from each address it
		// dials, which matters for Sentinel and Cluster.
		u.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return u
}

// Redis is a Store in Redis (single server, Sentinel or Cluster): each record is
// a string under Prefix+TrunkRef, with a TTL, holding the registration.Record
// in the format of EncodeRecord (a version byte and a protobuf; older JSON
// records are still read).
type Redis struct {
	client redis.UniversalClient
	opts   RedisOptions
	// match is the SCAN pattern of every key under the prefix.
	match string
	trips *RoundTripCounter
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store. It does not connect: a Redis that is down at
// start is reported by Ping and by every operation until it is back, and the
// store reconnects on its own. It fails only on options no client can use.
//
// A failed command is retried once (a pooled connection may have died with a
// Redis restart); a failed dial is not retried, so an operation on a Redis that
// is down fails within about DialTimeout and the caller's backoff takes over.
func NewRedis(opts RedisOptions) (*Redis, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(opts.universal())
	trips := &RoundTripCounter{}
	client.AddHook(trips)
	return &Redis{
		client: client,
		opts:   opts,
		match:  escapeGlob(opts.Prefix) + "*",
		trips:  trips,
	}, nil
}

// RoundTrips returns how many commands and pipelines this store has sent, each
// counted once however many commands it holds or retries it took. The handshake
// of a new connection (HELLO, AUTH, CLIENT, SELECT) is not counted; nor, with a
// Cluster, the SCAN that List sends to each master.
func (r *Redis) RoundTrips() int64 { return r.trips.Count() }

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

// Put writes one record with its TTL, in one round trip.
func (r *Redis) Put(ctx context.Context, rec registration.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis put %s: %w", rec.TrunkRef, err)
	}
	if rec.TrunkRef == "" {
		return fmt.Errorf("redis put: %w", errEmptyTrunkRef)
	}
	data, ttl, err := EncodeRecord(rec, r.opts.Now(), r.opts.TTLGrace)
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
		data, ttl, err := EncodeRecord(rec, now, r.opts.TTLGrace)
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

// Ping checks Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the client's connections; the store is unusable afterwards.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// Client returns the store's Redis client (single server, Sentinel or Cluster),
// for packages that keep their own keys next to the records (the cluster
// package's leases). Closing the store closes it.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Prefix returns the key prefix of the records (RedisOptions.Prefix, with its
// default): the record of a trunk is stored under Prefix()+TrunkRef.
func (r *Redis) Prefix() string { return r.opts.Prefix }

// TTLGrace is how long a record outlives its binding (RedisOptions.TTLGrace).
func (r *Redis) TTLGrace() time.Duration { return r.opts.TTLGrace }

func (r *Redis) key(trunkRef string) string { return r.opts.Prefix + trunkRef }

// ttl is how long Redis keeps rec when written now (see recordTTL).
func (r *Redis) ttl(rec registration.Record) time.Duration {
	return recordTTL(rec, r.opts.Now(), r.opts.TTLGrace)
}

// decode reads back the record stored under the key of trunkRef. Every error
// wraps ErrCorrupt.
func decode(trunkRef string, data []byte) (registration.Record, error) {
	rec, err := DecodeRecord(data)
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

// RoundTripCounter is a go-redis hook (client.AddHook) counting the commands and
// pipelines sent, each once, leaving out the handshake of new connections.
type RoundTripCounter struct{ n atomic.Int64 }

// Count returns the round trips counted so far.
func (h *RoundTripCounter) Count() int64 { return h.n.Load() }

// Reset starts counting again from zero.
func (h *RoundTripCounter) Reset() { h.n.Store(0) }

// DialHook passes dials through.
func (h *RoundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts one command.
func (h *RoundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts one pipeline.
func (h *RoundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !handshake(c) }) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// handshake reports whether cmd is one go-redis sends to set up a new
// connection (it runs them through the client's hooks too). The store never
// sends them itself.
func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "select", "client", "readonly":
		return true
	}
	return false
}
