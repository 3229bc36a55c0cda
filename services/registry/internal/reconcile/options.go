package reconcile

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/upstream"
)

// Observer receives what the reconciler does, for metrics. Every method must be cheap
// and safe for concurrent use.
type Observer interface {
	// Sent is called after every SendMessage: outcome is a class name
	// (ok, challenge, interval-too-brief, bad-extension, rejected, transient, error).
	Sent(outcome string, took time.Duration)
	// Discovery is called after every FindBy, with its error (nil on success).
	Discovery(trunks int, err error)
	// Store is called when the store becomes unreachable or reachable again.
	Store(err error)
	// Lapsed is called when a binding expired before its refresh started (the
	// registry fell behind its schedule).
	Lapsed()
}

type nopObserver struct{}

func (nopObserver) Sent(string, time.Duration) {}
func (nopObserver) Discovery(int, error)       {}
func (nopObserver) Store(error)                {}
func (nopObserver) Lapsed()                    {}

// Options wires a Reconciler.
type Options struct {
	Spec config.Spec
	// Store keeps the records: Redis, fenced by the cluster's leases with several
	// replicas (cluster.FencedStore); nil: the memory provider (store.Nop), whose
	// records live only in the engine.
	Store     store.Store
	Trunks    upstream.Trunks
	Requester upstream.Requester
	Logger    *slog.Logger
	Observer  Observer
	// Clock is time.Now unless set (tests).
	Clock func() time.Time
	// Coord is the discovery lease, the published desired set and the change feed
	// with several replicas on one Redis (nil: one replica).
	Coord Coordinator
	// Ownership decides which trunks this replica registers: ownership.Leases with
	// several replicas; nil: ownership.All (every trunk).
	Ownership Ownership
	// WatchBacklog bounds the unread events of one subscription (watch.DefaultWatchBacklog
	// when 0).
	WatchBacklog int
	// TracerProvider, when set, gets the engine's OpenTelemetry spans (trace.go); nil:
	// no spans, at no cost.
	TracerProvider trace.TracerProvider
}
