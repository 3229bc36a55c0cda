package store_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"

	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// TestMiniredisServerDownAndBack closes the server under a running store, then
// restarts it on the same address: the same store recovers.
func TestMiniredisServerDownAndBack(t *testing.T) {
	b, m := miniBackend(t)
	s, _ := b.open(t, store.RedisOptions{})
	ctx := t.Context()
	if err := s.Put(ctx, storetest.Record("trunk-1")); err != nil {
		t.Fatalf("Put: %v", err)
	}

	m.Close()
	for op, err := range ops(t.Context, s, "trunk-1") {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with the server down: %v; want a connection error", op, err)
		}
	}

	if err := m.Restart(); err != nil {
		t.Fatalf("restart miniredis: %v", err)
	}
	redistest.Poll(t, 10*time.Second, func() error { return s.Ping(ctx) })
	if _, err := s.Get(ctx, "trunk-1"); err != nil {
		t.Errorf("Get after restart: %v", err)
	}
	if err := s.Put(ctx, storetest.Record("trunk-2")); err != nil {
		t.Errorf("Put after restart: %v", err)
	}
	if recs, err := s.List(ctx); err != nil || len(recs) != 2 {
		t.Errorf("List after restart = %d records, %v; want 2", len(recs), err)
	}
}

// TestRedisDownAtStart creates the store while nothing listens at its address.
func TestRedisDownAtStart(t *testing.T) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	addr := m.Addr()
	m.Close()
	t.Cleanup(m.Close)

	s := openStore(t, store.RedisOptions{Addrs: []string{addr}})
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping with nothing listening succeeded")
	}
	if err := m.StartAddr(addr); err != nil {
		t.Fatalf("start miniredis at %s: %v", addr, err)
	}
	redistest.Poll(t, 10*time.Second, func() error { return s.Ping(t.Context()) })
	if err := s.Put(t.Context(), storetest.Record("trunk-1")); err != nil {
		t.Errorf("Put once up: %v", err)
	}
}

// TestMiniredisBlockedServer holds every command at the server: a context
// deadline ends each call, and so does the read timeout without one.
func TestMiniredisBlockedServer(t *testing.T) {
	b, m := miniBackend(t)
	s, _ := b.open(t, store.RedisOptions{ReadTimeout: 200 * time.Millisecond})
	if err := s.Put(t.Context(), storetest.Record("trunk-1")); err != nil {
		t.Fatalf("Put: %v", err)
	}

	release := make(chan struct{})
	unblock := sync.OnceFunc(func() {
		m.Server().SetPreHook(nil)
		close(release)
	})
	// Registered after miniredis's Close, so run before it: Close waits for
	// the blocked commands.
	t.Cleanup(unblock)
	m.Server().SetPreHook(func(*server.Peer, string, ...string) bool {
		<-release
		return false
	})

	for op, err := range ops(withTimeout(t, 100*time.Millisecond), s, "trunk-1") {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s on a blocked server: %v; want context.DeadlineExceeded", op, err)
		}
	}

	// No deadline on the context: the read timeout ends the call.
	err := s.Ping(t.Context())
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("Ping on a blocked server without deadline: %v; want a timeout", err)
	}

	unblock()
	redistest.Poll(t, 10*time.Second, func() error { return s.Ping(t.Context()) })
	if _, err := s.Get(t.Context(), "trunk-1"); err != nil {
		t.Errorf("Get once unblocked: %v", err)
	}
}

// TestMiniredisOutOfMemory makes the server refuse writes as a full Redis does.
func TestMiniredisOutOfMemory(t *testing.T) {
	b, m := miniBackend(t)
	s, _ := b.open(t, store.RedisOptions{})
	const oom = "OOM command not allowed when used memory > 'maxmemory'."
	m.SetError(oom)
	if err := s.Put(t.Context(), storetest.Record("trunk-1")); err == nil || !strings.Contains(err.Error(), "redis put trunk-1: OOM") {
		t.Errorf("Put on a full Redis: %v", err)
	}
	_, err := s.PutMany(t.Context(), []registration.Record{storetest.Record("trunk-a"), storetest.Record("trunk-b")})
	if err == nil || !strings.Contains(err.Error(), "redis put many trunk-a: OOM") {
		t.Errorf("PutMany on a full Redis: %v", err)
	}
	m.SetError("")
	if err := s.Put(t.Context(), storetest.Record("trunk-1")); err != nil {
		t.Errorf("Put once memory is freed: %v", err)
	}
}

// TestRedisPasswordNotInErrors makes every operation fail in the ways a
// password could leak: refused credentials, server down, blocked server.
func TestRedisPasswordNotInErrors(t *testing.T) {
	const password = "Sup3r-s3cret-Pa55word"
	m := redistest.Mini(t).Mini
	m.RequireAuth("the-right-one")
	s := openStore(t, store.RedisOptions{Addrs: []string{m.Addr()}, Username: "default", Password: password})
	check := func(when string, ctx func() context.Context) {
		t.Helper()
		for op, err := range ops(ctx, s, "trunk-1") {
			if err == nil {
				t.Errorf("%s %s succeeded", op, when)
			} else if strings.Contains(err.Error(), password) {
				t.Errorf("%s %s: error contains the password: %v", op, when, err)
			}
		}
	}
	check("with a wrong password", t.Context)

	release := make(chan struct{})
	unblock := sync.OnceFunc(func() {
		m.Server().SetPreHook(nil)
		close(release)
	})
	t.Cleanup(unblock)
	m.Server().SetPreHook(func(*server.Peer, string, ...string) bool { <-release; return false })
	check("on a blocked server", withTimeout(t, 100*time.Millisecond))
	unblock()

	m.Close()
	check("with the server down", t.Context)

	// The right password works.
	m.RequireAuth(password)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	redistest.Poll(t, 10*time.Second, func() error { return s.Ping(t.Context()) })
	if err := s.Put(t.Context(), storetest.Record("trunk-1")); err != nil {
		t.Errorf("Put with the right password: %v", err)
	}

	_, err := store.NewRedis(store.RedisOptions{Addrs: []string{m.Addr()}, Password: password, ReadTimeout: -1})
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("NewRedis with a bad option: %v", err)
	}
}

// ops runs every network operation of s once, each
// with a context of its own from ctx, and returns each one's error.
func ops(ctx func() context.Context, s store.Store, trunkRef string) map[string]error {
	errs := map[string]error{
		"Put":    s.Put(ctx(), storetest.Record(trunkRef)),
		"Delete": s.Delete(ctx(), trunkRef),
		"Ping":   s.Ping(ctx()),
	}
	_, errs["Get"] = s.Get(ctx(), trunkRef)
	_, errs["List"] = s.List(ctx())
	_, errs["PutMany"] = s.PutMany(ctx(), []registration.Record{storetest.Record(trunkRef)})
	_, errs["GetMany"] = s.GetMany(ctx(), []string{trunkRef})
	return errs
}

// withTimeout returns contexts that end after d, each started when asked for.
func withTimeout(t *testing.T, d time.Duration) func() context.Context {
	return func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		t.Cleanup(cancel)
		return ctx
	}
}
