package cli

import (
	"net"
	"strings"
	"testing"
)

// TestCLIFailures: a failed call exits 1 with one line "registry: <code>: <message>".
func TestCLIFailures(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	blocked := serveFake(t, &fakeControl{regs: fixtures(), block: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		prefix string
	}{
		{"unknown trunk", []string{"get", "nobody", "--addr", addr}, `registry: NotFound: trunk "nobody" not found`},
		{"unreachable", []string{"list", "--addr", closed}, "registry: Unavailable: "},
		{"unreachable watch", []string{"watch", "--addr", closed}, "registry: Unavailable: "},
		{"unreachable grpc", []string{"list", "--addr", closed, "--protocol", "grpc"}, "registry: Unavailable: "},
		{"deadline", []string{"get", "acme", "--addr", blocked, "--timeout", "200ms"}, "registry: DeadlineExceeded: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, false, nil, tc.args...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, tc.prefix) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q: want 1 and one line starting %q", r.code, r.stdout, r.stderr, tc.prefix)
			}
		})
	}
}

// TestCLIUsage: command-line mistakes exit 2, help exits 0.
func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"list", "extra"},
		{"list", "--nope"},
		{"list", "-o", "yaml"},
		{"list", "--state", "happy"},
		{"list", "--protocol", "http3"},
		{"list", "--addr", "no-port"},
		{"list", "--timeout", "0s"},
		{"get"},
		{"get", "a", "b"},
		{"explain"},
		{"force"},
		{"force", "acme", "--all"},
		{"watch", "a", "b"},
		{"watch", "-o", "wide"},
	} {
		r := runCLI(t, false, nil, args...)
		if r.code != 2 || r.stderr == "" || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q: want 2 and a message", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, false, nil, "list", "-h"); r.code != 0 || !strings.Contains(r.stderr, "usage: registry list") {
		t.Errorf("list -h: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIFlagsAfterArguments: flags may follow the trunk ref; after "--" everything is
// an argument.
func TestCLIFlagsAfterArguments(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	r := runCLI(t, false, nil, "get", "acme", "-o", "json", "--addr", addr)
	if r.code != 0 || !strings.Contains(r.stdout, `"trunkRef": "acme"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, false, nil, "get", "--addr", addr, "--", "-o")
	if r.code != 1 || !strings.Contains(r.stderr, `trunk "-o" not found`) {
		t.Errorf("after --: exit %d, stderr %q", r.code, r.stderr)
	}
}
