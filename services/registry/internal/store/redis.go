package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
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
	// key, and a reason wrapping ErrCorrupt (and recordfmt.ErrUnknownVersion
	// for an unknown version). List and GetMany skip such a key and Get returns the
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
// in the format of recordfmt.Encode (a version byte and a protobuf; older JSON
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

// ttl is how long Redis keeps rec when written now (see recordfmt.TTL).
func (r *Redis) ttl(rec registration.Record) time.Duration {
	return recordfmt.TTL(rec, r.opts.Now(), r.opts.TTLGrace)
}
