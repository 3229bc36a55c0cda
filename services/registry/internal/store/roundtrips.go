package store

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTripCounter is a go-redis hook (client.AddHook) counting the commands and
// pipelines sent, each once, leaving out the handshake of new connections.
type RoundTripCounter struct{ n atomic.Int64 }

// Count returns the round trips counted so far.
func (h *RoundTripCounter) Count() int64 { return h.n.Load() }

// Reset starts counting again from zero.
func (h *RoundTripCounter) Reset() { h.n.Store(0) }

// DialHook passes dials through.
func (h *RoundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts one command.
func (h *RoundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts one pipeline.
func (h *RoundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !handshake(c) }) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// handshake reports whether cmd is one go-redis sends to set up a new
// connection (it runs them through the client's hooks too). The store never
// sends them itself.
func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "select", "client", "readonly":
		return true
	}
	return false
}
