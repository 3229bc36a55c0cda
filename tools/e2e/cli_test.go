package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakerequester"
)

// cliResult is one run of a registry client subcommand.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliExec runs `registry ARGS` (stdout a pipe, so no colours and no live table) with
// env added to the environment, and returns its output and exit code.
func cliExec(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "registry"), args...)
	cmd.Env = append(cliEnviron(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("registry %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{out.String(), errb.String(), code}
}

// cliEnviron is the test's environment without a CONTROL_API_TOKEN of its own.
func cliEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTROL_API_TOKEN=") {
			env = append(env, kv)
		}
	}
	return env
}

// cliOK runs a subcommand that must succeed and returns its stdout.
func cliOK(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := cliExec(t, env, args...)
	if r.code != 0 {
		t.Fatalf("registry %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// TestCLIAgainstRegistry drives every client subcommand against the real registry
// (fake Routr API and Requester), token-protected: the tables, JSON, a forced
// REGISTER, a piped watch, and the exit codes of the failures.
func TestCLIAgainstRegistry(t *testing.T) {
	script := fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600},
		Trunks:  map[string]fakerequester.Behaviour{"carol": {Kind: fakerequester.KindForbidden}},
	}
	f := startFakes(t, script, []*trunksv2beta1.Trunk{
		trunk("alice", "sip.a.example", "alice", "alice-secret"),
		trunk("bob", "sip.b.example", "bob", "bob-secret"),
		trunk("carol", "sip.c.example", "carol", "carol-secret"),
	})
	reg, _ := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 1s", "httpAddr: 127.0.0.1:0",
		"controlAddr: 127.0.0.1:0"), "CONTROL_API_TOKEN="+token)
	start := reg.logEntry("start", 10*time.Second, "registry starting", nil)
	ctl := fmt.Sprint(start["control"])
	auth := []string{"--addr", ctl, "--token", token}

	// A piped watch from the start sees alice registered, one line per change.
	watch := startProc(t, "registry", nil, append([]string{"watch"}, auth...)...)
	watch.waitLine("alice registered in watch", 30*time.Second, func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 3 && f[1] == "alice" && f[2] == "registered" && strings.Contains(l, " code=200 ")
	})
	api := controlClient(ctl, token)
	waitState(t, api, "bob", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
	waitState(t, api, "carol", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REJECTED)
	watch.waitLine("carol rejected in watch", 30*time.Second, func(l string) bool {
		return strings.Contains(l, " carol rejected code=403 ")
	})
	if err := watch.stop(); err != nil {
		t.Errorf("watch stopped by SIGTERM: %v (want exit 0)", err)
	}

	t.Run("list", func(t *testing.T) {
		out := cliOK(t, nil, append([]string{"list"}, auth...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 6 || !strings.HasPrefix(lines[0], "REF ") || !strings.Contains(lines[0], "OWNER") {
			t.Fatalf("list:\n%s", out)
		}
		for i, want := range []string{"alice ", "bob ", "carol "} {
			if !strings.HasPrefix(lines[i+1], want) {
				t.Errorf("row %d %q: want %q first (sorted by ref)", i+1, lines[i+1], want)
			}
		}
		if !strings.Contains(lines[1], "sip:alice@sip.a.example") || !strings.Contains(lines[1], " registered ") ||
			!strings.Contains(lines[1], " 200 ") || !strings.Contains(lines[1], "refresh in ") {
			t.Errorf("alice's row %q", lines[1])
		}
		if !strings.Contains(lines[3], " rejected ") || !strings.Contains(lines[3], " 403 ") {
			t.Errorf("carol's row %q", lines[3])
		}
		if lines[5] != "3 trunks: 2 registered, 1 rejected" {
			t.Errorf("footer %q", lines[5])
		}
		if strings.Contains(out, "\x1b") {
			t.Error("colour codes in piped output")
		}
	})
	t.Run("list filtered, wide, json, grpc", func(t *testing.T) {
		out := cliOK(t, nil, append([]string{"list", "--state", "rejected", "-o", "wide"}, auth...)...)
		if !strings.Contains(out, "carol") || strings.Contains(out, "alice") || !strings.Contains(out, "CALL-ID") {
			t.Errorf("list --state rejected -o wide:\n%s", out)
		}
		out = cliOK(t, nil, append([]string{"list", "-o", "json", "--protocol", "grpc"}, auth...)...)
		var listed struct {
			Registrations []struct {
				TrunkRef  string `json:"trunkRef"`
				State     string `json:"state"`
				ExpiresAt string `json:"expiresAt"`
			} `json:"registrations"`
		}
		if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Registrations) != 3 {
			t.Fatalf("list -o json: %v\n%s", err, out)
		}
		if _, err := time.Parse(time.RFC3339, listed.Registrations[0].ExpiresAt); err != nil ||
			listed.Registrations[0].State != "REGISTRATION_STATE_REGISTERED" {
			t.Errorf("alice in json: %+v", listed.Registrations[0])
		}
	})
	t.Run("get", func(t *testing.T) {
		out := cliOK(t, nil, append([]string{"get", "carol"}, auth...)...)
		if !strings.Contains(out, "State:") || !strings.Contains(out, "rejected") || !strings.Contains(out, "403") {
			t.Errorf("get carol:\n%s", out)
		}
	})
	t.Run("explain", func(t *testing.T) {
		out := cliOK(t, nil, append([]string{"explain", "alice"}, auth...)...)
		if !strings.Contains(out, "Why:") || !strings.Contains(out, "REGISTER sip:sip.a.example") ||
			!strings.Contains(out, "X-Gateway-Auth: REDACTED") || strings.Contains(out, "alice-secret") {
			t.Errorf("explain alice:\n%s", out)
		}
	})
	t.Run("force", func(t *testing.T) {
		before := len(forKey(f.req.Requests(), "alice"))
		out := cliOK(t, nil, append([]string{"force", "alice"}, auth...)...)
		if !strings.Contains(out, "alice ") || !strings.Contains(out, " registered ") {
			t.Errorf("force alice:\n%s", out)
		}
		if after := len(forKey(f.req.Requests(), "alice")); after != before+1 {
			t.Errorf("force alice sent %d REGISTERs, want 1", after-before)
		}
		out = cliOK(t, nil, append([]string{"force", "--all"}, auth...)...)
		if !strings.Contains(out, "3 trunks: 2 registered, 1 rejected") {
			t.Errorf("force --all:\n%s", out)
		}
	})
	t.Run("token from the environment", func(t *testing.T) {
		cliOK(t, []string{"CONTROL_API_TOKEN=" + token}, "get", "bob", "--addr", ctl)
	})
	t.Run("failures", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			env    []string
			args   []string
			code   int
			stderr string
		}{
			{"wrong token", nil, []string{"list", "--addr", ctl, "--token", "wrong"}, 1, "registry: Unauthenticated: "},
			{"no token", nil, []string{"get", "alice", "--addr", ctl}, 1, "registry: Unauthenticated: "},
			{"wrong token from env", []string{"CONTROL_API_TOKEN=wrong"}, []string{"watch", "--addr", ctl}, 1, "registry: Unauthenticated: "},
			{"unknown trunk", nil, append([]string{"get", "nobody"}, auth...), 1, `registry: NotFound: trunk "nobody" not found`},
			{"unreachable", nil, []string{"list", "--addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--token", token}, 1, "registry: Unavailable: "},
			{"usage", nil, []string{"get", "--addr", ctl}, 2, "registry get: missing trunk ref"},
			{"unknown flag", nil, []string{"list", "--bogus"}, 2, "flag provided but not defined"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := cliExec(t, tc.env, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("exit %d, stderr %q: want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
				}
				if tc.code == 1 && strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("stderr %q: want one line", r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, token) {
					t.Error("the token was printed")
				}
			})
		}
	})
	for _, secret := range []string{"alice-secret", "bob-secret", token} {
		if strings.Contains(watch.output(), secret) {
			t.Errorf("secret %q in watch output", secret)
		}
	}
}
