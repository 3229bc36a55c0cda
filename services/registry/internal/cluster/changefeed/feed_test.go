package changefeed_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster/changefeed"
	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// TestFeed follows the channel with one Feed and publishes with another, and by
// hand as the cluster's script does: the other replica's writes and every
// deletion reach Follow, the follower's own writes do not.
func TestFeed(t *testing.T) {
	s := redistest.Mini(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	channel := changefeed.Channel("test:")
	a := &changefeed.Feed{Client: s.Client, Channel: channel, Replica: "a"}
	b := &changefeed.Feed{Client: s.Client, Channel: channel, Replica: "b"}
	synced, changes := make(chan struct{}, 1), make(chan changefeed.Change, 10)
	done := make(chan error, 1)
	go func() {
		done <- a.Follow(ctx, func() { synced <- struct{}{} }, func(ch changefeed.Change) { changes <- ch })
	}()
	select {
	case <-synced:
	case <-ctx.Done():
		t.Fatal("never synced")
	}
	put := func(replica, ref string) {
		v, _, err := recordfmt.Encode(registration.Record{TrunkRef: ref}, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		msg := changefeed.Head(replica) + strconv.Itoa(len(v)) + ":" + string(v)
		if err := s.Client.Publish(ctx, channel, msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "own")
	put("b", "theirs")
	if err := b.PublishDeleted(ctx, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishDeleted(ctx, []string{"mine"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ch := <-changes:
			for _, r := range ch.Put {
				got = append(got, ch.Replica+" put "+r.TrunkRef)
			}
			for _, ref := range ch.Deleted {
				got = append(got, ch.Replica+" deleted "+ref)
			}
		case <-ctx.Done():
			t.Fatalf("got %q, then nothing", got)
		}
	}
	if want := []string{"b put theirs", "b deleted gone", "a deleted mine"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Follow = %v, want context.Canceled", err)
	}
}

// TestFeedWithoutClient: a Feed without client fails at once.
func TestFeedWithoutClient(t *testing.T) {
	f := &changefeed.Feed{Channel: changefeed.Channel("test:"), Replica: "a"}
	if err := f.PublishDeleted(t.Context(), []string{"x"}); err == nil {
		t.Error("PublishDeleted without client: no error")
	}
	if err := f.Follow(t.Context(), func() {}, func(changefeed.Change) {}); err == nil {
		t.Error("Follow without client: no error")
	}
}
