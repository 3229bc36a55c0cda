package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonpb "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorpb "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/grpcserve/grpcservetest"
)

// TestMain lets the tests start this test binary as the siprequester command.
func TestMain(m *testing.M) {
	grpcservetest.Main(m, main)
}

// TestBinary starts the command, once with $BIND_ADDR and once with --listen (which wins
// over $BIND_ADDR), answers one gRPC call, and exits 0 on SIGTERM.
func TestBinary(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  string
	}{
		"BIND_ADDR":         {env: "BIND_ADDR=127.0.0.1:0"},
		"--listen wins":     {env: "BIND_ADDR=256.0.0.1:1", args: []string{"--listen", "127.0.0.1:0"}},
		"all flags (debug)": {args: []string{"--listen", "127.0.0.1:0", "--sip-host", "127.0.0.1", "--transaction-timeout", "5s", "--log-level", "debug"}},
	} {
		t.Run(name, func(t *testing.T) {
			env := []string{"BIND_ADDR="}
			if tc.env != "" {
				env = append(env, tc.env)
			}
			cmd := grpcservetest.Start(t, "siprequester", env, tc.args...)
			if !strings.HasPrefix(cmd.Addr, "127.0.0.1:") {
				t.Fatalf("listening on %q; stderr:\n%s", cmd.Addr, cmd.Stderr())
			}

			conn, err := grpc.NewClient(cmd.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = requesterpb.NewRequesterClient(conn).SendMessage(ctx, &requesterpb.SendMessageRequest{
				Target: "127.0.0.1:5060", Method: processorpb.Method_REGISTER, Transport: commonpb.Transport_TLS,
				Message: &sipmessagepb.SIPMessage{},
			})
			if status.Code(err) != codes.Unknown {
				t.Errorf("TLS: error %v, want Unknown", err)
			}

			cmd.Stop(t)
		})
	}
}

func TestRunFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "loud"},
		{"--sip-host", "0.0.0.0"},
		{"--sip-host", "example.com"},
		{"--listen", "127.0.0.1:notaport"},
		{"extra"},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
