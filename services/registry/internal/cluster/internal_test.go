package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
)

func TestKeySlot(t *testing.T) {
	t.Parallel()
	if got := crc16("123456789"); got != 0x31C3 {
		t.Errorf("crc16 check value = %#x, want 0x31c3", got)
	}
	// Values from CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{
		"foo":                  12182,
		"somekey":              11058,
		"{user1000}.following": 3443,
		"foo{}{bar}":           8363,
		"foo{{bar}}zap":        4015,
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
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
		// Every lease and fence key is in one slot, whatever the ref holds.
		slot := keySlot(base + "lease:x")
		for _, ref := range []string{"t1", "{t2}", "}{", "a}b{c}"} {
			for _, k := range []string{base + "lease:" + ref, base + "fence:" + ref, base + "discovery", base + "desired"} {
				if keySlot(k) != slot {
					t.Errorf("prefix %q: %q is in slot %d, not %d", prefix, k, keySlot(k), slot)
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
func TestCheckStorePrefix(t *testing.T) {
	t.Parallel()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer client.Close()
	tagged := New(Options{Client: client, Prefix: "{sipreg}:", ReplicaID: "a"})
	if err := tagged.CheckStorePrefix("{sipreg}:registration:"); err != nil {
		t.Errorf("same tag: %v", err)
	}
	for _, sp := range []string{"sipreg:registration:", "{other}:registration:", "{}registration:"} {
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
	// Not a Cluster: anything goes.
	single := New(Options{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), ReplicaID: "a"})
	if err := single.CheckStorePrefix("sipreg:registration:"); err != nil {
		t.Errorf("single server: %v", err)
	}
}
