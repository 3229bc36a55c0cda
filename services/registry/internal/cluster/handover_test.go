package cluster

import (
	"context"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/redistest"
)

func TestMarkLeaving(t *testing.T) {
	rs := redistest.Mini(t)
	mr, client := rs.Mini, rs.Client
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
