package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sipreg-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-race", "-o", dir+"/",
		"sipreg.dev/services/registry/cmd/registry",
		"sipreg.dev/tools/cmd/fakeapi", "sipreg.dev/tools/cmd/fakerequester", "sipreg.dev/tools/cmd/siprequester")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	// The clients an on-call engineer uses, pinned in tools/go.mod.
	clients := exec.Command("go", "build", "-o", dir+"/", "github.com/fullstorydev/grpcurl/cmd/grpcurl", "github.com/bufbuild/buf/cmd/buf")
	clients.Stdout, clients.Stderr = os.Stderr, os.Stderr
	if err := clients.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build grpcurl and buf:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a started binary whose output lines are kept and can be waited for.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
	done  bool
	exit  error
}

// startProc starts bin (from binDir) with args and env; it is stopped (SIGTERM) at cleanup.
func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, bin, exec.Command(filepath.Join(binDir, bin), args...), env)
}

// startProcPath starts a program from PATH.
func startProcPath(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startCmd(t, bin, exec.Command(bin, args...), nil)
}

func startCmd(t *testing.T, bin string, cmd *exec.Cmd, env []string) *proc {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{t: t, name: bin, cmd: cmd}
	p.cond = sync.NewCond(&p.mu)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			p.cond.Broadcast()
		}
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		p.mu.Lock()
		p.done, p.exit = true, err
		p.mu.Unlock()
		p.cond.Broadcast()
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("E2E_SHOW_LOGS") == bin {
			t.Logf("--- %s output ---\n%s", bin, p.output())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit; it returns the exit error.
func (p *proc) stop() error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if !done {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.wait(30 * time.Second)
}

func (p *proc) wait(d time.Duration) error {
	timer := time.AfterFunc(d, func() { _ = p.cmd.Process.Kill(); p.cond.Broadcast() })
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.done {
		p.cond.Wait()
	}
	return p.exit
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits until a line satisfies match and returns it.
func (p *proc) waitLine(what string, d time.Duration, match func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, p.cond.Broadcast)
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for {
		for ; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				return p.lines[i]
			}
		}
		if p.done {
			p.t.Fatalf("%s exited (%v) before %s", p.name, p.exit, what)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: timed out waiting for %s", p.name, what)
		}
		p.cond.Wait()
	}
}

// listenAddr waits for "<name> listening on <addr>".
func (p *proc) listenAddr() string {
	line := p.waitLine("listening", 30*time.Second, func(l string) bool { return strings.Contains(l, " listening on ") })
	return strings.TrimSpace(line[strings.Index(line, " listening on ")+len(" listening on "):])
}

// logEntry waits for a JSON log line with msg and the given attributes.
func (p *proc) logEntry(what string, d time.Duration, msg string, attrs map[string]string) map[string]any {
	var found map[string]any
	p.waitLine(what, d, func(l string) bool {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != msg {
			return false
		}
		for k, v := range attrs {
			if fmt.Sprint(m[k]) != v {
				return false
			}
		}
		found = m
		return true
	})
	return found
}

// control waits for the registry's start line and returns the control API address it
// gives.
func (p *proc) control() string {
	p.t.Helper()
	return fmt.Sprint(p.logEntry("start line", 30*time.Second, "registry starting", nil)["control"])
}

// controlClient is a Connect client of the control API at addr; with a token, every
// call carries it as a bearer token.
func controlClient(addr, token string) registryv1connect.RegistrationServiceClient {
	var opts []connect.ClientOption
	if token != "" {
		opts = append(opts, connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
	}
	return registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+addr, opts...)
}

// waitRegistration polls GetRegistration of ref until pred holds of the answer (nil
// when the trunk is not found: unknown, or removed) and returns it. It fails the test
// after d, naming the trunk, want (what pred waits for) and the last answer seen.
func waitRegistration(t *testing.T, c registryv1connect.RegistrationServiceClient, ref string, d time.Duration,
	want string, pred func(*registryv1.Registration) bool) *registryv1.Registration {
	t.Helper()
	deadline := time.Now().Add(d)
	last := "no answer"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.GetRegistration(ctx, connect.NewRequest(&registryv1.GetRegistrationRequest{TrunkRef: ref}))
		cancel()
		var reg *registryv1.Registration
		switch {
		case err == nil:
			reg = resp.Msg.GetRegistration()
			last = fmt.Sprintf("%s (last answer %d %s, reason %q, error %q, granted %d s)",
				reg.GetState(), reg.GetLastResponseCode(), reg.GetLastResponseType(), reg.GetLastReason(),
				reg.GetLastError(), reg.GetGrantedExpiresSeconds())
		case connect.CodeOf(err) == connect.CodeNotFound:
			last = "not found"
		default:
			last = "error: " + err.Error()
		}
		if (err == nil || connect.CodeOf(err) == connect.CodeNotFound) && pred(reg) {
			return reg
		}
		if time.Now().After(deadline) {
			t.Fatalf("trunk %s: timed out after %s waiting for %s; last seen: %s", ref, d, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitState waits (up to d) until ref's registration is in state.
func waitState(t *testing.T, c registryv1connect.RegistrationServiceClient, ref string, d time.Duration,
	state registryv1.RegistrationState) *registryv1.Registration {
	t.Helper()
	return waitRegistration(t, c, ref, d, "state "+state.String(), func(r *registryv1.Registration) bool {
		return r.GetState() == state
	})
}

// waitRemoved waits (up to d) until ref is no longer listed: GetRegistration answers
// NotFound once a removed trunk's binding is gone and the registry forgot it.
func waitRemoved(t *testing.T, c registryv1connect.RegistrationServiceClient, ref string, d time.Duration) {
	t.Helper()
	waitRegistration(t, c, ref, d, "removal (NotFound)", func(r *registryv1.Registration) bool { return r == nil })
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeFile writes data into the test's temp dir and returns the path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// registryConfig renders a registry.yaml with the given extra spec lines.
func registryConfig(requester, api string, extra ...string) string {
	return registryConfigEdge(requester, api, "edge.test:5060", extra...)
}

// registryConfigEdge is registryConfig with the EdgePort address given.
func registryConfigEdge(requester, api, edge string, extra ...string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "kind: Registry\napiVersion: v2beta1\nmetadata:\n  region: test\nspec:\n")
	fmt.Fprintf(&b, "  requesterAddr: %s\n  apiAddr: %s\n", requester, api)
	fmt.Fprintf(&b, "  methods: [INVITE, MESSAGE]\n  edgePorts:\n    - address: %s\n      region: test\n", edge)
	for _, e := range extra {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

// metricsText is one scrape of the registry's /metrics at httpAddr.
func metricsText(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
