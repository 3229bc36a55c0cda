package grpcserve_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"

	"sipreg.dev/tools/grpcserve"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantExit int
		wantOK   bool
		wantOut  string
	}{
		{nil, 0, true, ""},
		{[]string{"--n", "3"}, 0, true, ""},
		{[]string{"-help"}, 0, false, "Usage of cmd"},
		{[]string{"--nope"}, 2, false, "flag provided but not defined: -nope"},
		{[]string{"--n", "3", "extra", "more"}, 2, false, "cmd: unexpected arguments: [extra more]\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		fs.SetOutput(&out)
		fs.Int("n", 0, "a number")
		exit, ok := grpcserve.ParseFlags(fs, tt.args)
		if exit != tt.wantExit || ok != tt.wantOK {
			t.Errorf("ParseFlags(%q) = %d, %v, want %d, %v", tt.args, exit, ok, tt.wantExit, tt.wantOK)
		}
		if !strings.Contains(out.String(), tt.wantOut) || (tt.wantOut == "") != (out.Len() == 0) {
			t.Errorf("ParseFlags(%q) printed %q, want %q", tt.args, out.String(), tt.wantOut)
		}
	}
}

func TestServeUntilServeEnds(t *testing.T) {
	lis := listen(t)
	defer lis.Close()
	var stdout bytes.Buffer
	failed := errors.New("serve failed")
	err := grpcserve.ServeUntil(t.Context(), "tool", &stdout, lis,
		func(net.Listener) error { return failed },
		func() error { t.Error("shutdown called"); return nil })
	if err != failed {
		t.Errorf("ServeUntil() = %v, want %v", err, failed)
	}
	if want := "tool listening on " + lis.Addr().String() + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}

func TestServeUntilContextEnds(t *testing.T) {
	serveErr, stopErr := errors.New("serve"), errors.New("stop")
	tests := []struct {
		name        string
		serve, stop error
		want        []error // errors the result wraps
		exact       bool    // the result is serve's error itself
	}{
		{"clean", nil, nil, nil, true},
		{"serve error", serveErr, nil, []error{serveErr}, true},
		{"shutdown error", nil, stopErr, []error{stopErr}, false},
		{"both", serveErr, stopErr, []error{serveErr, stopErr}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis := listen(t)
			defer lis.Close()
			ctx, cancel := context.WithCancel(t.Context())
			stopped := make(chan struct{})
			serve := func(net.Listener) error {
				cancel()
				<-stopped
				return tt.serve
			}
			shutdown := func() error {
				close(stopped)
				return tt.stop
			}
			var stdout bytes.Buffer
			err := grpcserve.ServeUntil(ctx, "tool", &stdout, lis, serve, shutdown)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("ServeUntil() = %v, want it to wrap %v", err, w)
				}
			}
			if tt.exact && err != tt.serve {
				t.Errorf("ServeUntil() = %v, want %v", err, tt.serve)
			}
		})
	}
}
