package cluster

import (
	"errors"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
)

// TestKeySlotOnRedisCluster asks a real Redis Cluster for slots (values from
// the Redis documentation and CLUSTER KEYSLOT) through keySlot, twice. It runs
// only when REDIS_CLUSTER_ADDRS (comma-separated seed nodes) is set.
func TestKeySlotOnRedisCluster(t *testing.T) {
	addrs := os.Getenv("REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		t.Skip("REDIS_CLUSTER_ADDRS not set")
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	defer client.Close()
	c := New(Options{Client: client, ReplicaID: "a"})
	for range 2 {
		for key, want := range map[string]int64{
			"123456789":            12739, // CRC-16/XMODEM 0x31C3 mod 16384
			"foo":                  12182,
			"somekey":              11058,
			"{user1000}.following": 3443,
			"foo{}{bar}":           8363,
			"foo{{bar}}zap":        4015,
		} {
			if got, err := c.keySlot(t.Context(), client, key); err != nil || got != want {
				t.Errorf("keySlot(%q) = %d, %v; want %d", key, got, err, want)
			}
		}
	}
}

func TestLeaseBase(t *testing.T) {
	t.Parallel()
	for prefix, want := range map[string]string{
		"sipreg:":         "sipreg:{leases}:",
		"{sipreg}:":       "{sipreg}:",
		"app:{sipreg}:x:": "app:{sipreg}:x:",
		"a{b:":            "a{b:{leases}:",
		"":                "{leases}:",
		"odd}:{":          "odd}:{{leases}:",
	} {
		base := leaseBase(prefix)
		if base != want {
			t.Errorf("leaseBase(%q) = %q, want %q", prefix, base, want)
		}
		// Every lease and fence key is in one slot, whatever the ref holds:
		// each has the same hash tag, which is all Redis Cluster hashes.
		tag, ok := hashTag(base + "lease:x")
		if !ok {
			t.Errorf("prefix %q: lease keys have no hash tag", prefix)
		}
		for _, ref := range []string{"t1", "{t2}", "}{", "a}b{c}"} {
			for _, k := range []string{base + "lease:" + ref, base + "fence:" + ref, base + "discovery", base + "desired"} {
				if got, ok := hashTag(k); !ok || got != tag {
					t.Errorf("prefix %q: %q has the hash tag %q, not %q", prefix, k, got, tag)
				}
			}
		}
	}
}

func TestSafetyMargin(t *testing.T) {
	t.Parallel()
	for ttl, want := range map[time.Duration]time.Duration{
		10 * time.Second:       time.Second,
		100 * time.Second:      10 * time.Second,
		3 * time.Second:        500 * time.Millisecond,
		time.Second:            500 * time.Millisecond,
		600 * time.Millisecond: 300 * time.Millisecond,
	} {
		if got := safetyMargin(ttl); got != want {
			t.Errorf("safetyMargin(%v) = %v, want %v", ttl, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	if c.prefix != DefaultPrefix || c.ttl != DefaultLeaseTTL || c.now == nil || c.log == nil {
		t.Errorf("defaults: prefix %q ttl %v", c.prefix, c.ttl)
	}
	if parts := strings.Split(c.ID(), "-"); len(parts) < 3 || len(parts[len(parts)-1]) != 8 {
		t.Errorf("default ID %q is not hostname-pid-random", c.ID())
	}
	if New(Options{}).ID() == c.ID() {
		t.Error("two default IDs are equal")
	}
	if _, err := c.Claim(t.Context(), []string{"t1"}); err == nil {
		t.Error("claim without a client succeeded")
	}
	if len(c.Members()) != 0 || c.Owner("t1") != "" {
		t.Error("members before Run")
	}
}

// TestCheckStorePrefix needs no server: a Cluster client that never connects.
// Equal hash tags, or none in the store prefix, are decided without asking.
func TestCheckStorePrefix(t *testing.T) {
	t.Parallel()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer client.Close()
	tagged := New(Options{Client: client, Prefix: "{sipreg}:", ReplicaID: "a"})
	if err := tagged.CheckStorePrefix("{sipreg}:registration:"); err != nil {
		t.Errorf("same tag: %v", err)
	}
	for _, sp := range []string{"sipreg:registration:", "{}registration:", "registration:{sipreg"} {
		if err := tagged.CheckStorePrefix(sp); !errors.Is(err, ErrCrossSlot) {
			t.Errorf("store prefix %q: %v, want ErrCrossSlot", sp, err)
		}
	}
	untagged := New(Options{Client: client, Prefix: "sipreg:", ReplicaID: "a"})
	if err := untagged.CheckStorePrefix("sipreg:{leases}:registration:"); err != nil {
		t.Errorf("store prefix in the {leases} slot: %v", err)
	}
	_, err := untagged.FencedPutMany(t.Context(), "sipreg:registration:", []registration.Record{{TrunkRef: "t1", Fence: 1}}, time.Hour)
	if !errors.Is(err, ErrCrossSlot) {
		t.Errorf("fenced put across slots = %v, want ErrCrossSlot", err)
	}
	// Another tag: the server must be asked, and cannot be.
	if err := tagged.CheckStorePrefix("{other}:registration:"); err == nil || errors.Is(err, ErrCrossSlot) ||
		!strings.Contains(err.Error(), "cluster keyslot") {
		t.Errorf("another tag, no server: %v; want the failure to ask", err)
	}
	// Not a Cluster: anything goes.
	single := New(Options{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), ReplicaID: "a"})
	if err := single.CheckStorePrefix("sipreg:registration:"); err != nil {
		t.Errorf("single server: %v", err)
	}
}

// TestCheckStorePrefixAsksSlots runs a Cluster client on a miniredis whose
// CLUSTER KEYSLOT answers from a table (miniredis itself answers 163 for every
// key): a store prefix with another tag than the leases is compared by the
// slots the server gives, each key asked once; a failed answer fails the check,
// without ErrCrossSlot, and is asked again next time.
func TestCheckStorePrefixAsksSlots(t *testing.T) {
	m := miniredis.RunT(t)
	var (
		mu    sync.Mutex
		asked = map[string]int{}
		fail  = true
	)
	slots := map[string]int{"{sipreg}:lease:": 200, "{same}:registration:": 200, "{other}:registration:": 100}
	m.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd != "CLUSTER" || len(args) != 2 || !strings.EqualFold(args[0], "keyslot") {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		asked[args[1]]++
		if fail && args[1] == "{other}:registration:" {
			c.WriteError("ERR injected failure")
			return true
		}
		slot, ok := slots[args[1]]
		if !ok {
			c.WriteError("ERR unexpected key " + args[1])
			return true
		}
		c.WriteInt(slot)
		return true
	})
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{m.Addr()}, MaxRetries: -1})
	defer client.Close()
	c := New(Options{Client: client, Prefix: "{sipreg}:", ReplicaID: "a"})
	if err := c.CheckStorePrefix("{other}:registration:"); err == nil || errors.Is(err, ErrCrossSlot) ||
		!strings.Contains(err.Error(), "injected failure") {
		t.Errorf("failed answer: %v", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	for range 2 {
		if err := c.CheckStorePrefix("{other}:registration:"); !errors.Is(err, ErrCrossSlot) ||
			!strings.Contains(err.Error(), "in slot 100, leases under \"{sipreg}:\" in slot 200") {
			t.Errorf("another slot: %v, want ErrCrossSlot", err)
		}
		if err := c.CheckStorePrefix("{same}:registration:"); err != nil {
			t.Errorf("another tag in the same slot: %v", err)
		}
		if err := c.CheckStorePrefix("{sipreg}:registration:"); err != nil {
			t.Errorf("the same tag: %v", err)
		}
	}
	_, err := c.FencedPutMany(t.Context(), "{other}:registration:", []registration.Record{{TrunkRef: "t1", Fence: 1}}, time.Hour)
	if !errors.Is(err, ErrCrossSlot) {
		t.Errorf("fenced put across slots = %v, want ErrCrossSlot", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"{sipreg}:lease:": 1, "{other}:registration:": 2, "{same}:registration:": 1}
	if !maps.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
}
