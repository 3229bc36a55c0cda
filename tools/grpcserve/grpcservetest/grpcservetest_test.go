package grpcservetest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"sipreg.dev/tools/grpcserve"
	"sipreg.dev/tools/grpcserve/grpcservetest"
)

func TestMain(m *testing.M) {
	grpcservetest.Main(m, func() { grpcserve.Main(run) })
}

// run is a tiny command: with no arguments it listens, says so on stderr, and serves
// nothing until ctx ends; any argument is refused with status 2.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "tool: no arguments, please")
		return 2
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	fmt.Fprintln(stderr, "tool: started", os.Getenv("TOOL_GREETING"))
	stop := make(chan struct{})
	err = grpcserve.ServeUntil(ctx, "tool", stdout, lis, func(l net.Listener) error {
		<-stop
		return l.Close()
	}, func() error { close(stop); return nil })
	if err != nil {
		return 1
	}
	return 0
}

func TestStartAndStop(t *testing.T) {
	cmd := grpcservetest.Start(t, "tool", []string{"TOOL_GREETING=hello"})
	if !strings.HasPrefix(cmd.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q", cmd.Addr)
	}
	cmd.Stop(t)
	if got := cmd.Stderr(); got != "tool: started hello\n" {
		t.Errorf("Stderr() = %q", got)
	}
}

func TestCheckExits(t *testing.T) {
	grpcservetest.CheckExits(t, run, []grpcservetest.ExitCase{
		{Name: "argument", Args: []string{"x"}, Want: 2},
	})
}
