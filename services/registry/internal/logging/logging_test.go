package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"sipreg.dev/services/registry/internal/logging"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		// Routr's names (winston's levels).
		{"error", slog.LevelError},
		{"warn", slog.LevelWarn},
		{"info", slog.LevelInfo},
		{"http", slog.LevelInfo},
		{"verbose", slog.LevelDebug},
		{"debug", slog.LevelDebug},
		{"silly", slog.LevelDebug},
		// Unset means info.
		{"", slog.LevelInfo},
		{"   ", slog.LevelInfo},
		// Other common spellings.
		{"warning", slog.LevelWarn},
		{"fatal", slog.LevelError},
		{"trace", slog.LevelDebug},
		// Any case, surrounding spaces.
		{"DEBUG", slog.LevelDebug},
		{" Warn\n", slog.LevelWarn},
		{"Verbose", slog.LevelDebug},
	}
	for _, tt := range tests {
		got, err := logging.Level(tt.in)
		if err != nil {
			t.Errorf("Level(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Level(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestLevelInvalid(t *testing.T) {
	for _, in := range []string{"loud", "debug2", "0", "-4", "info,debug"} {
		got, err := logging.Level(in)
		if err == nil {
			t.Errorf("Level(%q) = %v, want an error", in, got)
			continue
		}
		if got != slog.LevelInfo {
			t.Errorf("Level(%q) = %v with its error, want info as the fallback", in, got)
		}
		if !strings.Contains(err.Error(), "LOGS_LEVEL") || !strings.Contains(err.Error(), in) {
			t.Errorf("Level(%q) error %q does not name LOGS_LEVEL and the value", in, err)
		}
	}
}

func TestNew(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		log := logging.New(&buf, slog.LevelInfo, "json")
		log.Debug("hidden")
		log.Info("registered", "trunk", "trunk-1", "expires", 600)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("want one line (debug filtered at info), got %q", buf.String())
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", lines[0], err)
		}
		if rec["msg"] != "registered" || rec["trunk"] != "trunk-1" || rec["level"] != "INFO" || rec["expires"] != float64(600) {
			t.Errorf("record = %v", rec)
		}
	})
	for _, format := range []string{"text", "", "anything"} {
		t.Run("text/"+format, func(t *testing.T) {
			var buf bytes.Buffer
			log := logging.New(&buf, slog.LevelDebug, format)
			log.Debug("refreshed", "trunk", "trunk-1")
			out := buf.String()
			if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "msg=refreshed") || !strings.Contains(out, "trunk=trunk-1") {
				t.Errorf("text output = %q", out)
			}
		})
	}
	t.Run("level filters", func(t *testing.T) {
		var buf bytes.Buffer
		log := logging.New(&buf, slog.LevelError, "text")
		log.Warn("w")
		log.Info("i")
		log.Error("e")
		if out := buf.String(); strings.Contains(out, "msg=w") || strings.Contains(out, "msg=i") || !strings.Contains(out, "msg=e") {
			t.Errorf("at error level: %q", out)
		}
	})
}
