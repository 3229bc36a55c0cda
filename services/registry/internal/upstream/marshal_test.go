package upstream

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// pads are User-Agent paddings around the interesting sizes: the usual request, just
// below and above 1 KiB and the pooled buffer's size, and far above both.
var pads = []int{0, 600, 700, 1600, 1700, 1800, 5000}

// TestMarshalRequest: marshalRequest's bytes are proto.Marshal's, whatever the size,
// and a buffer it hands out is the pool's only when the bytes fit one; freed, it goes
// back and serves again without a trace of the request before.
func TestMarshalRequest(t *testing.T) {
	for _, pad := range pads {
		req := sizedRequest(t, pad, 1)
		want, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			data, err := marshalRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := data.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("pad %d: %d bytes differ from proto.Marshal's %d", pad, len(got), len(want))
			}
			if pooled := len(data) == 1 && cap(data[0].ReadOnlyData()) == reqBufSize; pooled != (len(want) <= reqBufSize) {
				t.Errorf("pad %d (%d bytes): pooled %v", pad, len(want), pooled)
			}
			data.Free()
		}
	}
	if _, err := marshalRequest("not a message"); err == nil {
		t.Error("a non-message marshalled")
	}
}

// TestSendMessageRequestBytes: whatever its size, the request reaches the Requester
// with the generated client's bytes, and requests sent at once from many goroutines
// (each buffer back in the pool as soon as its frame is written) each arrive intact.
func TestSendMessageRequestBytes(t *testing.T) {
	w := &wireRequester{answer: mustMarshal(t, routrOK())}
	rc, generated := dialWire(t, w)
	ctx := context.Background()
	for _, pad := range pads {
		req := sizedRequest(t, pad, 1)
		w.mu.Lock()
		w.calls = nil
		w.mu.Unlock()
		if _, err := generated.SendMessage(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.SendMessage(ctx, req); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		calls := w.calls
		w.mu.Unlock()
		if len(calls) != 2 || !bytes.Equal(calls[0].req, calls[1].req) {
			t.Fatalf("pad %d: not the generated client's bytes", pad)
		}
	}

	w.mu.Lock()
	w.calls = nil
	w.mu.Unlock()
	const goroutines, each = 8, 40
	want := map[string]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				req := sizedRequest(t, pads[(g+i)%len(pads)], uint32(g*each+i+1))
				b, err := proto.Marshal(req)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[string(b)] = true
				mu.Unlock()
				if _, err := rc.SendMessage(ctx, req); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.calls) != goroutines*each {
		t.Fatalf("%d calls, want %d", len(w.calls), goroutines*each)
	}
	for _, c := range w.calls {
		if !want[string(c.req)] {
			var got requesterv2beta1.SendMessageRequest
			err := proto.Unmarshal(c.req, &got)
			t.Fatalf("a request arrived that was never sent (%v): %v", err, extensions(got.GetMessage()))
		}
		delete(want, string(c.req))
	}
}

func extensions(m *sipmessagev2beta1.SIPMessage) string {
	var b strings.Builder
	for _, e := range m.GetExtensions() {
		fmt.Fprintf(&b, "%s: %.40s; ", e.GetName(), e.GetValue())
	}
	return b.String()
}
