package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster/changefeed"
	"sipreg.dev/services/registry/internal/redistest"
)

// TestFencedPutScriptFrames runs the fenced write script itself with values of
// every byte (not records: the script must not look into them) and reads what
// it published: every value it wrote, byte for byte, in order, none it refused.
func TestFencedPutScriptFrames(t *testing.T) {
	long := strings.Repeat("\x00\xff:\"\\", 30000) // a length of 6 digits
	values := append(redistest.AwkwardValues(), long)
	redistest.Each(t, func(t *testing.T, s redistest.Server) {
		ctx := t.Context()
		prefix := s.Prefix
		if prefix == "" {
			prefix = "sipreg:"
		}
		c := New(Options{Client: s.Client, Prefix: prefix, ReplicaID: "replica-\x00:\"-a"})
		ps := s.Client.Subscribe(ctx, c.changesChannel())
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := c.Claim(ctx, []string{"t"})
		if err != nil || got["t"] == 0 {
			t.Fatalf("Claim = %v, %v", got, err)
		}
		keys := []string{}
		args := []any{c.changesChannel(), c.changeHead()}
		for i, v := range values {
			keys = append(keys, prefix+"rec:"+string(rune('a'+i)), c.leaseKey("t"))
			lease := c.leaseValue(got["t"])
			if i == 1 {
				lease = c.leaseValue(got["t"] + 1) // refused
			}
			args = append(args, lease, v, time.Hour.Milliseconds())
		}
		flags, err := fencedPutScript.Run(ctx, s.Client, keys, args...).Text()
		if want := "1" + "0" + strings.Repeat("1", len(values)-2); err != nil || flags != want {
			t.Fatalf("script = %q, %v; want %q", flags, err, want)
		}
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(msg.Payload, c.changeHead()) {
			t.Errorf("message %q does not start with the head %q", msg.Payload, c.changeHead())
		}
		replica, published, err := changefeed.SplitPut(msg.Payload)
		want := slices.Delete(slices.Clone(values), 1, 2)
		if err != nil || replica != c.ID() || !slices.Equal(published, want) {
			t.Fatalf("published %q: %q, %d values, %v; want %q, %q", msg.Payload, replica, len(published), err, c.ID(), want)
		}
		for i, v := range values {
			stored, err := s.Client.Get(ctx, keys[2*i]).Result()
			if i == 1 {
				if err == nil {
					t.Errorf("refused value stored as %q", stored)
				}
				continue
			}
			if err != nil || stored != v {
				t.Errorf("value %d stored as %q, %v; want %q", i, stored, err, v)
			}
		}
	})
}
