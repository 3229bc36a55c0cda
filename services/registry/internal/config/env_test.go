package config_test

import (
	"log/slog"
	"strings"
	"testing"

	"sipreg.dev/services/registry/internal/config"
)

// env is a getenv over a fixed environment.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// FromEnv: each variable against the file's value, with the precedence the service has
// always had.
func TestFromEnv(t *testing.T) {
	const mib = 1 << 20
	spec := func(logFormat string, memoryLimit int64) config.Spec {
		return config.Spec{LogFormat: logFormat, MemoryLimit: memoryLimit}
	}
	tests := []struct {
		name string
		spec config.Spec
		env  map[string]string
		want config.Runtime
	}{
		{"nothing set", spec("text", 0), nil,
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"spec.logFormat", spec("json", 0), nil,
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "json", Healthchecks: true}},
		{"LOGS_LEVEL debug", spec("text", 0), map[string]string{"LOGS_LEVEL": "debug"},
			config.Runtime{LogLevel: slog.LevelDebug, LogFormat: "text", Healthchecks: true}},
		{"LOGS_LEVEL Routr's verbose", spec("text", 0), map[string]string{"LOGS_LEVEL": "verbose"},
			config.Runtime{LogLevel: slog.LevelDebug, LogFormat: "text", Healthchecks: true}},
		{"LOGS_LEVEL upper case", spec("text", 0), map[string]string{"LOGS_LEVEL": "WARN"},
			config.Runtime{LogLevel: slog.LevelWarn, LogFormat: "text", Healthchecks: true}},
		{"LOGS_FORMAT json over spec text", spec("text", 0), map[string]string{"LOGS_FORMAT": "json"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "json", Healthchecks: true}},
		{"LOGS_FORMAT text over spec json", spec("json", 0), map[string]string{"LOGS_FORMAT": "text"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"LOGS_FORMAT unknown: spec's", spec("json", 0), map[string]string{"LOGS_FORMAT": "xml"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "json", Healthchecks: true}},
		{"LOGS_FORMAT is case-sensitive", spec("text", 0), map[string]string{"LOGS_FORMAT": "JSON"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"ENABLE_HEALTHCHECKS false", spec("text", 0), map[string]string{"ENABLE_HEALTHCHECKS": "false"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text"}},
		{"ENABLE_PPROF true", spec("text", 0), map[string]string{"ENABLE_PPROF": "true"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true, Pprof: true}},
		{"ENABLE_PPROF other than true: off", spec("text", 0), map[string]string{"ENABLE_PPROF": "1"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"ENABLE_HEALTHCHECKS true", spec("text", 0), map[string]string{"ENABLE_HEALTHCHECKS": "true"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"ENABLE_HEALTHCHECKS only false turns them off", spec("text", 0), map[string]string{"ENABLE_HEALTHCHECKS": "FALSE"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"spec.memoryLimit", spec("text", 280*mib), nil,
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true, MemoryLimit: 280 * mib}},
		{"GOMEMLIMIT wins over spec.memoryLimit", spec("text", 280*mib), map[string]string{"GOMEMLIMIT": "1GiB"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"GOMEMLIMIT without spec.memoryLimit", spec("text", 0), map[string]string{"GOMEMLIMIT": "1GiB"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
		{"CONTROL_API_TOKEN is Load's", spec("text", 0), map[string]string{"CONTROL_API_TOKEN": "t"},
			config.Runtime{LogLevel: slog.LevelInfo, LogFormat: "text", Healthchecks: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.FromEnv(tt.spec, env(tt.env))
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got != tt.want {
				t.Errorf("FromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A LOGS_LEVEL that is not a level stops the service, and the error says which variable.
func TestFromEnvBadLevel(t *testing.T) {
	_, err := config.FromEnv(config.Spec{LogFormat: "text"}, env(map[string]string{"LOGS_LEVEL": "loud"}))
	if err == nil || !strings.Contains(err.Error(), `LOGS_LEVEL "loud"`) {
		t.Errorf("FromEnv with LOGS_LEVEL=loud: %v, want an error naming LOGS_LEVEL", err)
	}
}
