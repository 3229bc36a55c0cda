package fakeapi

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

func TestFaults(t *testing.T) {
	req := &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}
	tests := []struct {
		name     string
		delay    time.Duration
		fail     codes.Code
		deadline time.Duration
		want     codes.Code
	}{
		{"delay past the client deadline", time.Hour, codes.OK, 50 * time.Millisecond, codes.DeadlineExceeded},
		{"fail unavailable", 0, codes.Unavailable, time.Minute, codes.Unavailable},
		{"fail internal", 0, codes.Internal, time.Minute, codes.Internal},
		{"delay then fail", time.Millisecond, codes.PermissionDenied, time.Minute, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Generate: 3})
			c := start(t, s)
			s.SetDelay(tt.delay)
			s.SetFail(tt.fail)
			ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
			defer cancel()
			if _, err := c.FindBy(ctx, req); status.Code(err) != tt.want {
				t.Fatalf("FindBy() error = %v, want %v", err, tt.want)
			}
			if _, err := c.Get(ctx, &trunksv2beta1.GetTrunkRequest{Ref: "trunk-000001"}); status.Code(err) != tt.want {
				t.Errorf("Get() error = %v, want %v", err, tt.want)
			}

			s.SetDelay(0)
			s.SetFail(codes.OK)
			resp, err := c.FindBy(t.Context(), req)
			if err != nil || len(resp.GetItems()) != 3 {
				t.Fatalf("after clearing the faults FindBy() = %d items, %v", len(resp.GetItems()), err)
			}
			if got := s.FindByCalls(); got != 2 {
				t.Errorf("FindByCalls() = %d, want 2", got)
			}
		})
	}
}

func TestStopAndServeAgain(t *testing.T) {
	s := New(Options{Generate: 1})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	c := trunksv2beta1.NewTrunksClient(dial(t, addr))
	req := &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}
	if _, err := c.FindBy(t.Context(), req); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Serve() after Stop = %v", err)
	}
	if _, err := c.FindBy(t.Context(), req); status.Code(err) != codes.Unavailable {
		t.Fatalf("FindBy() on a stopped server error = %v, want Unavailable", err)
	}

	lis2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	go func() { done <- s.Serve(lis2) }()
	t.Cleanup(func() { s.Stop(); <-done })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.FindBy(ctx, req, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("FindBy() after restart = %v", err)
	}
	// The call on the stopped server never arrived.
	if got := s.FindByCalls(); got != 2 {
		t.Errorf("FindByCalls() = %d, want 2 (counters survive a restart)", got)
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		in      string
		want    codes.Code
		wantErr bool
	}{
		{"UNAVAILABLE", codes.Unavailable, false},
		{"Unavailable", codes.Unavailable, false},
		{"deadline_exceeded", codes.DeadlineExceeded, false},
		{"DeadlineExceeded", codes.DeadlineExceeded, false},
		{"CANCELLED", codes.Canceled, false},
		{"ok", codes.OK, false},
		{"14", codes.Unavailable, false},
		{"17", 0, true},
		{"nope", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseCode(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCode(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
