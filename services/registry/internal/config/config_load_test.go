package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/config"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	t.Setenv("CONTROL_API_TOKEN", "")
	path := writeConfig(t, string(readFile(t, filepath.Join("testdata", "routr-example.yaml"))))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
	if cfg.Spec.RegisterInterval != 20*time.Second || len(cfg.Spec.EdgePorts) != 2 {
		t.Errorf("spec = %+v", cfg.Spec)
	}
	if cfg.Spec.ControlToken != "" {
		t.Errorf("ControlToken = %q without CONTROL_API_TOKEN and controlToken", cfg.Spec.ControlToken)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "registry.yaml")
	cfg, err := config.Load(path)
	if err == nil {
		t.Fatalf("Load of a missing file: %+v", cfg)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v is not fs.ErrNotExist", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
}

func TestLoadInvalidFileNamesIt(t *testing.T) {
	path := writeConfig(t, withSpec(requester, api, "edgePorts: [{address: 'a:5060'}, {address: b}]"))
	_, err := config.Load(path)
	if err == nil {
		t.Fatal("Load accepted an invalid file")
	}
	checkOneLine(t, err.Error())
	if !strings.Contains(err.Error(), "spec.edgePorts[1].address") {
		t.Errorf("error %q does not name the field", err)
	}
}

func TestLoadControlToken(t *testing.T) {
	path := writeConfig(t, minimal("controlToken: from-file"))
	tests := []struct{ env, want string }{
		{"", "from-file"},
		{"from-env", "from-env"},
	}
	for _, tt := range tests {
		t.Run("env="+tt.env, func(t *testing.T) {
			t.Setenv("CONTROL_API_TOKEN", tt.env)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Spec.ControlToken != tt.want {
				t.Errorf("ControlToken = %q, want %q", cfg.Spec.ControlToken, tt.want)
			}
		})
	}
	t.Run("env without file value", func(t *testing.T) {
		t.Setenv("CONTROL_API_TOKEN", "only-env")
		cfg, err := config.Load(writeConfig(t, minimal()))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Spec.ControlToken != "only-env" {
			t.Errorf("ControlToken = %q", cfg.Spec.ControlToken)
		}
	})
}

func TestPath(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	if config.DefaultPath != "/etc/routr/registry.yaml" {
		t.Errorf("DefaultPath = %q, want Routr's CONFIG_PATH", config.DefaultPath)
	}
	if got := config.Path(""); got != config.DefaultPath {
		t.Errorf("Path() = %q, want %q", got, config.DefaultPath)
	}
	t.Setenv("CONFIG_PATH", "/env/registry.yaml")
	if got := config.Path(""); got != "/env/registry.yaml" {
		t.Errorf("Path() with CONFIG_PATH = %q", got)
	}
	if got := config.Path("/flag.yaml"); got != "/flag.yaml" {
		t.Errorf("Path(flag) = %q, the flag must win", got)
	}
}
