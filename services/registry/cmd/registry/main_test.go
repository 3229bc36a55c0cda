package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "registry ") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestConfigPathErrors(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "unreadable.yaml")
	if err := os.WriteFile(unreadable, []byte("kind: Registry\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	cases := []struct {
		name string
		args []string
		env  string
		path string
	}{
		{"flag, missing file", []string{"--config", missing}, "", missing},
		{"CONFIG_PATH, missing file", nil, missing, missing},
		{"flag wins over CONFIG_PATH", []string{"--config", missing}, "/elsewhere.yaml", missing},
		{"validate, missing file", []string{"validate", "--config", missing}, "", missing},
		{"a directory", []string{"--config", dir}, "", dir},
	}
	if os.Geteuid() != 0 { // root reads any file
		cases = append(cases, struct {
			name string
			args []string
			env  string
			path string
		}{"unreadable file", []string{"--config", unreadable}, "", unreadable})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CONFIG_PATH", tc.env)
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero")
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.path) {
				t.Errorf("stderr %q: want one line naming %s", errb.String(), tc.path)
			}
		})
	}
}

func TestDefaultConfigPath(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	var out, errb bytes.Buffer
	if _, err := os.Stat("/etc/routr/registry.yaml"); err == nil {
		t.Skip("a real /etc/routr/registry.yaml exists on this machine")
	}
	if code := run([]string{"validate"}, &out, &errb); code == 0 {
		t.Fatal("exit 0 without any config file")
	}
	if !strings.Contains(errb.String(), "/etc/routr/registry.yaml") {
		t.Errorf("stderr %q does not name the default path", errb.String())
	}
}

// TestHelpListsClientCommands: the top-level help exits 0 and lists the client
// subcommands (internal/cli) too.
func TestHelpListsClientCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "registry watch") {
		t.Errorf("registry --help: exit %d, stderr %q", code, errb.String())
	}
}
