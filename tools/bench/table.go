package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"sipreg.dev/tools/bench/fakes"
	"sipreg.dev/tools/bench/proc"
)

// Write prints the rows as a Markdown table, each figure as median (min–max) over the
// row's runs, with a row of targets and a verdict per row; then every check of a target
// with its verdict; then how it was measured and notes on each run. A failed or
// timed-out run is counted in its row and described in the notes. interval is the
// registerInterval the registry ran with.
func Write(w io.Writer, rows []Row, interval time.Duration) {
	fmt.Fprintln(w, "| trunks | cache | runs | registered in (s) | REGISTERs/s | CPU s / 1,000 registrations | peak RSS (MiB) | RSS / trunk (KiB) | idle tick CPU (s) | Redis cmds / registration | Redis round trips / registration | Redis memory / trunk (B) | verdict |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	fmt.Fprintf(w, "| *target* | | *all* | *≤ %.0f at %s, memory; redis ≤ %.1f × memory* | | *≤ %.2f at %s, memory; redis ≤ %.1f × memory* | *≤ %.0f at %s, memory; redis ≤ %.1f × memory* | | *≤ %.2f at %s* | | *≤ %.2f* | *≤ %d* | |\n",
		TargetRegisterTime.Seconds(), Thousands(TargetTrunks), TargetRedisRatio, TargetCPUPer1000, Thousands(TargetTrunks), TargetRedisRatio,
		mib(TargetPeakRSS), Thousands(TargetTrunks), TargetRedisRatio, TargetIdleTickCPU, Thousands(TargetTrunks),
		TargetRedisRoundTrips, TargetRedisBytesPerTrunk)
	for i := range rows {
		row := &rows[i]
		cell := func(f figure) string { return f.of(*row).format(f.format) }
		redis := func(f figure) string {
			if row.Cache != CacheRedis {
				return "—"
			}
			return cell(f)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			Thousands(row.Trunks), row.Cache, runsCell(*row), cell(figTime), cell(figRate), cell(figCPU), cell(figRSS),
			cell(figRSSPerTrunk), cell(figIdle), redis(figCommands), redis(figTrips), redis(figRedisMem),
			verdict(checks(row, memoryRow(rows, row.Trunks))))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| trunks | cache | figure | target | measured: median (min–max) | verdict |")
	fmt.Fprintln(w, "|---:|---|---|---|---:|---|")
	for i := range rows {
		row := &rows[i]
		for _, c := range checks(row, memoryRow(rows, row.Trunks)) {
			v := c.verdict
			if !c.met() {
				v = "**" + v + "**"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", Thousands(row.Trunks), row.Cache, c.name, c.target, c.measured, v)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "Method: the registry runs on its shipped defaults: the bench's config sets only the addresses (requester, API, Redis), "+
		"the listeners (control API, metrics), expires (%d s, what the bench's Requester grants) and, for Redis, a key prefix of its own per run "+
		"(no memoryLimit, registersPerSecond, maxInFlight or startupSpread; registerInterval %s). "+
		"Each row runs several times; every figure is the median of its runs with the spread (min–max) in brackets, and every verdict is on the median. "+
		"A run that failed or timed out is counted in the *runs* column and fails the row's *runs* check; a timed-out run counts as \"> timeout\" "+
		"in the registration time and is left out of the other figures.\n\n", fakes.GrantedExpires, interval)
	fmt.Fprintf(w, "Columns: *registered in*: from the first FindBy until the Requester had answered 200 OK to every trunk. "+
		"*REGISTERs/s*: SendMessage calls over the span from the first to the last. "+
		"*CPU*: the registry's user+system CPU from the first FindBy until it was quiet after the last answer (last records written). "+
		"*peak RSS*: VmHWM at the end of the run; *RSS / trunk*: (peak − RSS at the first FindBy) / trunks. "+
		"*Redis cmds/registration* and *round trips/registration*: what the registry sent to Redis over the same span, per registration, "+
		"counted by a proxy on the registry's Redis connection (a round trip is a burst of requests and the answer to all of it, however many TCP chunks it takes; "+
		"a pipeline is one round trip carrying many commands). Redis's own total_commands_processed over the span is in the notes: "+
		"it is server-wide, so other clients of a shared server inflate it. "+
		"*Redis memory / trunk*: Redis's INFO used_memory once the registry was quiet after the last answer minus used_memory at the first FindBy "+
		"(before any record was written), over the trunks; server-wide, so another client writing meanwhile skews it: "+
		"the notes give the mean MEMORY USAGE (SAMPLES 0) of a sample of the run's keys as a cross-check. "+
		"*idle tick*: the registry's CPU over one registerInterval (%s) centred on a discovery tick (ticks are predicted from the first FindBy), "+
		"once every trunk was registered (no refresh is due: every 200 OK grants %d s); with several idle windows, their mean. "+
		"CPU is read from /proc/<pid>/stat (utime+stime) in clock ticks of %.0f ms, so small values are coarse.\n", interval, fakes.GrantedExpires, 1000/proc.ClockTicks())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes:")
	for _, row := range rows {
		for i, run := range row.Runs {
			fmt.Fprintf(w, "- %s, %s, run %d of %d: %s\n", Thousands(row.Trunks), row.Cache, i+1, len(row.Runs), notes(row.Cache, run))
		}
	}
}

// runsCell writes how many runs completed, and how the others ended.
func runsCell(row Row) string {
	done, timedOut, failed := 0, 0, 0
	for _, r := range row.Runs {
		switch {
		case r.Err == nil:
			done++
		case errors.Is(r.Err, ErrIncomplete):
			timedOut++
		default:
			failed++
		}
	}
	s := fmt.Sprintf("%d/%d", done, len(row.Runs))
	if timedOut > 0 {
		s += fmt.Sprintf(", **%d timed out**", timedOut)
	}
	if failed > 0 {
		s += fmt.Sprintf(", **%d failed**", failed)
	}
	return s
}

// notes describes what else a run saw.
func notes(cache string, run RunResult) string {
	r := run.Result
	var parts []string
	if run.Err != nil {
		label := "**failed**: "
		if errors.Is(run.Err, ErrIncomplete) {
			label = "**timed out**: "
		}
		parts = append(parts, label+strings.ReplaceAll(run.Err.Error(), "\n", " ⏎ "))
	} else {
		parts = append(parts,
			fmt.Sprintf("%s REGISTERs, the first %.0f ms after the first FindBy", Thousands(int(r.Registers)), Millis(r.FirstRegister)),
			fmt.Sprintf("FindBy calls in the phase: %d (the first included)", r.FindBysDuringPhase))
		if r.Settled {
			parts = append(parts, fmt.Sprintf("quiet %.0f ms after the last answer", Millis(r.Settle)))
		} else {
			parts = append(parts, fmt.Sprintf("still busy %.1f s after the last answer (CPU and Redis counted up to then)", r.Settle.Seconds()))
		}
		parts = append(parts, fmt.Sprintf("registry CPU %.2f s, bench (fakes) CPU %.2f s over the phase", r.RegisterCPU, r.BenchCPU))
		parts = append(parts, fmt.Sprintf("RSS %.1f MiB at the first FindBy", mib(r.StartRSS)))
		if r.RedisCommands >= 0 {
			parts = append(parts, fmt.Sprintf("the registry's Redis commands %s (%s) in %s round trips; Redis's server-wide count %s%s",
				Thousands(int(r.RedisCommands)), Breakdown(r.RedisByCommand), Thousands(int(r.RedisRoundTrips)),
				Thousands(int(r.RedisServerCommands)), othersNote(r.RedisServerCommands, r.RedisCommands)))
		}
		idle := fmt.Sprintf("idle window: %d FindBy, %d REGISTERs", r.IdleFindBys, r.IdleRegisters)
		if r.IdleWindows > 1 {
			idle = fmt.Sprintf("%d idle windows (CPU mean %.3f s, max %.3f s): %d FindBy, %d REGISTERs",
				r.IdleWindows, r.IdleTickCPU, r.IdleTickCPUMax, r.IdleFindBys, r.IdleRegisters)
		}
		if r.IdleRedisCommands >= 0 {
			idle += fmt.Sprintf(", %s Redis commands from the registry", Thousands(int(r.IdleRedisCommands)))
			if r.IdleRedisCommands > 0 {
				idle += " (" + Breakdown(r.IdleRedisByCommand) + ")"
			}
			idle += fmt.Sprintf(" (server-wide %s%s)", Thousands(int(r.IdleRedisServerCommands)),
				othersNote(r.IdleRedisServerCommands, r.IdleRedisCommands))
		}
		if r.IdleFindBys != r.IdleWindows {
			idle += " (**not one tick per window**)"
		}
		parts = append(parts, idle)
		if r.RedisUsedMemoryAfter >= 0 {
			parts = append(parts, fmt.Sprintf("Redis used_memory %.1f MiB at the first FindBy, %.1f MiB once quiet (%.0f B per trunk)",
				mib(r.RedisUsedMemoryBefore), mib(r.RedisUsedMemoryAfter), r.RedisBytesPerTrunk()))
		}
		if r.RedisSampledKeys > 0 {
			parts = append(parts, fmt.Sprintf("MEMORY USAGE of %d sampled keys of the run's prefix: %.0f B each on average",
				r.RedisSampledKeys, r.RedisSampleBytes))
		}
	}
	if cache == CacheRedis && (run.Err == nil || r.RedisKeys > 0) {
		parts = append(parts, fmt.Sprintf("%s keys of the run's prefix deleted at the end", Thousands(r.RedisKeys)))
	}
	if r.LogLines > 0 && !errors.Is(run.Err, proc.ErrExited) {
		last := r.LastLog[len(r.LastLog)-1]
		if len(last) > 300 {
			last = last[:300] + "…"
		}
		parts = append(parts, fmt.Sprintf("the registry logged %d warning/error lines, the last: `%s`", r.LogLines, last))
	}
	return strings.Join(parts, "; ")
}

// othersNote flags a server-wide count well above the registry's own.
func othersNote(server, registry int64) string {
	if server-registry > max(5, registry/100) {
		return ": other clients were busy on this Redis"
	}
	return ""
}

// breakdown lists commands by count, largest first.
func Breakdown(per map[string]int64) string {
	names := slices.SortedFunc(maps.Keys(per), func(a, b string) int {
		return cmp.Or(cmp.Compare(per[b], per[a]), strings.Compare(a, b))
	})
	if len(names) == 0 {
		return "none"
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %s", strings.ToUpper(n), Thousands(int(per[n]))))
	}
	return strings.Join(out, ", ")
}

func mib(b int64) float64            { return float64(b) / (1 << 20) }
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Thousands writes n with commas between groups of three digits.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
