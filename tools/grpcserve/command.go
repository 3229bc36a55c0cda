package grpcserve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a command and exits: it calls run with a context that ends on SIGTERM or
// SIGINT, the command-line arguments, os.Stdout and os.Stderr, and exits with the status
// run returns.
func Main(run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	os.Exit(func() int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}())
}

// ParseFlags parses args into fs, which must use flag.ContinueOnError, and refuses
// positional arguments. ok is true when the command should go on; otherwise exit is its
// exit status: 0 after -help, 2 after a bad flag (which fs has reported) or positional
// arguments (reported as "<fs name>: unexpected arguments: [...]" on fs.Output()).
func ParseFlags(fs *flag.FlagSet, args []string) (exit int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}

// ServeUntil runs serve(lis) and prints "<name> listening on <lis address>" on stdout.
// If serve returns first, ServeUntil returns its error. If ctx ends first, it calls
// shutdown, which must make serve return, waits for serve and returns serve's error
// joined with shutdown's.
func ServeUntil(ctx context.Context, name string, stdout io.Writer, lis net.Listener,
	serve func(net.Listener) error, shutdown func() error) error {
	done := make(chan error, 1)
	go func() { done <- serve(lis) }()
	fmt.Fprintf(stdout, "%s listening on %s\n", name, lis.Addr())

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		stopErr := shutdown()
		err := <-done
		if stopErr != nil {
			return errors.Join(err, stopErr)
		}
		return err
	}
}
