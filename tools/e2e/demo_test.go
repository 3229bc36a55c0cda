package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command's script (make demo) on the built binaries:
// the trunks of the embedded default get registered, one through a challenge and one
// through 423, and the refused one is reported.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../demo/run.sh")
	cmd.Env = append(os.Environ(), "BIN="+binDir, "DEMO_SECONDS=6",
		"DEMO_HTTP_ADDR=127.0.0.1:0", "DEMO_CONTROL_ADDR=127.0.0.1:0", "LOGS_LEVEL=debug")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"msg=registered trunk=acme",
		"msg=\"challenged; answering\" trunk=globex",
		"msg=registered trunk=globex",
		"msg=\"interval too brief; asking for Min-Expires from now on\" trunk=initech",
		"msg=registered trunk=initech",
		"trunk=umbrella state=rejected reason=\"403 Forbidden\"",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "trunk=hooli") {
		t.Error("the demo registered a trunk whose sendRegister is false")
	}
}
