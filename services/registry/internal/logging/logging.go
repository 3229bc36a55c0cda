// Package logging builds the registry's slog logger from Routr's environment:
// LOGS_LEVEL (Routr's level names) and a text or JSON format.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Level maps a LOGS_LEVEL value to a slog level. Routr's names (winston's: error, warn,
// info, http, verbose, debug, silly) and slog's are accepted; empty means info.
func Level(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info", "http":
		return slog.LevelInfo, nil
	case "debug", "verbose", "silly", "trace":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("LOGS_LEVEL %q is not one of error, warn, info, verbose, debug", s)
}

// New returns a logger writing to w at level, as "text" or "json".
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
