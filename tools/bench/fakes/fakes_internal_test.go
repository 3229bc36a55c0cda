package fakes

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestParseCSeq(t *testing.T) {
	for in, want := range map[string]int{"7 REGISTER": 7, " 12  register ": 12, "7 INVITE": -1, "x REGISTER": -1, "": -1, "-1 REGISTER": -1} {
		if got := parseCSeq(in); got != want {
			t.Errorf("parseCSeq(%q) = %d, want %d", in, got, want)
		}
	}
}

// register sends one REGISTER for user to q with a Call-ID and CSeq.
func register(t *testing.T, q *OKRequester, user, callID string, cseq int) {
	t.Helper()
	_, err := q.SendMessage(context.Background(), &requesterv2beta1.SendMessageRequest{
		Target: "10.0.0.1:5060",
		Message: &sipmessagev2beta1.SIPMessage{
			CallId:     &sipmessagev2beta1.CallID{CallId: callID},
			To:         &sipmessagev2beta1.To{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "x"}}},
			Expires:    &sipmessagev2beta1.Expires{Expires: 600},
			Extensions: []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: fmt.Sprintf("%d REGISTER", cseq)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrackingRequesterWatch(t *testing.T) {
	q := NewTrackingRequester(3)
	register(t, q, "a", "call-a", 1)
	register(t, q, "b", "call-b", 1)
	register(t, q, "a", "call-a", 2)
	if last, ok := q.LastOf("a"); !ok || last.CallID != "call-a" || last.CSeq != 2 {
		t.Fatalf("LastOf(a) = %+v, %v", last, ok)
	}
	if _, ok := q.LastOf("c"); ok {
		t.Fatal("LastOf(c): a REGISTER that never came")
	}

	mark := time.Now()
	done := q.WatchFrom([]string{"a", "b", "c"}, mark)
	register(t, q, "a", "call-a", 3)
	register(t, q, "a", "call-a", 4) // not the first after the mark: ignored
	register(t, q, "b", "call-new", 1)
	select {
	case <-done:
		t.Fatal("done before c got a REGISTER")
	default:
	}
	got, last := q.Watched()
	if !last.IsZero() || len(got) != 2 {
		t.Fatalf("watched = %v, %v; want two users and no last", got, last)
	}
	if a := got["a"]; a.Before.CSeq != 2 || a.After.CSeq != 3 || a.After.CallID != "call-a" || a.After.At.Before(mark) {
		t.Fatalf("a: before %+v after %+v", *a.Before, *a.After)
	}
	if b := got["b"]; b.Before.CallID != "call-b" || b.After.CallID != "call-new" {
		t.Fatalf("b: before %+v after %+v", *b.Before, *b.After)
	}
	register(t, q, "c", "call-c", 1)
	select {
	case <-done:
	default:
		t.Fatal("not done after every watched user got a REGISTER")
	}
	got, last = q.Watched()
	if c := got["c"]; c.Before != nil || c.After.CSeq != 1 || !last.Equal(c.After.At) {
		t.Fatalf("c: %+v, last %v", c, last)
	}
	if q.distinct.Load() != 3 {
		t.Fatalf("distinct %d, want 3", q.distinct.Load())
	}
	// Nobody to watch: done at once.
	select {
	case <-NewTrackingRequester(1).WatchFrom(nil, time.Now()):
	default:
		t.Fatal("watching no user: not done")
	}
}

func TestOKRequesterCountsDistinctTrunks(t *testing.T) {
	q := NewOKRequester(2)
	send := func(user string, expires int32) *sipmessagev2beta1.SIPMessage {
		t.Helper()
		resp, err := q.SendMessage(context.Background(), &requesterv2beta1.SendMessageRequest{
			Target: "10.0.0.1:5060",
			Message: &sipmessagev2beta1.SIPMessage{
				To:         &sipmessagev2beta1.To{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "x"}}},
				Expires:    &sipmessagev2beta1.Expires{Expires: expires},
				Extensions: []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: "7 REGISTER"}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMessage()
	}
	m := send("user1", 3600)
	if m.GetResponseType() != sipmessagev2beta1.ResponseType_OK || m.GetContact().GetExpires() != GrantedExpires ||
		m.GetExpires().GetExpires() != GrantedExpires || m.GetExtensions()[0].GetValue() != "7 REGISTER" {
		t.Fatalf("answer = %v", m)
	}
	send("user1", 600) // the same trunk again
	send("user2", 0)   // an unregister does not count
	select {
	case <-q.done:
		t.Fatal("done after one distinct trunk")
	default:
	}
	send("user2", 300)
	select {
	case <-q.done:
	default:
		t.Fatal("not done after two distinct trunks")
	}
	if q.calls.Load() != 4 || q.distinct.Load() != 2 {
		t.Fatalf("calls %d distinct %d, want 4 and 2", q.calls.Load(), q.distinct.Load())
	}
}

func TestFindByWatchWaitAfter(t *testing.T) {
	firstAt := make(chan time.Time, 1)
	w := NewFindByWatch(func(at time.Time) { firstAt <- at })
	before := time.Now()
	go func() { _, _ = w.Write([]byte("line\n")) }()
	at, err := w.waitAfter(context.Background(), before, nil)
	if err != nil || at.Before(before) {
		t.Fatalf("waitAfter = %v, %v", at, err)
	}
	if first := <-firstAt; !first.Equal(at) {
		t.Fatalf("onFirst got %v, waitAfter %v", first, at)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.waitAfter(ctx, at, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitAfter on a cancelled context = %v", err)
	}
}
