package bench

import (
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIdleWindowStart(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		quietAfter, interval, want time.Duration
	}{
		{5 * time.Second, time.Minute, 30 * time.Second},  // the first tick after the phase is at 60 s
		{30 * time.Second, time.Minute, 30 * time.Second}, // exactly at the half
		{31 * time.Second, time.Minute, 90 * time.Second},
		{0, 5 * time.Second, 2500 * time.Millisecond},
		{12 * time.Second, 5 * time.Second, 12500 * time.Millisecond},
	} {
		got := idleWindowStart(first, first.Add(tc.quietAfter), tc.interval).Sub(first)
		if got != tc.want {
			t.Errorf("idleWindowStart(quiet at %s, interval %s) = +%s, want +%s", tc.quietAfter, tc.interval, got, tc.want)
		}
	}
}

func TestRegistryConfigShippedDefaults(t *testing.T) {
	got, err := RegistryConfig(Config{Cache: CacheMemory}, "127.0.0.1:1", "127.0.0.1:2", "", "")
	if err != nil {
		t.Fatal(err)
	}
	want := `kind: Registry
apiVersion: v2beta1
spec:
  requesterAddr: 127.0.0.1:1
  apiAddr: 127.0.0.1:2
  edgePorts:
    - address: edge.bench:5060
  httpAddr: 127.0.0.1:0
  controlAddr: 127.0.0.1:0
  expires: 600
  cache:
    provider: memory
`
	if got != want {
		t.Fatalf("config:\n%s\nwant:\n%s", got, want)
	}
	// The experiments' flags add their fields, and only those.
	got, err = RegistryConfig(Config{Cache: CacheRedis, Interval: 5 * time.Second, MemoryLimit: "280MiB"},
		"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "bench-ab:")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  registerInterval: 5s\n", "  memoryLimit: 280MiB\n", "    provider: redis\n",
		`    parameters: "host=127.0.0.1,port=3"` + "\n", `  keyPrefix: "bench-ab:"` + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	for _, tuning := range []string{"registersPerSecond", "maxInFlight", "startupSpread", "authMode"} {
		if strings.Contains(got, tuning) {
			t.Errorf("config sets %s:\n%s", tuning, got)
		}
	}
	if got, _ := RegistryConfig(Config{Cache: CacheMemory, MemoryLimit: "0"}, "a:1", "b:2", "", ""); strings.Contains(got, "memoryLimit") {
		t.Errorf("memoryLimit 0 is written:\n%s", got)
	}
}
