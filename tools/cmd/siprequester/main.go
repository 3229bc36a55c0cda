// Command siprequester serves Routr v2's Requester gRPC API and talks SIP (UDP, TCP)
// straight to the target: a stand-in for Routr's Requester when there is no EdgePort, for
// Kamailio tests and plain registrars. See package sipreg.dev/tools/siprequester.
//
// Usage:
//
//	siprequester [--listen 0.0.0.0:51909] [--sip-host 127.0.0.1] [--transaction-timeout 32s] [--log-level info]
//
// --listen defaults to $BIND_ADDR, else 0.0.0.0:51909 (Routr's Requester port);
// --log-level defaults to $LOGS_LEVEL, else info. Once the gRPC listener is open it prints
// "siprequester listening on <addr>" on stdout. SIGTERM or SIGINT stops it, exit status 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"sipreg.dev/tools/grpcserve"
	"sipreg.dev/tools/siprequester"
)

func main() {
	grpcserve.Main(func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		err := run(ctx, args, os.Getenv, stdout, stderr)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "siprequester:", err)
			return 1
		}
		return 0
	})
}

// run parses args, serves until ctx is done and then stops the server.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("siprequester", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", envOr(getenv, "BIND_ADDR", "0.0.0.0:51909"), "gRPC listen address (default from $BIND_ADDR)")
	sipHost := fs.String("sip-host", "127.0.0.1", "IP address of the SIP sockets (UDP and TCP, ephemeral ports); written into Via and Contact")
	timeout := fs.Duration("transaction-timeout", siprequester.DefaultTransactionTimeout, "SIP transaction timeout, then REQUEST_TIMEOUT (at most 32s)")
	level := fs.String("log-level", envOr(getenv, "LOGS_LEVEL", "info"), "debug, info, warn or error (default from $LOGS_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	srv, err := siprequester.New(siprequester.Options{ListenHost: *sipHost, Logger: log, TransactionTimeout: *timeout})
	if err != nil {
		return err
	}
	defer srv.Stop()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	return grpcserve.ServeUntil(ctx, "siprequester", stdout, lis, srv.Serve, func() error {
		log.Info("stopping")
		srv.Stop()
		return nil
	})
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
