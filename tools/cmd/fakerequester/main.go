// Command fakerequester serves a fake Routr Requester for tests and benchmarks: it
// answers SendMessage calls as a registrar would, following a script, and can append
// every call to a record file; see package sipreg.dev/tools/fakerequester for the
// script and record formats.
//
// Usage:
//
//	fakerequester [--listen 127.0.0.1:51909] [--script FILE] [--record FILE]
//	              [--default-expires N] [--log-level LEVEL]
//
// Without a script it answers every REGISTER at once with 200 OK, granting at most
// 600 s (or --default-expires). Once listening it prints one line,
// "fakerequester listening on <addr>", to stdout. It exits 0 on SIGTERM or SIGINT,
// 2 on bad flags and 1 on other errors.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"sipreg.dev/tools/fakerequester"
	"sipreg.dev/tools/grpcserve"
)

func main() {
	grpcserve.Main(run)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakerequester", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:51909", "address to listen on (port 0 picks a free port)")
	scriptFile := fs.String("script", "", "YAML or JSON script of behaviours per trunk")
	record := fs.String("record", "", "append every call as one JSON line to this file")
	defaultExpires := fs.Int("default-expires", 0, "largest expiry granted by behaviours that set none (default: the script's, else 600)")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: DEBUG, INFO, WARN or ERROR")
	if exit, ok := grpcserve.ParseFlags(fs, args); !ok {
		return exit
	}
	if *defaultExpires < 0 || *defaultExpires > 1<<31-1 {
		fmt.Fprintln(stderr, "fakerequester: --default-expires: out of range")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var script fakerequester.Script
	if *scriptFile != "" {
		var err error
		if script, err = fakerequester.LoadScript(*scriptFile); err != nil {
			log.Error("load script", "err", err)
			return 1
		}
	}
	if *defaultExpires > 0 {
		script.DefaultExpires = int32(*defaultExpires)
	}
	// Nothing reads the in-memory records of this process; the record file is the
	// way to see the calls from outside.
	opts := fakerequester.Options{Script: script, RecordFile: *record, NoRecord: true, Logger: log}
	if err := serve(ctx, log, stdout, opts, *listen); err != nil {
		log.Error("fakerequester stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, log *slog.Logger, stdout io.Writer, opts fakerequester.Options, listen string) error {
	if opts.RecordFile != "" {
		// Fail before announcing the address, not in Serve after it.
		f, err := os.OpenFile(opts.RecordFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("record file: %w", err)
		}
		f.Close()
	}
	srv := fakerequester.New(opts)
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	err = grpcserve.ServeUntil(ctx, "fakerequester", stdout, lis, srv.Serve, func() error {
		log.Info("shutting down", "calls", srv.Count(), "max_in_flight_per_trunk", srv.MaxInFlightPerKey())
		return srv.Close()
	})
	// Releases the record file when Serve ended on its own; after the shutdown it does nothing.
	_ = srv.Close()
	return err
}
