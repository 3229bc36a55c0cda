package cluster

import (
	"testing"
	"time"
)

func TestSendWindowOpen(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c := &Cluster{held: map[string]lease{}, ttl: 10 * time.Second, margin: time.Second, now: func() time.Time { return now }}
	if c.SendWindowOpen() {
		t.Fatal("open before any lease")
	}
	c.mu.Lock()
	c.holdLocked("a", 1, now)
	c.mu.Unlock()
	if !c.SendWindowOpen() {
		t.Fatal("closed while a lease is valid")
	}
	now = now.Add(8999 * time.Millisecond)
	if !c.SendWindowOpen() {
		t.Fatal("closed before the lease's validity (TTL - margin) ran out")
	}
	now = now.Add(time.Millisecond)
	if c.SendWindowOpen() {
		t.Fatal("open once every lease ran out by the local clock (a paused replica resuming)")
	}
}
