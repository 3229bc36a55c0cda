package config

import (
	"log/slog"
	"os"

	"sipreg.dev/services/registry/internal/logging"
)

// The environment, with Routr's names, and what it decides over the file:
//
//	CONFIG_PATH          the config file when --config is not given        Path
//	CONTROL_API_TOKEN    replaces spec.controlToken when not empty         Load
//	LOGS_LEVEL           the log level (Routr's names), info when empty    FromEnv
//	LOGS_FORMAT          replaces spec.logFormat when json or text         FromEnv
//	ENABLE_HEALTHCHECKS  GET /healthz is served unless it is "false"       FromEnv
//	GOMEMLIMIT           when not empty, spec.memoryLimit is not applied   FromEnv
//	ENABLE_PPROF         "true": Go's profiles under /debug/pprof/ on the  FromEnv
//	                     metrics listener (off by default)
//
// Load resolves what validate must see too (the token); FromEnv what only matters to a
// running service, and is the only one that can fail (a bad LOGS_LEVEL).

// Path picks the config path: the flag, else CONFIG_PATH, else DefaultPath.
func Path(flag string) string { return path(flag, os.Getenv) }

func path(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if p := getenv("CONFIG_PATH"); p != "" {
		return p
	}
	return DefaultPath
}

// controlToken is CONTROL_API_TOKEN when it is not empty, else the file's token.
func controlToken(fromFile string, getenv func(string) string) string {
	if tok := getenv("CONTROL_API_TOKEN"); tok != "" {
		return tok
	}
	return fromFile
}

// Runtime is what the environment decides for a running service, over the file.
type Runtime struct {
	// LogLevel is LOGS_LEVEL's.
	LogLevel slog.Level
	// LogFormat is LOGS_FORMAT when it is json or text, else spec.logFormat.
	LogFormat string
	// Healthchecks says whether GET /healthz is served: unless ENABLE_HEALTHCHECKS is
	// "false".
	Healthchecks bool
	// MemoryLimit is the soft memory limit to give the Go runtime: spec.memoryLimit, or
	// 0 (leave the runtime's own) when GOMEMLIMIT is set, which the runtime applies
	// itself.
	MemoryLimit int64
	// Pprof says whether Go's profiles are served under /debug/pprof/ on the metrics
	// listener: only when ENABLE_PPROF is "true". They show the process's memory and
	// stacks (never a secret the registry logs, but trunk data may be in a heap
	// profile), so keep that listener private when this is on.
	Pprof bool
}

// FromEnv resolves the Runtime from the environment (getenv is os.Getenv in the service)
// and the file's spec. Its error is a LOGS_LEVEL that is not a level.
func FromEnv(spec Spec, getenv func(string) string) (Runtime, error) {
	level, err := logging.Level(getenv("LOGS_LEVEL"))
	if err != nil {
		return Runtime{}, err
	}
	rt := Runtime{LogLevel: level, LogFormat: spec.LogFormat, Healthchecks: getenv("ENABLE_HEALTHCHECKS") != "false",
		Pprof: getenv("ENABLE_PPROF") == "true"}
	if f := getenv("LOGS_FORMAT"); f == "json" || f == "text" {
		rt.LogFormat = f
	}
	if spec.MemoryLimit > 0 && getenv("GOMEMLIMIT") == "" {
		rt.MemoryLimit = spec.MemoryLimit
	}
	return rt, nil
}
