// Command fakeapi serves a fake Routr API (the Trunks gRPC service) for tests and
// benchmarks; see package sipreg.dev/tools/fakeapi for the fixture format.
//
// Usage:
//
//	fakeapi [--listen 127.0.0.1:51907] [--fixture FILE] [--generate N]
//	        [--delay DURATION] [--fail CODE] [--findby-log FILE] [--log-level LEVEL]
//
// Once listening it prints one line, "fakeapi listening on <addr>", to stdout. It
// exits 0 on SIGTERM or SIGINT, 2 on bad flags and 1 on other errors.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc/codes"

	"sipreg.dev/tools/fakeapi"
	"sipreg.dev/tools/grpcserve"
)

func main() {
	grpcserve.Main(run)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakeapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:51907", "address to listen on (port 0 picks a free port)")
	fixture := fs.String("fixture", "", "YAML or JSON file of trunks, re-read when it changes")
	generate := fs.Int("generate", 0, "add this many generated trunks (trunk-000001 ...)")
	delay := fs.Duration("delay", 0, "answer every call after this delay")
	failName := fs.String("fail", "", "fail every call with this gRPC code (e.g. UNAVAILABLE)")
	findByLog := fs.String("findby-log", "", "append one line per FindBy call to this file")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: DEBUG, INFO, WARN or ERROR")
	if exit, ok := grpcserve.ParseFlags(fs, args); !ok {
		return exit
	}
	fail := codes.OK
	if *failName != "" {
		var err error
		if fail, err = fakeapi.ParseCode(*failName); err != nil {
			fmt.Fprintf(stderr, "fakeapi: --fail: %v\n", err)
			return 2
		}
	}
	if *generate < 0 {
		fmt.Fprintln(stderr, "fakeapi: --generate: must not be negative")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := serve(ctx, log, stdout, fakeapi.Options{Fixture: *fixture, Generate: *generate, Logger: log},
		*listen, *findByLog, *delay, fail); err != nil {
		log.Error("fakeapi stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, log *slog.Logger, stdout io.Writer, opts fakeapi.Options,
	listen, findByLog string, delay time.Duration, fail codes.Code) error {
	if findByLog != "" {
		f, err := os.OpenFile(findByLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("findby log: %w", err)
		}
		defer f.Close()
		opts.FindByLog = f
	}
	srv := fakeapi.New(opts)
	if err := srv.Reload(); err != nil {
		return err
	}
	srv.SetDelay(delay)
	srv.SetFail(fail)

	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return grpcserve.ServeUntil(ctx, "fakeapi", stdout, lis, srv.Serve, func() error {
		log.Info("shutting down")
		srv.Stop()
		return nil
	})
}
