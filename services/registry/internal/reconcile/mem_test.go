package reconcile

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// BenchmarkMemory100k registers 100,000 trunks in-process and reports the live heap
// per trunk and the allocations of one idle discovery tick (MEMPROFILE=file writes a
// heap profile).
func BenchmarkMemory100k(b *testing.B) {
	const n = 100000
	trunks := make([]*trunksv2beta1.Trunk, n)
	for i := range n {
		trunks[i] = &trunksv2beta1.Trunk{Ref: fmt.Sprintf("trunk-%06d", i), Name: fmt.Sprintf("Trunk %d", i), SendRegister: true,
			Uris:                []*trunksv2beta1.TrunkURI{{Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 5060, Transport: "UDP", User: fmt.Sprintf("user%06d", i), Enabled: true}},
			OutboundCredentials: &credentialsv2beta1.Credentials{Username: fmt.Sprintf("user%06d", i), Password: fmt.Sprintf("pass%06d", i)}}
	}
	for range b.N {
		api := &fakeAPI{trunks: trunks}
		done := make(chan struct{}, n)
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		req.noRecord = true
		spec := testSpec()
		spec.MaxInFlight, spec.RegistersPerSecond = 512, 1e9
		// The whole start is watched: the backlog holds every event of it.
		r := New(Options{Spec: spec, Store: storetest.NewMemory(), Trunks: api, Requester: req, WatchBacklog: n * 4})
		events, unsub := subscribeChan(r, n*4)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = r.Run(ctx) }()
		registered := 0
		for registered < n {
			ev, ok := <-events
			if !ok {
				b.Fatal("the subscription ended before every trunk registered")
			}
			if ev.Record.State == registration.StateRegistered {
				registered++
			}
		}
		unsub()
		close(done)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/n, "live-B/trunk")
		before := ms.TotalAlloc
		start := time.Now()
		r.discover(ctx)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "tick-ms")
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.TotalAlloc-before)/(1<<20), "tick-MiB")
		if f := os.Getenv("MEMPROFILE"); f != "" {
			out, _ := os.Create(f)
			_ = pprof.WriteHeapProfile(out)
			out.Close()
		}
		cancel()
	}
}
