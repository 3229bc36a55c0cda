package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// deployDir is the repository's deploy/ directory (tests run in tools/e2e).
const deployDir = "../../deploy"

// deployPodIP stands for a pod's IP where the Kubernetes example's init container puts it.
const deployPodIP = "10.0.0.7"

// deployDoc is one YAML document of a file under deploy/.
type deployDoc struct {
	file string
	doc  map[string]any
}

// deployYAML parses every YAML file under deploy/ (every document of each).
func deployYAML(t *testing.T) []deployDoc {
	t.Helper()
	var docs []deployDoc
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			rel, _ := filepath.Rel(deployDir, path)
			docs = append(docs, deployDoc{file: rel, doc: doc})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no YAML under deploy/")
	}
	return docs
}

// deployGet walks a parsed YAML or JSON value: string keys index mappings, ints
// index sequences; nil when the path does not exist.
func deployGet(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

// deployFind returns the documents of a Kubernetes kind.
func deployFind(docs []deployDoc, kind string) []deployDoc {
	var out []deployDoc
	for _, d := range docs {
		if d.doc["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

// deployValidate checks a registry config with `registry validate`: exit 0, no warning.
func deployValidate(t *testing.T, where, cfg string) {
	t.Helper()
	path := writeFile(t, "registry.yaml", cfg)
	r := cliExec(t, nil, "validate", "--config", path)
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("%s: registry validate: exit %d\n%s%s", where, r.code, r.stdout, r.stderr)
	}
}

// TestDeployExamples parses every YAML file under deploy/, validates the registry
// configs they embed (the compose file's and the ConfigMap's, with a pod IP where the
// init container writes one) with `registry validate`, and checks what the
// Kubernetes example promises: 3 replicas in clusterMode, readiness on /healthz :8080,
// a Service for the control API on 51910.
func TestDeployExamples(t *testing.T) {
	docs := deployYAML(t)
	configs := 0
	for _, d := range docs {
		if d.file != "compose.yaml" {
			continue
		}
		for name, c := range deployGet(d.doc, "configs").(map[string]any) {
			content, _ := deployGet(c, "content").(string)
			if strings.Contains(content, "kind: Registry") {
				deployValidate(t, "compose.yaml configs."+name, content)
				configs++
			}
		}
		if deployGet(d.doc, "services", "registry", "configs", 0, "target") != "/etc/routr/registry.yaml" {
			t.Error("compose.yaml: the registry does not get its config at /etc/routr/registry.yaml")
		}
	}
	var clusterCfg string
	for _, d := range deployFind(docs, "ConfigMap") {
		if cfg, ok := deployGet(d.doc, "data", "registry.yaml").(string); ok {
			clusterCfg = strings.ReplaceAll(cfg, "@POD_IP@", deployPodIP)
			deployValidate(t, d.file+" data.registry.yaml", clusterCfg)
			configs++
		}
	}
	if configs != 2 {
		t.Errorf("%d registry configs found in deploy/, want 2 (compose and ConfigMap)", configs)
	}
	if !strings.Contains(clusterCfg, "clusterMode: true") || !strings.Contains(clusterCfg, "advertiseAddr: \""+deployPodIP+":51910\"") {
		t.Errorf("the ConfigMap's config is not in clusterMode with the pod's address:\n%s", clusterCfg)
	}

	deps := deployFind(docs, "Deployment")
	var reg map[string]any
	for _, d := range deps {
		if deployGet(d.doc, "metadata", "name") == "sipreg-registry" {
			reg = d.doc
		}
	}
	if reg == nil {
		t.Fatal("no Deployment sipreg-registry")
	}
	if n := deployGet(reg, "spec", "replicas"); n != 3 {
		t.Errorf("replicas %v, want 3", n)
	}
	pod := deployGet(reg, "spec", "template", "spec")
	if cmd := fmt.Sprint(deployGet(pod, "initContainers", 0, "command")); !strings.Contains(cmd, "s/@POD_IP@/${POD_IP}/g") {
		t.Errorf("the init container does not write the pod IP: %s", cmd)
	}
	c := deployGet(pod, "containers", 0)
	if deployGet(c, "readinessProbe", "httpGet", "path") != "/healthz" || deployGet(c, "readinessProbe", "httpGet", "port") != "http" {
		t.Errorf("readiness probe %v", deployGet(c, "readinessProbe"))
	}
	ports := map[any]any{}
	for _, p := range deployGet(c, "ports").([]any) {
		ports[deployGet(p, "name")] = deployGet(p, "containerPort")
	}
	if ports["http"] != 8080 || ports["control"] != 51910 {
		t.Errorf("container ports %v", ports)
	}
	control := false
	for _, s := range deployFind(docs, "Service") {
		for _, p := range deployGet(s.doc, "spec", "ports").([]any) {
			control = control || (deployGet(s.doc, "metadata", "name") == "sipreg-registry" && deployGet(p, "port") == 51910)
		}
	}
	if !control {
		t.Error("no Service sipreg-registry on port 51910")
	}
	kust := deployFind(docs, "Kustomization")
	if len(kust) != 1 {
		t.Fatalf("%d kustomizations", len(kust))
	}
	for _, r := range deployGet(kust[0].doc, "resources").([]any) {
		if _, err := os.Stat(filepath.Join(deployDir, "kubernetes", r.(string))); err != nil {
			t.Errorf("kustomization resource: %v", err)
		}
	}
}
