package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestMarkLeaving(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	a := New(Options{Client: client, ReplicaID: "a", LeaseTTL: time.Second})
	b := New(Options{Client: client, ReplicaID: "b", LeaseTTL: time.Second})
	ctx := context.Background()
	if leaving, err := b.Leaving(ctx, "a"); err != nil || leaving {
		t.Fatalf("a leaving before it said so: %v %v", leaving, err)
	}
	if err := a.MarkLeaving(ctx); err != nil {
		t.Fatal(err)
	}
	if leaving, err := b.Leaving(ctx, "a"); err != nil || !leaving {
		t.Fatalf("a not seen leaving: %v %v", leaving, err)
	}
	mr.FastForward(3*time.Second + time.Millisecond)
	if leaving, _ := b.Leaving(ctx, "a"); leaving {
		t.Error("the leaving mark outlived three lease TTLs")
	}
}
