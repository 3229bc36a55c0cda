package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes(" 1000,10_000 ,100000,")
	if err != nil || !slices.Equal(got, []int{1000, 10000, 100000}) {
		t.Fatalf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", ",", "0", "-5", "ten"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q): no error", bad)
		}
	}
}

func TestParseCaches(t *testing.T) {
	got, err := parseCaches("memory, redis")
	if err != nil || !slices.Equal(got, []string{"memory", "redis"}) {
		t.Fatalf("parseCaches = %v, %v", got, err)
	}
	if _, err := parseCaches("memcached"); err == nil {
		t.Error("parseCaches(memcached): no error")
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--sizes", "x"},
		{"--caches", "disk"},
		{"--interval", "-1s"},
		{"--runs", "0"},
		{"--idle-windows", "0"},
		{"--cluster-trunks", "0"},
		{"--cluster-idle", "0s"},
		{"--cluster=maybe"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, errOut.String())
		}
	}
}

func TestMissingRegistryExit1(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--registry", t.TempDir() + "/nope", "--sizes", "1"}, &out, &errOut)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("run = %d, stdout %q; want 1 and nothing printed", code, out.String())
	}
}
