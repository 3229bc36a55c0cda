package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/tools/grpcserve/grpcservetest"
)

// TestMain lets the tests start this test binary as the fakeapi command.
func TestMain(m *testing.M) {
	grpcservetest.Main(m, main)
}

// startBinary runs fakeapi on a free port with args.
func startBinary(t *testing.T, args ...string) *grpcservetest.Command {
	t.Helper()
	return grpcservetest.Start(t, "fakeapi", nil, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
}

func client(t *testing.T, addr string) trunksv2beta1.TrunksClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return trunksv2beta1.NewTrunksClient(cc)
}

func TestBinaryServesFixtureAndLogsFindBy(t *testing.T) {
	dir := t.TempDir()
	fixture := filepath.Join(dir, "trunks.yaml")
	if err := os.WriteFile(fixture, []byte("trunks: [{ref: a, sendRegister: true}, {ref: b}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "findby.log")
	cmd := startBinary(t, "--fixture", fixture, "--generate", "2", "--findby-log", logFile)
	c := client(t, cmd.Addr)
	for range 3 {
		resp, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetItems()); n != 3 {
			t.Fatalf("FindBy() gave %d trunks, want 3", n)
		}
	}
	cmd.Stop(t)
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 3 {
		t.Errorf("findby log has %d lines, want 3", n)
	}
}

func TestBinaryFaultFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want codes.Code
	}{
		{"fail", []string{"--fail", "UNAVAILABLE"}, codes.Unavailable},
		{"fail by number", []string{"--fail", "13"}, codes.Internal},
		{"delay", []string{"--delay", "1h"}, codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := startBinary(t, append([]string{"--generate", "1"}, tt.args...)...)
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			_, err := client(t, cmd.Addr).FindBy(ctx, &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
			if status.Code(err) != tt.want {
				t.Errorf("FindBy() error = %v, want %v", err, tt.want)
			}
			cmd.Stop(t)
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	grpcservetest.CheckExits(t, run, []grpcservetest.ExitCase{
		{Name: "unknown flag", Args: []string{"--nope"}, Want: 2},
		{Name: "bad code", Args: []string{"--fail", "SOMETIMES"}, Want: 2},
		{Name: "negative generate", Args: []string{"--generate", "-1"}, Want: 2},
		{Name: "extra argument", Args: []string{"extra"}, Want: 2},
		{Name: "missing fixture", Args: []string{"--listen", "127.0.0.1:0", "--fixture", missing}, Want: 1},
		{Name: "bad listen address", Args: []string{"--listen", "nowhere"}, Want: 1},
	})
}
