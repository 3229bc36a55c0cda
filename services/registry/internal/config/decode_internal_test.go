package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// decodeFields calls UnmarshalYAML on every tagged field: each must have one.
func TestTaggedFieldsAreUnmarshalers(t *testing.T) {
	unmarshaler := reflect.TypeFor[yaml.Unmarshaler]()
	for _, typ := range []reflect.Type{
		reflect.TypeFor[file](), reflect.TypeFor[specFile](), reflect.TypeFor[cacheFile](), reflect.TypeFor[edgePort](),
	} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Tag.Get("yaml") == "" {
				continue
			}
			if !reflect.PointerTo(f.Type).Implements(unmarshaler) {
				t.Errorf("%s.%s (%s) is not a yaml.Unmarshaler", typ.Name(), f.Name, f.Type)
			}
		}
	}
}

// The environment through an injected getenv: CONFIG_PATH for Path, CONTROL_API_TOKEN
// for Load.
func TestEnvOverrides(t *testing.T) {
	getenv := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	paths := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"", nil, DefaultPath},
		{"", map[string]string{"CONFIG_PATH": "/env.yaml"}, "/env.yaml"},
		{"/flag.yaml", map[string]string{"CONFIG_PATH": "/env.yaml"}, "/flag.yaml"},
	}
	for _, tt := range paths {
		if got := path(tt.flag, getenv(tt.env)); got != tt.want {
			t.Errorf("path(%q) with %v = %q, want %q", tt.flag, tt.env, got, tt.want)
		}
	}

	file := filepath.Join(t.TempDir(), "registry.yaml")
	yml := "kind: Registry\napiVersion: v2beta1\nspec:\n  requesterAddr: r:1\n  apiAddr: a:2\n  edgePorts: [{address: 'e:3'}]\n"
	tokens := []struct {
		fileToken string
		env       map[string]string
		want      string
	}{
		{"", nil, ""},
		{"from-file", nil, "from-file"},
		{"from-file", map[string]string{"CONTROL_API_TOKEN": ""}, "from-file"},
		{"from-file", map[string]string{"CONTROL_API_TOKEN": "from-env"}, "from-env"},
		{"", map[string]string{"CONTROL_API_TOKEN": "from-env"}, "from-env"},
	}
	for _, tt := range tokens {
		content := yml
		if tt.fileToken != "" {
			content += "  controlToken: " + tt.fileToken + "\n"
		}
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := load(file, getenv(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Spec.ControlToken != tt.want {
			t.Errorf("controlToken %q with %v: ControlToken = %q, want %q", tt.fileToken, tt.env, cfg.Spec.ControlToken, tt.want)
		}
	}
}
