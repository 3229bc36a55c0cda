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
)

// The targets of the registry at scale. Those "at TargetTrunks" apply to rows of
// exactly that many trunks; the others to every row they can be measured on.
const (
	// TargetTrunks is the size the time, memory and idle targets are set for.
	TargetTrunks = 100_000
	// TargetRegisterTime: every trunk registered within this time of the first FindBy.
	TargetRegisterTime = 15 * time.Second
	// TargetCPUPer1000: at most this many CPU seconds per 1,000 registrations.
	TargetCPUPer1000 = 0.1
	// TargetPeakRSS: peak RSS below this many bytes.
	TargetPeakRSS = 300 << 20
	// TargetRedisRoundTrips: at most this many Redis round trips per registration.
	TargetRedisRoundTrips = 2
	// TargetIdleTickCPU: one idle discovery tick below this many CPU seconds.
	TargetIdleTickCPU = 0.5
)

// Row is one line of the table: a measured Result, or the error that kept the row
// from being measured.
type Row struct {
	Trunks int
	Cache  string
	Result Result
	Err    error
}

// Verdicts of a check.
const (
	verdictMet    = "met"
	verdictNotMet = "not met"
)

// check is one target applied to one row.
type check struct {
	target   string // what the target says
	short    string // its name in the verdict column
	measured string
	verdict  string
}

// checks returns the targets that apply to a measured row.
func checks(r Result) []check {
	var out []check
	add := func(target, short, measured string, met bool) {
		v := verdictNotMet
		if met {
			v = verdictMet
		}
		out = append(out, check{target, short, measured, v})
	}
	at100k := r.Trunks == TargetTrunks
	if at100k {
		add(fmt.Sprintf("%s trunks registered within %.0f s of the first FindBy", thousands(TargetTrunks), TargetRegisterTime.Seconds()),
			"time", fmt.Sprintf("%.2f s", r.RegisterTime.Seconds()), r.RegisterTime <= TargetRegisterTime)
	}
	add(fmt.Sprintf("≤ %.1f CPU s per 1,000 registrations", TargetCPUPer1000),
		"CPU", fmt.Sprintf("%.3f s", r.CPUPer1000()), r.CPUPer1000() <= TargetCPUPer1000)
	if at100k {
		add(fmt.Sprintf("peak RSS < %d MiB at %s trunks", TargetPeakRSS>>20, thousands(TargetTrunks)),
			"RSS", fmt.Sprintf("%.1f MiB", mib(r.PeakRSS)), r.PeakRSS < TargetPeakRSS)
	}
	if r.RedisRoundTrips >= 0 {
		add(fmt.Sprintf("≤ %d Redis round trips per registration", TargetRedisRoundTrips), "Redis",
			fmt.Sprintf("%.3f (%.2f commands)", r.RoundTripsPerRegistration(), r.RedisPerRegistration()),
			r.RoundTripsPerRegistration() <= TargetRedisRoundTrips)
	}
	if at100k {
		add(fmt.Sprintf("idle discovery tick at %s trunks < %.1f CPU s", thousands(TargetTrunks), TargetIdleTickCPU),
			"idle tick", fmt.Sprintf("%.3f s", r.IdleTickCPU), r.IdleTickCPU < TargetIdleTickCPU)
	}
	return out
}

// verdict sums up a row's checks: "met (2/2)", or which were not met.
func verdict(cs []check) string {
	var notMet []string
	for _, c := range cs {
		if c.verdict == verdictNotMet {
			notMet = append(notMet, c.short)
		}
	}
	met := len(cs) - len(notMet)
	if len(notMet) > 0 {
		return fmt.Sprintf("**not met** (%d/%d met): %s", met, len(cs), strings.Join(notMet, ", "))
	}
	return fmt.Sprintf("met (%d/%d)", met, len(cs))
}

// Write prints the rows as a Markdown table with a row of targets, then every check
// of a target with its verdict, then notes on each row. Rows that failed show their
// error in the notes.
func Write(w io.Writer, rows []Row, interval time.Duration) {
	fmt.Fprintln(w, "| trunks | cache | registered in (s) | REGISTERs/s | CPU s / 1,000 registrations | peak RSS (MiB) | RSS / trunk (KiB) | Redis cmds/registration | Redis round trips/registration | idle tick CPU (s) | verdict |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	fmt.Fprintf(w, "| *target* | | *≤ %.0f at %s* | | *≤ %.1f* | *< %d at %s* | | | *≤ %d* | *< %.1f at %s* | |\n",
		TargetRegisterTime.Seconds(), thousands(TargetTrunks), TargetCPUPer1000,
		TargetPeakRSS>>20, thousands(TargetTrunks), TargetRedisRoundTrips, TargetIdleTickCPU, thousands(TargetTrunks))
	for _, row := range rows {
		if errors.Is(row.Err, ErrIncomplete) {
			fmt.Fprintf(w, "| %s | %s | > timeout | | | | | | | | **not met**: not every trunk registered (see notes) |\n", thousands(row.Trunks), row.Cache)
			continue
		}
		if row.Err != nil {
			fmt.Fprintf(w, "| %s | %s | error | | | | | | | | not measured (see notes) |\n", thousands(row.Trunks), row.Cache)
			continue
		}
		r := row.Result
		cmds, trips := "—", "—"
		if r.RedisCommands >= 0 {
			cmds = fmt.Sprintf("%.2f", r.RedisPerRegistration())
			trips = fmt.Sprintf("%.3f", r.RoundTripsPerRegistration())
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %s | %.3f | %.1f | %.2f | %s | %s | %.3f | %s |\n",
			thousands(r.Trunks), r.Cache, r.RegisterTime.Seconds(), thousands(int(r.RegistersPerSecond+0.5)),
			r.CPUPer1000(), mib(r.PeakRSS), r.RSSPerTrunk()/1024, cmds, trips, r.IdleTickCPU, verdict(checks(r)))
	}

	header := false
	for _, row := range rows {
		if row.Err != nil {
			continue
		}
		for _, c := range checks(row.Result) {
			if !header {
				header = true
				fmt.Fprintln(w)
				fmt.Fprintln(w, "| target | trunks | cache | measured | verdict |")
				fmt.Fprintln(w, "|---|---:|---|---:|---|")
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.target, thousands(row.Trunks), row.Cache, c.measured, c.verdict)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "Columns: *registered in*: from the first FindBy until the Requester had answered 200 OK to every trunk. "+
		"*REGISTERs/s*: SendMessage calls over the span from the first to the last. "+
		"*CPU*: the registry's user+system CPU from the first FindBy until it was quiet after the last answer (last records written). "+
		"*peak RSS*: VmHWM at the end of the row; *RSS / trunk*: (peak − RSS at the first FindBy) / trunks. "+
		"*Redis cmds/registration* and *round trips/registration*: what the registry sent to Redis over the same span, per registration, "+
		"counted by a proxy on the registry's Redis connection (a round trip is a burst of requests after an answer; "+
		"a pipeline is one round trip carrying many commands). Redis's own total_commands_processed over the span is in the notes: "+
		"it is server-wide, so other clients of a shared server inflate it. "+
		"*idle tick*: the registry's CPU over one registerInterval (%s) centred on a discovery tick, once every trunk was registered "+
		"(no refresh is due: every 200 OK grants 600 s); with several idle windows, their mean. "+
		"CPU is read from /proc/<pid>/stat (utime+stime) in clock ticks of %.0f ms, so small values are coarse.\n", interval, 1000/clockTicks())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes:")
	for _, row := range rows {
		fmt.Fprintf(w, "- %s, %s: %s\n", thousands(row.Trunks), row.Cache, notes(row))
	}
}

// notes describes what else a row saw.
func notes(row Row) string {
	r := row.Result
	var parts []string
	if row.Err != nil {
		label := "**not measured**: "
		if errors.Is(row.Err, ErrIncomplete) {
			label = "**not met**: "
		}
		parts = append(parts, label+strings.ReplaceAll(row.Err.Error(), "\n", " ⏎ "))
	} else {
		parts = append(parts,
			fmt.Sprintf("%s REGISTERs, the first %.0f ms after the first FindBy", thousands(int(r.Registers)), ms(r.FirstRegister)),
			fmt.Sprintf("FindBy calls in the phase: %d (the first included)", r.FindBysDuringPhase))
		if r.Settled {
			parts = append(parts, fmt.Sprintf("quiet %.0f ms after the last answer", ms(r.Settle)))
		} else {
			parts = append(parts, fmt.Sprintf("still busy %.1f s after the last answer (CPU and Redis counted up to then)", r.Settle.Seconds()))
		}
		parts = append(parts, fmt.Sprintf("registry CPU %.2f s, bench (fakes) CPU %.2f s over the phase", r.RegisterCPU, r.BenchCPU))
		parts = append(parts, fmt.Sprintf("RSS %.1f MiB at the first FindBy", mib(r.StartRSS)))
		if r.RedisCommands >= 0 {
			parts = append(parts, fmt.Sprintf("the registry's Redis commands %s (%s) in %s round trips; Redis's server-wide count %s%s",
				thousands(int(r.RedisCommands)), breakdown(r.RedisByCommand), thousands(int(r.RedisRoundTrips)),
				thousands(int(r.RedisServerCommands)), othersNote(r.RedisServerCommands, r.RedisCommands)))
		}
		idle := fmt.Sprintf("idle window: %d FindBy, %d REGISTERs", r.IdleFindBys, r.IdleRegisters)
		if r.IdleWindows > 1 {
			idle = fmt.Sprintf("%d idle windows (CPU mean %.3f s, max %.3f s): %d FindBy, %d REGISTERs",
				r.IdleWindows, r.IdleTickCPU, r.IdleTickCPUMax, r.IdleFindBys, r.IdleRegisters)
		}
		if r.IdleRedisCommands >= 0 {
			idle += fmt.Sprintf(", %s Redis commands from the registry", thousands(int(r.IdleRedisCommands)))
			if r.IdleRedisCommands > 0 {
				idle += " (" + breakdown(r.IdleRedisByCommand) + ")"
			}
			idle += fmt.Sprintf(" (server-wide %s%s)", thousands(int(r.IdleRedisServerCommands)),
				othersNote(r.IdleRedisServerCommands, r.IdleRedisCommands))
		}
		if r.IdleFindBys != r.IdleWindows {
			idle += " (**not one tick per window**)"
		}
		parts = append(parts, idle)
	}
	if row.Cache == CacheRedis && (row.Err == nil || r.RedisKeys > 0) {
		parts = append(parts, fmt.Sprintf("%s keys of the row's prefix deleted at the end", thousands(r.RedisKeys)))
	}
	if r.LogLines > 0 && !errors.Is(row.Err, errRegistryExited) {
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
func breakdown(per map[string]int64) string {
	names := slices.SortedFunc(maps.Keys(per), func(a, b string) int {
		return cmp.Or(cmp.Compare(per[b], per[a]), strings.Compare(a, b))
	})
	if len(names) == 0 {
		return "none"
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %s", strings.ToUpper(n), thousands(int(per[n]))))
	}
	return strings.Join(out, ", ")
}

func mib(b int64) float64        { return float64(b) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
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
