// Command registry keeps SIP trunks registered with their providers: a drop-in for
// Routr v2's Registry service (same config file, gRPC contracts, environment and ports).
//
//	registry [--config FILE]            run the service
//	registry validate [--config FILE]   check a config file and exit
//	registry --version                  print the version and exit
//
// The same binary is the operator's client of a running registry's control API (so
// `docker exec <container> registry list` works); the subcommands live in
// internal/cli:
//
//	registry list [--state S]... [-o table|json|wide]
//	registry get REF | explain REF | force REF|--all
//	registry watch [REF] [--state S]... [-o table|json]
//
// This package holds only the wiring: main.go reads the command line, serve.go builds
// and runs the service, tracing.go sets up OpenTelemetry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"sipreg.dev/services/registry/internal/cli"
	"sipreg.dev/services/registry/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if cli.IsCommand(args) {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return cli.Run(ctx, args, stdout, stderr)
	}
	cmd := "run"
	if len(args) > 0 && args[0] == "validate" {
		cmd, args = "validate", args[1:]
	}
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file (default $CONFIG_PATH, else "+config.DefaultPath+")")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: registry [validate] [--config FILE] | registry --version\n")
		fs.PrintDefaults()
		cli.Usage(fs.Output())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "registry: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "registry", version)
		return 0
	}
	path := config.Path(*cfgFlag)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "registry:", err)
		return 1
	}
	if cmd == "validate" {
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stderr); err != nil {
		fmt.Fprintln(stderr, "registry:", err)
		return 1
	}
	return 0
}
