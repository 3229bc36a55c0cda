package cluster_test

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// TestRedisCluster runs the batched scripts on a real Redis Cluster, to show
// that their keys share one hash slot. It runs only when REDIS_CLUSTER_ADDRS
// (comma-separated seed nodes) is set.
func TestRedisCluster(t *testing.T) {
	addrs := os.Getenv("REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		t.Skip("REDIS_CLUSTER_ADDRS not set")
	}
	ctx := t.Context()
	id := rand.Text()
	tag := "{sipreg-test-" + id + "}:"
	untagged := "sipreg-test-" + id + ":"
	st, err := store.NewRedis(store.RedisOptions{Addrs: strings.Split(addrs, ","), Prefix: tag + "registration:"})
	if err != nil {
		t.Fatal(err)
	}
	client := st.Client()
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want a Cluster client (give several seed nodes)", client)
	}
	t.Cleanup(func() {
		// ForEachMaster runs in parallel: each node deletes its own keys, one
		// by one (they may be in different slots).
		ctx := context.Background()
		err := client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			for _, match := range []string{"{sipreg-test-" + id + "}:*", untagged + "*"} {
				it := node.Scan(ctx, 0, match, 1000).Iterator()
				for it.Next(ctx) {
					if err := node.Del(ctx, it.Val()).Err(); err != nil {
						return err
					}
				}
				if err := it.Err(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		st.Close()
	})

	a := cluster.New(cluster.Options{Client: client, Prefix: tag, ReplicaID: "replica-a"})
	b := cluster.New(cluster.Options{Client: client, Prefix: tag, ReplicaID: "replica-b"})
	if err := a.CheckStorePrefix(st.Prefix()); err != nil {
		t.Fatal(err)
	}
	all := refs("trunk", 5000)
	got, err := a.Claim(ctx, all)
	if err != nil || len(got) != len(all) {
		t.Fatalf("claim: %d, %v", len(got), err)
	}
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew: %v, %v", lost, err)
	}
	recs := []registration.Record{{TrunkRef: "trunk-1", Fence: 1, LastReason: "A"}}
	if refused, err := a.FencedPutMany(ctx, st.Prefix(), recs, time.Hour); err != nil || len(refused) != 0 {
		t.Fatalf("fenced put: %v, %v", refused, err)
	}
	if err := a.Release(ctx, []string{"trunk-1"}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Claim(ctx, []string{"trunk-1", "trunk-2"}); err != nil || !maps.Equal(got, map[string]int64{"trunk-1": 2}) {
		t.Fatalf("B claim: %v, %v", got, err)
	}
	if refused, err := a.FencedPutMany(ctx, st.Prefix(), recs, time.Hour); err != nil || !slices.Equal(refused, []string{"trunk-1"}) {
		t.Fatalf("late fenced put: %v, %v", refused, err)
	}
	if rec, err := st.Get(ctx, "trunk-1"); err != nil || rec.Owner != "replica-a" || rec.Fence != 1 {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	if leader, err := a.TryDiscovery(ctx, time.Minute); err != nil || !leader {
		t.Fatalf("discovery: %v, %v", leader, err)
	}
	if err := a.PublishDesired(ctx, []byte("set")); err != nil {
		t.Fatal(err)
	}
	if blob, _, changed, err := b.FetchDesired(ctx, ""); err != nil || string(blob) != "set" || !changed {
		t.Fatalf("fetch: %q, %v, %v", blob, changed, err)
	}
	// A store prefix in another slot is refused before any write.
	if _, err := a.FencedPutMany(ctx, "sipreg:registration:", recs, time.Hour); !errors.Is(err, cluster.ErrCrossSlot) {
		t.Errorf("fenced put across slots: %v", err)
	}
	// Without a tag in the prefix, the lease keys get "{leases}".
	c := cluster.New(cluster.Options{Client: client, Prefix: untagged, ReplicaID: "replica-c"})
	if got, err := c.Claim(ctx, all[:2500]); err != nil || len(got) != 2500 {
		t.Fatalf("claim under an untagged prefix: %d, %v", len(got), err)
	}
	if lost, err := c.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew under an untagged prefix: %v, %v", lost, err)
	}
	if err := c.Release(ctx, all[:2500]); err != nil {
		t.Fatal(err)
	}
	// Membership works across slots too.
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(mctx) }()
	waitMembers(t, a, "replica-a")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
