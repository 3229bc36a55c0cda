package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"sipreg.dev/tools/bench/proc"
)

func TestSummarize(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		vals             []float64
		median, min, max float64
		text             string
	}{
		{[]float64{3, 1, 2}, 2, 1, 3, "2.00 (1.00–3.00)"},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4, "2.50 (1.00–4.00)"},
		{[]float64{7}, 7, 7, 7, "7.00"},
		{[]float64{5, inf, 6}, 6, 5, inf, "6.00 (5.00–> timeout)"},
		{[]float64{inf, 5, inf}, inf, 5, inf, "> timeout (5.00–> timeout)"},
		{[]float64{5, inf}, inf, 5, inf, "> timeout (5.00–> timeout)"},
	} {
		s := summarize(tc.vals)
		if s.median != tc.median || s.min != tc.min || s.max != tc.max || s.n != len(tc.vals) {
			t.Errorf("summarize(%v) = %+v, want median %v, min %v, max %v", tc.vals, s, tc.median, tc.min, tc.max)
		}
		if got := s.format("%.2f"); got != tc.text {
			t.Errorf("summarize(%v).format = %q, want %q", tc.vals, got, tc.text)
		}
	}
	if s := summarize(nil); s.ok() || s.format("%.2f") != "—" {
		t.Errorf("summarize(nil) = %+v, %q", s, s.format("%.2f"))
	}
	vals := []float64{3, 1, 2}
	summarize(vals)
	if vals[0] != 3 || vals[1] != 1 {
		t.Errorf("summarize sorted its argument: %v", vals)
	}
}

// result makes up a measured run: seconds to register, CPU s per 1,000, peak RSS in
// MiB, idle tick CPU s; with Redis, round trips per registration and bytes per trunk.
func result(trunks int, cache string, secs, cpu1000, rssMiB, idle float64, trips, bytes float64) Result {
	r := Result{Trunks: trunks, Cache: cache, RegisterTime: time.Duration(secs * float64(time.Second)),
		Registers: int64(trunks), RegistersPerSecond: float64(trunks) / secs,
		RegisterCPU: cpu1000 * float64(trunks) / 1000, PeakRSS: int64(rssMiB * (1 << 20)), StartRSS: 20 << 20,
		IdleTickCPU: idle, IdleWindows: 1, IdleFindBys: 1, Settled: true,
		RedisCommands: -1, RedisRoundTrips: -1, RedisServerCommands: -1, IdleRedisCommands: -1, IdleRedisServerCommands: -1,
		RedisUsedMemoryBefore: -1, RedisUsedMemoryAfter: -1}
	if cache == CacheRedis {
		r.RedisCommands, r.RedisRoundTrips = int64(trunks), int64(trips*float64(trunks))
		r.RedisServerCommands, r.IdleRedisCommands, r.IdleRedisServerCommands = int64(trunks), 0, 0
		r.RedisUsedMemoryBefore, r.RedisUsedMemoryAfter = 1<<20, 1<<20+int64(bytes*float64(trunks))
		r.RedisKeys = trunks
	}
	return r
}

func runs(rs ...Result) []RunResult {
	out := make([]RunResult, len(rs))
	for i, r := range rs {
		out[i] = RunResult{Result: r}
	}
	return out
}

func checkByName(t *testing.T, cs []check, name string) check {
	t.Helper()
	c, ok := checkByNameOK(cs, name)
	if !ok {
		t.Fatalf("no check %q in %+v", name, cs)
	}
	return c
}

func checkByNameOK(cs []check, name string) (check, bool) {
	for _, c := range cs {
		if c.name == name {
			return c, true
		}
	}
	return check{}, false
}

func TestChecksAndVerdict(t *testing.T) {
	const n = TargetTrunks
	mem := Row{Trunks: n, Cache: CacheMemory, Runs: runs(
		result(n, CacheMemory, 5.0, 0.030, 140, 0.03, 0, 0),
		result(n, CacheMemory, 7.5, 0.050, 160, 0.02, 0, 0), // an outlier: the median decides
		result(n, CacheMemory, 5.5, 0.035, 145, 0.04, 0, 0),
	)}
	cs := checks(&mem, &mem)
	if got := verdict(cs); got != "met (5/5)" {
		t.Fatalf("memory verdict = %q (%+v)", got, cs)
	}
	if c := checkByName(t, cs, "time"); c.measured != "5.50 (5.00–7.50) s" || c.target != "≤ 6 s from the first FindBy to the last 200 OK" {
		t.Errorf("time check = %+v", c)
	}
	if c := checkByName(t, cs, "RSS"); c.measured != "145.0 (140.0–160.0) MiB" || c.target != "≤ 150 MiB peak RSS" {
		t.Errorf("RSS check = %+v", c)
	}

	redis := Row{Trunks: n, Cache: CacheRedis, Runs: runs(
		result(n, CacheRedis, 6.5, 0.045, 150, 0.04, 0.012, 380),
		result(n, CacheRedis, 6.4, 0.041, 149, 0.04, 0.011, 390),
		result(n, CacheRedis, 6.7, 0.043, 151, 0.05, 0.013, 395),
	)}
	cs = checks(&redis, &mem)
	// Redis is held to the memory row, not to the memory targets: time 6.5 ≤ 6.6
	// (1.2 × 5.5), CPU 0.043 ≤ 0.042? no (1.2 × 0.035); RSS 150 ≤ 174; idle 0.04 ≤
	// 0.05; round trips 0.012 ≤ 0.02; 390 B ≤ 400.
	if got := verdict(cs); got != "**not met** (6/7 met): CPU vs memory" {
		t.Fatalf("redis verdict = %q (%+v)", got, cs)
	}
	if c := checkByName(t, cs, "time vs memory"); c.target != "≤ 1.2 × the memory cache's (5.50 × 1.2 = 6.60 s)" || !c.met() {
		t.Errorf("time vs memory = %+v", c)
	}
	if c := checkByName(t, cs, "Redis round trips"); c.measured != "0.012 (0.011–0.013) per registration" || !c.met() {
		t.Errorf("round trips = %+v", c)
	}
	if c := checkByName(t, cs, "Redis memory"); c.measured != "390 (380–395) B / trunk" || !c.met() {
		t.Errorf("Redis memory = %+v", c)
	}

	// Without a memory row the comparisons are not measured, and so not met.
	cs = checks(&redis, nil)
	if c := checkByName(t, cs, "RSS vs memory"); c.verdict != VerdictNotMeasured || c.met() {
		t.Errorf("RSS vs memory without a memory row = %+v", c)
	}

	// Smaller rows: their runs only (and Redis's own targets), whatever their CPU.
	small := Row{Trunks: 1000, Cache: CacheMemory, Runs: runs(result(1000, CacheMemory, 0.1, 0.07, 40, 0, 0, 0))}
	if got := verdict(checks(&small, &small)); got != "met (1/1)" {
		t.Fatalf("small verdict = %q", got)
	}
	if _, ok := checkByNameOK(checks(&redis, &mem), "CPU"); ok {
		t.Error("a Redis row is held to the memory cache's CPU target")
	}
	smallRedis := Row{Trunks: 1000, Cache: CacheRedis, Runs: runs(result(1000, CacheRedis, 0.1, 0.09, 40, 0, 0.01, 330))}
	if got := verdict(checks(&smallRedis, &small)); got != "met (3/3)" {
		t.Fatalf("small Redis verdict = %q: held to the memory row below 100,000 trunks?", got)
	}
}

func TestFailedRunsAreNotHidden(t *testing.T) {
	const n = TargetTrunks
	ok := result(n, CacheMemory, 5.0, 0.030, 140, 0.03, 0, 0)
	row := Row{Trunks: n, Cache: CacheMemory, Runs: []RunResult{
		{Result: ok},
		{Result: Result{Trunks: n, Cache: CacheMemory}, Err: fmt.Errorf("%w: only 90000 of 100000", ErrIncomplete)},
		{Result: ok},
	}}
	cs := checks(&row, &row)
	if c := checkByName(t, cs, "runs"); c.met() || c.measured != "2 of 3" {
		t.Errorf("runs check = %+v", c)
	}
	// The timed-out run counts as "> timeout" in the time (the median of 5, 5, ∞ is 5)
	// and is left out of the rest.
	if c := checkByName(t, cs, "time"); c.measured != "5.00 (5.00–> timeout) s" || !c.met() {
		t.Errorf("time check = %+v", c)
	}
	if c := checkByName(t, cs, "CPU"); c.measured != "0.030 (0.030–0.030) CPU s / 1,000" {
		t.Errorf("CPU check = %+v", c)
	}
	if got := verdict(cs); !strings.HasPrefix(got, "**not met** (4/5 met): runs") {
		t.Errorf("verdict = %q", got)
	}

	// Every run failed: nothing to judge, every figure not measured.
	dead := Row{Trunks: n, Cache: CacheMemory, Runs: []RunResult{{Err: proc.ErrExited}, {Err: proc.ErrExited}}}
	cs = checks(&dead, &dead)
	for _, c := range cs {
		if c.met() {
			t.Errorf("check %+v met with every run failed", c)
		}
	}
	if c := checkByName(t, cs, "CPU"); c.verdict != VerdictNotMeasured || c.measured != "—" {
		t.Errorf("CPU check with no run = %+v", c)
	}
}

func TestWrite(t *testing.T) {
	rows := []Row{
		{Trunks: 2000, Cache: CacheMemory, Runs: runs(
			result(2000, CacheMemory, 0.20, 0.030, 40, 0.01, 0, 0),
			result(2000, CacheMemory, 0.30, 0.050, 42, 0.02, 0, 0),
			result(2000, CacheMemory, 0.25, 0.035, 41, 0.01, 0, 0),
		)},
		{Trunks: 2000, Cache: CacheRedis, Runs: []RunResult{
			{Result: result(2000, CacheRedis, 0.28, 0.040, 41, 0.01, 0.01, 300)},
			{Result: Result{Trunks: 2000, Cache: CacheRedis, RedisKeys: 1200}, Err: errors.New("redis 127.0.0.1:6379: connection refused")},
			{Result: result(2000, CacheRedis, 0.30, 0.046, 43, 0.01, 0.01, 320)},
		}},
	}
	var out bytes.Buffer
	Write(&out, rows, time.Minute)
	text := out.String()
	for _, want := range []string{
		"| trunks | cache | runs | registered in (s) | REGISTERs/s | CPU s / 1,000 registrations | peak RSS (MiB) |",
		"| *target* | | *all* | *≤ 6 at 100,000, memory; redis ≤ 1.2 × memory* | | *≤ 0.04 at 100,000, memory; redis ≤ 1.2 × memory* | *≤ 150 at 100,000, memory; redis ≤ 1.2 × memory* | | *≤ 0.05 at 100,000* | | *≤ 0.02* | *≤ 400* | |",
		"| 2,000 | memory | 3/3 | 0.25 (0.20–0.30) | 8000 (6667–10000) | 0.035 (0.030–0.050) | 41.0 (40.0–42.0) | 10.75 (10.24–11.26) | 0.010 (0.010–0.020) | — | — | — | met (1/1) |",
		"| 2,000 | redis | 2/3, **1 failed** | 0.29 (0.28–0.30) |",
		"| 0.010 (0.010–0.010) | 310 (300–320) | **not met** (2/3 met): runs |",
		"| 2,000 | memory | runs | all 3 completed | 3 of 3 | met |",
		"| 2,000 | redis | runs | all 3 completed | 2 of 3 | **not met** |",
		"| 2,000 | redis | Redis memory | ≤ 400 B of Redis memory per trunk (used_memory) | 310 (300–320) B / trunk | met |",
		"the bench's config sets only the addresses",
		"registerInterval 1m0s",
		"every verdict is on the median",
		"INFO used_memory",
		"- 2,000, memory, run 2 of 3: 2,000 REGISTERs",
		"- 2,000, redis, run 2 of 3: **failed**: redis 127.0.0.1:6379: connection refused; 1,200 keys of the run's prefix deleted at the end",
		"Redis used_memory 1.0 MiB at the first FindBy, 1.6 MiB once quiet (300 B per trunk)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// Every check and every run is printed: 1 check of the memory row, 3 of the
	// Redis row (no comparison with the memory row below 100,000 trunks); 6 run notes.
	checkLines, noteLines := 0, 0
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "| 2,000 | ") && strings.Count(line, " | ") == 5 {
			checkLines++
		}
		if strings.HasPrefix(line, "- 2,000, ") {
			noteLines++
		}
	}
	if checkLines != 4 || noteLines != 6 {
		t.Errorf("%d check lines (want 4), %d run notes (want 6):\n%s", checkLines, noteLines, text)
	}
}
