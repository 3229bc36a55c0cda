package cluster

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"sipreg.dev/tools/bench"
)

// clusterCheck is one line of the several-replicas table.
type clusterCheck struct {
	measure  string
	measured string
	target   string // "—" when there is none
	verdict  string // "" when there is no target
}

const notMeasured = bench.VerdictNotMeasured

// clusterChecks returns the lines of the several-replicas table.
func clusterChecks(r Result) []clusterCheck {
	verdictOf := func(met bool) string {
		if met {
			return bench.VerdictMet
		}
		return "**" + bench.VerdictNotMet + "**"
	}
	var out []clusterCheck

	reg := clusterCheck{measure: "every trunk registered, from the first FindBy (s)", measured: notMeasured, target: "—"}
	red := clusterCheck{measure: "Redis commands / registration (round trips)", measured: notMeasured,
		target: fmt.Sprintf("≤ %.2f round trips", bench.TargetRedisRoundTrips), verdict: notMeasured}
	if r.Registered {
		reg.measured = fmt.Sprintf("%.2f", r.RegisterTime.Seconds())
		red.measured = fmt.Sprintf("%.2f (%.3f)", r.RedisPerRegistration(), r.RoundTripsPerRegistration())
		red.verdict = verdictOf(r.RoundTripsPerRegistration() <= bench.TargetRedisRoundTrips)
	}
	out = append(out, reg, red)

	renew := clusterCheck{measure: "Redis commands / lease-renewal round (round trips)", measured: notMeasured, target: "—"}
	inner := clusterCheck{measure: "Redis commands run / lease-renewal round, the Lua scripts' own included (Redis's count)", measured: notMeasured, target: "—"}
	cpu := clusterCheck{measure: "idle CPU s / replica / minute: " + strings.Join(r.Replicas, ", ") + " (mean)", measured: notMeasured, target: "—"}
	if r.IdleMeasured {
		renew.measured = fmt.Sprintf("%.1f (%.2f)", r.CommandsPerRenewalRound(), r.RoundTripsPerRenewalRound())
		inner.measured = bench.Thousands(int(math.Round(r.ServerCommandsPerRenewalRound())))
		per := r.IdleCPUPerMinute()
		parts := make([]string, len(per))
		var total float64
		for i, c := range per {
			parts[i] = fmt.Sprintf("%.3f", c)
			total += c
		}
		cpu.measured = fmt.Sprintf("%s (%.3f)", strings.Join(parts, ", "), total/float64(max(len(per), 1)))
	}
	out = append(out, renew, inner, cpu)

	target := fmt.Sprintf("≤ %.0f (lease TTL %s + %s)", r.TargetFailover().Seconds(), seconds(r.LeaseTTL), seconds(TargetFailoverSlack))
	fail := clusterCheck{measure: "failover after SIGKILL: kill → every trunk of the killed replica REGISTERed again (s)",
		measured: notMeasured, target: target, verdict: notMeasured}
	moved := clusterCheck{measure: "trunks moved; of them, kept Call-ID with a higher CSeq", measured: notMeasured,
		target: "all", verdict: notMeasured}
	taken := clusterCheck{measure: "trunks taken over by the survivors during the failover (their " + metricTakeovers + ")",
		measured: notMeasured, target: "= trunks moved", verdict: notMeasured}
	if r.FailoverMeasured {
		fail.measure = fmt.Sprintf("failover after SIGKILL of %s: kill → every trunk it owned REGISTERed again (s)", r.Victim)
		if r.FailoverComplete {
			fail.measured = fmt.Sprintf("%.2f", r.FailoverTime.Seconds())
			fail.verdict = verdictOf(r.FailoverTime <= r.TargetFailover())
		} else {
			fail.measured = fmt.Sprintf("> %.0f (%s of %s)", r.FailoverTimeout.Seconds(), bench.Thousands(r.Refreshed), bench.Thousands(r.Moved))
			fail.verdict = verdictOf(false)
		}
		moved.measured = fmt.Sprintf("%s; %s", bench.Thousands(r.Moved), bench.Thousands(r.Continued))
		moved.verdict = verdictOf(r.Moved > 0 && r.Continued == r.Moved)
		if n, ok := r.TakenOver(); ok {
			taken.measured = fmt.Sprintf("%s of %s", bench.Thousands(int(n)), bench.Thousands(r.Moved))
			taken.verdict = verdictOf(int(n) == r.Moved)
		}
	}
	return append(out, fail, moved, taken)
}

// Write prints the several-replicas scenario as a Markdown table with its
// targets, then how it was measured and notes. err is Run's error (the
// phases not reached show as not measured).
func Write(w io.Writer, r Result, err error) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "### Several replicas (%d × registry, %s trunks)\n", len(r.Replicas), bench.Thousands(r.Trunks))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | measured | target | verdict |")
	fmt.Fprintln(w, "|---|---:|---|---|")
	for _, c := range clusterChecks(r) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.measure, c.measured, c.target, c.verdict)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Method: %d registry processes in cluster mode (leaseTTL %s, registerInterval %s, the single-replica rows' config otherwise: "+
		"shipped defaults, listeners on ports the bench picked) "+
		"share one Redis through the bench's counting proxy, with one key prefix. "+
		"*Registered*: from the first FindBy (the discovery leader's) until the Requester had answered 200 OK to every trunk (distinct To users). "+
		"*Redis / registration*: what the replicas sent to Redis from the first FindBy until they were quiet after the last answer, "+
		"over the number of trunks. "+
		"*Redis / lease-renewal round*: once every trunk was registered and the replicas were quiet, the replicas' Redis commands and round trips "+
		"over an idle window of R whole renewal periods (leaseTTL/3 = %s; each replica renews all its leases, and heartbeats, once per period "+
		"on its own ticker, so the window holds R rounds of each), divided by R × %d replicas: the whole idle Redis cost of a replica per round, "+
		"the membership heartbeat and the discovery ticks in the window (the leader's lease renewal, FindBy and version check; "+
		"the others' fetch of the version) included. "+
		"*Commands run*: Redis's own count (total_commands_processed, the bench's INFOs taken out) over the same window and divided the same way: "+
		"it counts the commands each Lua script runs (a renewal is one EVALSHA per 1,000 leases on the wire, a GET and a PEXPIRE per lease in Redis); "+
		"it is server-wide, so another client of the server would inflate it. "+
		"*Idle CPU*: each replica's user+system CPU over the same window, scaled to a minute. "+
		"*Failover*: the replica holding the most trunk leases is SIGKILLed; from the kill until every trunk it held "+
		"had received a REGISTER again; each must continue its binding (the Call-ID of its last REGISTER before the kill, CSeq one more). "+
		"Owners are read from the replicas' control API: every page of ListRegistrations through the first replica before the kill "+
		"(its mirror holds every trunk's record and owner), and through the first survivor after the failover. "+
		"Takeovers, hand-overs, lease renewal failures and leases held are each replica's "+metricTakeovers+", "+metricHandOvers+", "+
		metricRenewFailures+" and "+metricOwned+" from its /metrics, read before the kill and once the failover was measured. "+
		"The replicas log at warn level, as the single-replica rows; the bench reads nothing from their logs but warnings for the notes.\n", len(r.Replicas), seconds(r.LeaseTTL), seconds(r.Interval), seconds(r.LeaseTTL/3), len(r.Replicas))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes:")
	for _, n := range clusterNotes(r, err) {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// clusterNotes describes what else the scenario saw.
func clusterNotes(r Result, err error) []string {
	var out []string
	if err != nil {
		label := "**not measured**: "
		if errors.Is(err, bench.ErrIncomplete) {
			label = "**not met**: "
		}
		out = append(out, label+strings.ReplaceAll(err.Error(), "\n", " ⏎ "))
	}
	if r.Registered {
		s := fmt.Sprintf("registration: %s REGISTERs, the first %.0f ms after the first FindBy; FindBy calls in the phase: %d; ",
			bench.Thousands(int(r.Registers)), bench.Millis(r.FirstRegister), r.FindBysDuringPhase)
		if r.Settled {
			s += fmt.Sprintf("quiet %.0f ms after the last answer", bench.Millis(r.Settle))
		} else {
			s += fmt.Sprintf("still busy %.1f s after the last answer (CPU and Redis counted up to then)", r.Settle.Seconds())
		}
		s += fmt.Sprintf("; CPU %s s (%.3f s per 1,000 registrations, all replicas)", perReplica(r.Replicas, r.RegisterCPU, "%.2f"),
			sum(r.RegisterCPU)/float64(max(r.Trunks, 1))*1000)
		s += fmt.Sprintf("; the replicas' Redis commands %s (%s) in %s round trips; Redis's own count %s (the Lua scripts' commands included)",
			bench.Thousands(int(r.RedisCommands)), bench.Breakdown(r.RedisByCommand), bench.Thousands(int(r.RedisRoundTrips)),
			bench.Thousands(int(r.RedisServerCommands)))
		out = append(out, s)
	}
	if r.IdleMeasured {
		out = append(out, fmt.Sprintf("idle window: %.2f s = %d renewal periods of %s; %d FindBy, %d REGISTERs; CPU %s s; "+
			"the replicas' Redis commands %s (%s) in %s round trips, %.1f commands and %.2f round trips per replica per round; "+
			"Redis's own count %s, %s per replica per round",
			r.IdleWindow.Seconds(), r.IdleRounds, seconds(r.LeaseTTL/3), r.IdleFindBys, r.IdleRegisters, perReplica(r.Replicas, r.IdleCPU, "%.3f"),
			bench.Thousands(int(r.IdleRedisCommands)), bench.Breakdown(r.IdleRedisByCommand), bench.Thousands(int(r.IdleRedisRoundTrips)),
			r.CommandsPerRenewalRound(), r.RoundTripsPerRenewalRound(),
			bench.Thousands(int(r.IdleRedisServerCommands)), bench.Thousands(int(math.Round(r.ServerCommandsPerRenewalRound())))))
	}
	if r.Owned != nil {
		s := fmt.Sprintf("ownership before the kill, from ListRegistrations through %s (%.2f s, every page): %s registrations (%s)",
			r.ListedFrom, r.ListTime.Seconds(), bench.Thousands(r.Listed), owned(r.Owned))
		if r.Listed != r.Trunks {
			s += fmt.Sprintf(" (**%s trunks served**)", bench.Thousands(r.Trunks))
		}
		s += fmt.Sprintf(", %s of them REGISTERED with an owner and the expected AOR user", bench.Thousands(r.ListAgree))
		s += "; leases held by each replica's own count (" + metricOwned + "): " + metricsOf(r.Replicas, r.MetricsBefore,
			func(m replicaMetrics) int64 { return m.Owned })
		out = append(out, s)
	}
	if r.FailoverMeasured {
		s := fmt.Sprintf("failover: %s SIGKILLed owning %s trunks; ", r.Victim, bench.Thousands(r.Moved))
		if r.FailoverComplete {
			s += fmt.Sprintf("the first REGISTERed again %.2f s after the kill, the last %.2f s", r.FailoverFirst.Seconds(), r.FailoverTime.Seconds())
		} else {
			s += fmt.Sprintf("**only %s REGISTERed again within %s**", bench.Thousands(r.Refreshed), r.FailoverTimeout)
			if r.Refreshed > 0 {
				s += fmt.Sprintf(" (the first %.2f s after the kill)", r.FailoverFirst.Seconds())
			}
		}
		s += fmt.Sprintf("; %s REGISTERs in all meanwhile; %s of %s continued their binding (same Call-ID, higher CSeq)",
			bench.Thousands(int(r.FailoverRegisters)), bench.Thousands(r.Continued), bench.Thousands(r.Moved))
		if r.Unmatched > 0 {
			s += fmt.Sprintf("; %s had no AOR user or no REGISTER before the kill", bench.Thousands(r.Unmatched))
		}
		s += fmt.Sprintf("; their owners afterwards, from ListRegistrations through %s (%.2f s after the first listing): %s",
			r.MovedFrom, r.MovedListedIn.Seconds(), owned(r.MovedTo))
		if n := r.MovedTo[r.Victim]; n > 0 {
			s += fmt.Sprintf(" (**%s still named %s**)", bench.Thousands(n), r.Victim)
		}
		out = append(out, s)
	}
	if len(r.MetricsAfter) > 0 {
		s := "the replicas' /metrics, before the kill → after the failover: takeovers " +
			metricsSpan(r.Replicas, r.MetricsBefore, r.MetricsAfter, func(m replicaMetrics) int64 { return m.Takeovers }) +
			"; hand-overs " + metricsSpan(r.Replicas, r.MetricsBefore, r.MetricsAfter, func(m replicaMetrics) int64 { return m.HandOvers }) +
			"; lease renewal rounds that failed " + metricsSpan(r.Replicas, r.MetricsBefore, r.MetricsAfter, func(m replicaMetrics) int64 { return m.RenewFailed }) +
			"; leases held " + metricsSpan(r.Replicas, r.MetricsBefore, r.MetricsAfter, func(m replicaMetrics) int64 { return m.Owned })
		if n, ok := r.TakenOver(); ok && int(n) != r.Moved {
			s += fmt.Sprintf(" — **the survivors took over %s trunks, %s moved**", bench.Thousands(int(n)), bench.Thousands(r.Moved))
		}
		out = append(out, s)
	}
	if r.RedisKeys > 0 || err == nil {
		out = append(out, fmt.Sprintf("%s keys of the scenario's prefixes (records, and the cluster's leases, fences, members, desired set) deleted at the end",
			bench.Thousands(r.RedisKeys)))
	}
	for i, n := range r.LogLines {
		if n == 0 || i >= len(r.Replicas) || len(r.LastLog[i]) == 0 {
			continue
		}
		last := r.LastLog[i][len(r.LastLog[i])-1]
		if len(last) > 300 {
			last = last[:300] + "…"
		}
		out = append(out, fmt.Sprintf("%s logged %d warning/error lines, the last: `%s`", r.Replicas[i], n, last))
	}
	return out
}

// owned writes "r1 33,346, r2 33,167" (by owner; "" is "no lease").
func owned(m map[string]int) string {
	ids := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(ids))
	for i, id := range ids {
		name := id
		if name == "" {
			name = "no owner"
		}
		parts[i] = fmt.Sprintf("%s %s", name, bench.Thousands(m[id]))
	}
	return strings.Join(parts, ", ")
}

// seconds writes a duration in seconds, as "3.33 s" or "10 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Seconds()*100)/100, 'f', -1, 64) + " s"
}

// metricsOf writes one series per replica: "r1 33,346, r2 ..." ("r3 — (why)" when
// its scrape failed).
func metricsOf(ids []string, ms []replicaMetrics, f func(replicaMetrics) int64) string {
	parts := make([]string, 0, len(ms))
	for i, m := range ms {
		v := "— (" + m.Err + ")"
		if m.OK {
			v = bench.Thousands(int(f(m)))
		}
		parts = append(parts, ids[i]+" "+v)
	}
	return strings.Join(parts, ", ")
}

// metricsSpan writes one series per replica before and after: "r1 0 → 17,000, ...".
func metricsSpan(ids []string, before, after []replicaMetrics, f func(replicaMetrics) int64) string {
	num := func(m replicaMetrics) string {
		if !m.OK {
			return "—"
		}
		return bench.Thousands(int(f(m)))
	}
	parts := make([]string, 0, len(after))
	for i := range after {
		b := replicaMetrics{}
		if i < len(before) {
			b = before[i]
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", ids[i], num(b), num(after[i])))
	}
	return strings.Join(parts, ", ")
}

// perReplica writes "r1 0.12, r2 0.10, r3 0.11".
func perReplica(ids []string, vals []float64, format string) string {
	parts := make([]string, 0, len(vals))
	for i, v := range vals {
		id := fmt.Sprintf("#%d", i+1)
		if i < len(ids) {
			id = ids[i]
		}
		parts = append(parts, id+" "+fmt.Sprintf(format, v))
	}
	return strings.Join(parts, ", ")
}
