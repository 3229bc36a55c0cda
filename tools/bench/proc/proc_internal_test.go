package proc

import "testing"

func TestParseStatTicks(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (reg (x) y) S 1 4242 4242 0 -1 4194560 1363 0 0 0 157 43 0 0 20 0 7 0 1234 1000 200 18446744073709551615\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 200 {
		t.Fatalf("parseStatTicks = %d, %v; want 200", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat: no error")
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tregistry\nVmPeak:\t 900000 kB\nVmHWM:\t  512000 kB\nVmRSS:\t  256000 kB\nThreads:\t7\n"
	peak, rss, err := parseStatusMemory([]byte(status))
	if err != nil || peak != 512000<<10 || rss != 256000<<10 {
		t.Fatalf("parseStatusMemory = %d, %d, %v", peak, rss, err)
	}
	if _, _, err := parseStatusMemory([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmHWM: no error")
	}
}
