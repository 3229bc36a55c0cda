// Package cli is the registry binary's client of a running registry's control API: the
// subcommands list, get, explain, force and watch (so `docker exec <container> registry
// list` works). The binary's main asks IsCommand, then hands the arguments to Run;
// Usage adds the subcommands to the top-level usage.
//
// One file per job: cli.go parses the command line, builds the Connect client and maps
// errors to exit codes; list.go, get.go (get and force), explain.go and watch.go run the
// subcommands; format.go holds the shared rendering (state names, colours, times, the
// table, JSON); tty_*.go tells whether stdout is a terminal. The SIP text of explain's
// REGISTER is rendered by the subpackage siptext.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
)

// Defaults of the client subcommands.
const (
	defaultAddr    = "127.0.0.1:51910"
	defaultTimeout = 10 * time.Second
	// forceTimeout is force's default deadline: the server waits up to 45 s for the
	// outcome of the REGISTERs it forces, so 10 s would cut most force --all calls.
	forceTimeout = 60 * time.Second
)

// Exit codes of the client subcommands.
const (
	exitOK     = 0
	exitFailed = 1 // the call failed, or its answer reports a failure
	exitUsage  = 2
)

// clientCommand is one subcommand that talks to a running registry's control API.
type clientCommand struct {
	name    string
	args    string // the synopsis after the name
	summary string
	// outputs are the accepted -o values; the first is the default.
	outputs []string
	// minArgs and maxArgs bound the positional arguments.
	minArgs, maxArgs int
	// timeout is the default of --timeout, the deadline of the call.
	timeout time.Duration
	// stream: the call has no deadline (watch); --timeout bounds only connecting.
	stream bool
	// flags adds the subcommand's own flags.
	flags func(*flag.FlagSet, *cmdFlags)
	run   func(context.Context, *session, []string) error
}

// cmdFlags holds the subcommands' own flags (each uses the few that concern it).
type cmdFlags struct {
	states stateList
	all    bool
}

// clientCommands lists the subcommands, in the order usage shows them.
var clientCommands = []*clientCommand{
	{name: "list", args: "[--state S]... [-o table|json|wide]", summary: "every registration, one row per trunk, sorted by ref",
		outputs: []string{"table", "json", "wide"}, maxArgs: 0, timeout: defaultTimeout,
		flags: stateFlag, run: runList},
	{name: "get", args: "REF [-o table|json]", summary: "one trunk's registration in detail",
		outputs: []string{"table", "json", "wide"}, minArgs: 1, maxArgs: 1, timeout: defaultTimeout, run: runGet},
	{name: "explain", args: "REF [-o table|json]", summary: "the next REGISTER of a trunk (secrets redacted), and why and when",
		outputs: []string{"table", "json", "wide"}, minArgs: 1, maxArgs: 1, timeout: defaultTimeout, run: runExplain},
	{name: "force", args: "REF | --all [-o table|json]", summary: "REGISTER now, skipping the schedule, and show the outcome",
		outputs: []string{"table", "json", "wide"}, maxArgs: 1, timeout: forceTimeout,
		flags: func(fs *flag.FlagSet, f *cmdFlags) {
			fs.BoolVar(&f.all, "all", false, "force every trunk (on every replica)")
		}, run: runForce},
	{name: "watch", args: "[REF] [--state S]... [-o table|json]", summary: "follow changes: a live table on a terminal, one line per change otherwise",
		outputs: []string{"table", "json"}, maxArgs: 1, timeout: defaultTimeout, stream: true,
		flags: stateFlag, run: runWatch},
}

func stateFlag(fs *flag.FlagSet, f *cmdFlags) {
	fs.Var(&f.states, "state", "only this state (repeat it or separate with commas): "+strings.Join(stateNames(), ", "))
}

// lookupClientCommand returns the client subcommand called name, or nil.
func lookupClientCommand(name string) *clientCommand {
	for _, c := range clientCommands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// terminal is what the client subcommands know about where they write.
type terminal struct {
	stdout, stderr io.Writer
	// tty: stdout is a terminal (watch redraws its table in place; colours allowed).
	tty bool
	// getenv reads the environment (CONTROL_API_TOKEN, NO_COLOR).
	getenv func(string) string
	now    func() time.Time
}

// osTerminal describes the process's own stdout and environment.
func osTerminal(stdout, stderr io.Writer) terminal {
	f, ok := stdout.(*os.File)
	return terminal{stdout: stdout, stderr: stderr, tty: ok && isTerminal(f), getenv: os.Getenv, now: time.Now}
}

// session is one client subcommand's call: the client and how to show its answer.
type session struct {
	client  registryv1connect.RegistrationServiceClient
	addr    string
	out     io.Writer
	tty     bool
	color   bool
	output  string
	now     func() time.Time
	timeout time.Duration
	flags   *cmdFlags
}

// usageError is a mistake on the command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// reportedError is a failure whose details the subcommand already printed: exit 1
// with one line.
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }

// IsCommand reports whether args start with the name of a client subcommand.
func IsCommand(args []string) bool {
	return len(args) > 0 && lookupClientCommand(args[0]) != nil
}

// Run runs the client subcommand args[0] names (IsCommand(args) must hold), writing to
// stdout and stderr, and returns the exit code: 0 ok, 1 the call failed or its answer
// reports a failure, 2 usage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runClient(ctx, args, osTerminal(stdout, stderr))
}

// runClient runs a client subcommand (args[0] names it) and returns the exit code.
func runClient(ctx context.Context, args []string, term terminal) int {
	cmd := lookupClientCommand(args[0])
	s, pos, err := cmd.parse(args[1:], term)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil {
		err = cmd.run(ctx, s, pos)
	}
	return exitCode(term.stderr, cmd, err)
}

// exitCode prints err as one line (none for flag errors, which the flag set printed)
// and maps it to the exit code.
func exitCode(stderr io.Writer, cmd *clientCommand, err error) int {
	var usage *usageError
	var reported *reportedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "registry %s: %s\n", cmd.name, usage.msg)
		fmt.Fprintf(stderr, "usage: registry %s %s\n", cmd.name, cmd.args)
		return exitUsage
	case errors.Is(err, errFlags):
		return exitUsage
	case errors.As(err, &reported):
		fmt.Fprintf(stderr, "registry: %s\n", oneLine(reported.msg))
		return exitFailed
	}
	fmt.Fprintf(stderr, "registry: %s: %s\n", codeName(connect.CodeOf(err)), oneLine(errorMessage(err)))
	return exitFailed
}

// errFlags is a flag error the flag set has printed already.
var errFlags = errors.New("bad flags")

// codeName is the gRPC name of a status code, as grpcurl shows it (NotFound, Unavailable).
func codeName(c connect.Code) string { return codes.Code(c).String() }

// errorMessage is the server's (or the transport's) message, without the code prefix.
func errorMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// parse reads the flags (anywhere among the arguments) and sets up the session.
func (c *clientCommand) parse(args []string, term terminal) (*session, []string, error) {
	fs := flag.NewFlagSet("registry "+c.name, flag.ContinueOnError)
	fs.SetOutput(term.stderr)
	var (
		addr, token, protocol, output string
		timeout                       time.Duration
		f                             cmdFlags
	)
	fs.StringVar(&addr, "addr", defaultAddr, "control API address: host:port, or an http:// or https:// URL")
	fs.StringVar(&token, "token", "", "bearer token (default $CONTROL_API_TOKEN)")
	timeoutHelp := "deadline of the call"
	if c.stream {
		timeoutHelp = "deadline of connecting (the stream itself has none)"
	}
	fs.DurationVar(&timeout, "timeout", c.timeout, timeoutHelp)
	fs.StringVar(&protocol, "protocol", "connect", "connect or grpc (gRPC over HTTP/2, cleartext h2c for http://)")
	fs.StringVar(&output, "o", c.outputs[0], "output: "+strings.Join(c.outputs, ", "))
	fs.StringVar(&output, "output", c.outputs[0], "same as -o")
	if c.flags != nil {
		c.flags(fs, &f)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: registry %s %s\n  %s\n\nflags:\n", c.name, c.args, c.summary)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, errFlags
	}
	if len(pos) < c.minArgs || len(pos) > c.maxArgs {
		return nil, nil, c.argCountError(pos)
	}
	if !slices.Contains(c.outputs, output) {
		return nil, nil, usagef("-o %q: want one of %s", output, strings.Join(c.outputs, ", "))
	}
	if token == "" {
		token = term.getenv("CONTROL_API_TOKEN")
	}
	if timeout <= 0 {
		return nil, nil, usagef("--timeout %s: want a positive duration", timeout)
	}
	client, err := newClient(addr, strings.TrimSpace(token), protocol, timeout)
	if err != nil {
		return nil, nil, err
	}
	if c.stream {
		timeout = 0
	}
	return &session{
		client: client, addr: addr, out: term.stdout, tty: term.tty, output: output, now: term.now,
		color:   term.tty && term.getenv("NO_COLOR") == "",
		timeout: timeout, flags: &f,
	}, pos, nil
}

func (c *clientCommand) argCountError(pos []string) error {
	switch {
	case len(pos) > c.maxArgs && c.maxArgs == 0:
		return usagef("unexpected argument %q", pos[0])
	case len(pos) > c.maxArgs:
		return usagef("unexpected argument %q", pos[c.maxArgs])
	}
	return usagef("missing trunk ref")
}

// parseInterleaved parses flags placed before, between or after the positional
// arguments (the flag package alone stops at the first of these); after "--" everything
// is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// call returns a context bounded by the session's deadline (none when it is 0).
func (s *session) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// newClient builds the generated Connect client for addr. grpc speaks gRPC over HTTP/2
// (cleartext h2c for an http address, as the registry serves it); connect speaks the
// Connect protocol over HTTP/1.1 (HTTP/2 too with https).
func newClient(addr, token, protocol string, dialTimeout time.Duration) (registryv1connect.RegistrationServiceClient, error) {
	base, err := baseURL(addr)
	if err != nil {
		return nil, err
	}
	var opts []connect.ClientOption
	var protos http.Protocols
	secure := strings.HasPrefix(base, "https://")
	switch protocol {
	case "connect":
		protos.SetHTTP1(true)
		protos.SetHTTP2(secure)
	case "grpc":
		opts = append(opts, connect.WithGRPC())
		protos.SetHTTP2(secure)
		protos.SetUnencryptedHTTP2(!secure)
	default:
		return nil, usagef("--protocol %q: want connect or grpc", protocol)
	}
	var rt http.RoundTripper = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		TLSHandshakeTimeout: dialTimeout,
		Protocols:           &protos,
	}
	if token != "" {
		rt = bearerTransport{next: rt, value: "Bearer " + token}
	}
	return registryv1connect.NewRegistrationServiceClient(&http.Client{Transport: rt}, base, opts...), nil
}

// baseURL turns host:port (or a URL) into the client's base URL.
func baseURL(addr string) (string, error) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", usagef("--addr %q: want host:port or an http:// or https:// URL", addr)
		}
		return strings.TrimSuffix(u.String(), "/"), nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", usagef("--addr %q: want host:port", addr)
	}
	return "http://" + addr, nil
}

// bearerTransport sends the Authorization header with every request (unary calls and
// streams alike).
type bearerTransport struct {
	next  http.RoundTripper
	value string
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", b.value)
	return b.next.RoundTrip(r)
}

// Usage lists the client subcommands for the top-level usage.
func Usage(w io.Writer) {
	fmt.Fprintf(w, "\nclient subcommands (talk to a running registry's control API, default %s):\n", defaultAddr)
	for _, c := range clientCommands {
		fmt.Fprintf(w, "  registry %s %s\n        %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "  common flags: --addr, --token (or $CONTROL_API_TOKEN), --timeout, --protocol connect|grpc, -o\n")
	fmt.Fprintf(w, "  exit codes: 0 ok, 1 the call failed, 2 usage\n")
}
