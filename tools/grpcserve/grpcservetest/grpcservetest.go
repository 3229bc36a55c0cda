// Package grpcservetest runs a command built with package grpcserve from its own tests:
// the test binary, started again as the command, prints "<name> listening on <addr>"
// once it serves and must exit 0 on SIGTERM.
package grpcservetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runMainEnv, set to "1", makes TestMain run the command instead of the tests.
const runMainEnv = "GRPCSERVETEST_RUN_MAIN"

// StopTimeout is how long Stop waits for the command to exit after SIGTERM.
const StopTimeout = 10 * time.Second

// Main is the body of the TestMain of a command's tests: in a test binary started by
// Start it runs main, the command's own, and otherwise the tests.
func Main(m *testing.M, main func()) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// Command is a command started by Start.
type Command struct {
	// Addr is the address from the command's listening line.
	Addr string

	name   string
	cmd    *exec.Cmd
	stderr string     // the file that gets the command's stderr
	exited chan error // gets the Wait error once the command has exited
	waited bool       // Stop has received from exited
}

// Start runs the test binary as the command name, whose test's TestMain calls Main, with
// args and with env added to the environment. It waits for the first line on stdout,
// which must be "<name> listening on <addr>", and fails the test otherwise. The command
// is killed at the end of the test unless Stop has seen it exit.
func Start(t *testing.T, name string, env []string, args ...string) *Command {
	t.Helper()
	c := &Command{name: name, cmd: exec.Command(os.Args[0], args...), exited: make(chan error, 1)}
	c.cmd.Env = append(append(os.Environ(), env...), runMainEnv+"=1")
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close() // the command has its own descriptor
	c.stderr, c.cmd.Stderr = stderr.Name(), stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(stdout)
	line, readErr := lines.ReadString('\n')
	go func() {
		_, _ = io.Copy(io.Discard, lines)
		c.exited <- c.cmd.Wait()
	}()
	t.Cleanup(func() {
		if !c.waited {
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	if readErr != nil {
		t.Fatalf("%s: reading the listening line: %v; stderr:\n%s", name, readErr, c.Stderr())
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), name+" listening on ")
	if !ok {
		t.Fatalf("%s: first line = %q; stderr:\n%s", name, line, c.Stderr())
	}
	c.Addr = addr
	return c
}

// Stderr returns what the command has written to stderr so far.
func (c *Command) Stderr() string {
	data, err := os.ReadFile(c.stderr)
	if err != nil {
		return fmt.Sprintf("(stderr unreadable: %v)", err)
	}
	return string(data)
}

// Stop sends SIGTERM to the command and fails the test unless it exits with status 0
// within StopTimeout.
func (c *Command) Stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case err := <-c.exited:
		c.waited = true
		if err != nil {
			t.Fatalf("%s exit after SIGTERM: %v, want status 0; stderr:\n%s", c.name, err, c.Stderr())
		}
	case <-timer.C:
		t.Fatalf("%s: no exit %v after SIGTERM; stderr:\n%s", c.name, StopTimeout, c.Stderr())
	}
}

// ExitCase is a command line and the exit status a command's run must give for it.
type ExitCase struct {
	// Name names the subtest.
	Name string
	// Args are the command-line arguments.
	Args []string
	// Want is the exit status.
	Want int
}

// CheckExits runs each case as a subtest: it calls run, the command's own, with the
// case's Args, and fails unless run returns Want without printing anything on stdout.
// It is for command lines on which the command stops before serving.
func CheckExits(t *testing.T, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int, cases []ExitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			var stdout bytes.Buffer
			if got := run(t.Context(), tc.Args, &stdout, io.Discard); got != tc.Want {
				t.Errorf("run(%q) = %d, want %d", tc.Args, got, tc.Want)
			}
			if stdout.Len() != 0 {
				t.Errorf("run(%q) printed %q", tc.Args, stdout.String())
			}
		})
	}
}
