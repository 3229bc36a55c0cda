package cluster

import "time"

// Result is what the several-replicas scenario measured. A phase that was not
// reached leaves its fields zero and its flag (Registered, IdleMeasured,
// FailoverMeasured) false.
type Result struct {
	// Trunks, Replicas (their IDs, r1...), LeaseTTL and Interval repeat the set-up.
	Trunks   int
	Replicas []string
	LeaseTTL time.Duration
	Interval time.Duration

	// Registered is true once every trunk was answered 200 OK within the timeout.
	Registered bool
	// RegisterTime is from the first FindBy (by the discovery leader) until the
	// N-th distinct trunk was answered 200 OK; FirstRegister until the first
	// REGISTER. Registers counts the REGISTERs of the phase.
	RegisterTime  time.Duration
	FirstRegister time.Duration
	Registers     int64
	// RegisterCPU is each replica's CPU from the first FindBy until the replicas
	// were quiet after the last answer; Settle and Settled as in bench.Result.
	RegisterCPU []float64
	Settle      time.Duration
	Settled     bool
	// FindBysDuringPhase counts the FindBy calls of the phase (the leader's).
	FindBysDuringPhase int
	// RedisCommands and RedisRoundTrips are what the replicas sent to Redis over the
	// phase (the proxy's count, all replicas), by command in RedisByCommand;
	// RedisServerCommands is Redis's own, server-wide count.
	RedisCommands       int64
	RedisRoundTrips     int64
	RedisByCommand      map[string]int64
	RedisServerCommands int64

	// IdleMeasured is true once the idle window was measured: IdleRounds lease-
	// renewal periods (LeaseTTL/3 each) of IdleWindow in all, once every trunk was
	// registered and the replicas were quiet. IdleCPU is each replica's CPU over it.
	IdleMeasured            bool
	IdleWindow              time.Duration
	IdleRounds              int
	IdleCPU                 []float64
	IdleRedisCommands       int64
	IdleRedisRoundTrips     int64
	IdleRedisByCommand      map[string]int64
	IdleRedisServerCommands int64
	IdleRegisters           int64
	IdleFindBys             int

	// Ownership before the kill, from the control API: Listed is how many
	// registrations every page of ListRegistrations through ListedFrom returned
	// (taking ListTime), Owned how many of them each owner holds ("" for none),
	// ListAgree how many were REGISTERED with an owner and the expected AOR user.
	Owned      map[string]int
	Listed     int
	ListAgree  int
	ListedFrom string
	ListTime   time.Duration
	// MetricsBefore is each replica's cluster series (/metrics) before the kill,
	// MetricsAfter once the failover was measured (the killed replica's not OK).
	MetricsBefore []replicaMetrics
	MetricsAfter  []replicaMetrics

	// FailoverMeasured is true once the failover was measured (complete or not).
	// Victim is the replica SIGKILLed (the one owning the most trunks), Moved how
	// many trunks it owned, Refreshed how many of them were REGISTERed again after
	// the kill, within FailoverTimeout; FailoverComplete says all were, and then
	// FailoverTime is from the kill until the last of them (FailoverFirst until
	// the first). Continued is how many of them kept their Call-ID with a higher
	// CSeq (the new owner moves past the dead one's reserved CSeq ceiling);
	// Unmatched how many had no AOR user or no REGISTER before the kill (counted
	// as not continued).
	FailoverMeasured bool
	Victim           string
	Moved            int
	Refreshed        int
	FailoverComplete bool
	FailoverTime     time.Duration
	FailoverFirst    time.Duration
	FailoverTimeout  time.Duration
	Continued        int
	Unmatched        int
	// FailoverRegisters is how many REGISTERs arrived from the kill until the last
	// moved trunk was refreshed (or the timeout).
	FailoverRegisters int64
	// MovedTo is who owns the killed replica's trunks after the failover, from every
	// page of ListRegistrations through MovedFrom (a survivor); "" for no owner.
	// MovedListedIn is from the first of those listings to the one reported (the
	// listing is read again until no moved trunk names the killed replica, up to
	// bench.SettleMax).
	MovedTo       map[string]int
	MovedFrom     string
	MovedListedIn time.Duration

	// RedisKeys is how many keys of the scenario's two prefixes (records; the
	// cluster's leases, fences, members and desired set) were deleted at the end.
	RedisKeys int
	// LogLines and LastLog are per replica: warning and error lines (the replicas
	// log at warn level, as the single-replica rows), and the last few.
	LogLines []int
	LastLog  [][]string
}

// RedisPerRegistration is the phase's Redis commands per registration.
func (r Result) RedisPerRegistration() float64 {
	return float64(r.RedisCommands) / float64(max(r.Trunks, 1))
}

// RoundTripsPerRegistration is the phase's Redis round trips per registration.
func (r Result) RoundTripsPerRegistration() float64 {
	return float64(r.RedisRoundTrips) / float64(max(r.Trunks, 1))
}

// CommandsPerRenewalRound is the idle window's Redis commands divided by (renewal
// rounds × replicas).
func (r Result) CommandsPerRenewalRound() float64 {
	return float64(r.IdleRedisCommands) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// RoundTripsPerRenewalRound is the idle window's Redis round trips divided by
// (renewal rounds × replicas).
func (r Result) RoundTripsPerRenewalRound() float64 {
	return float64(r.IdleRedisRoundTrips) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// ServerCommandsPerRenewalRound is Redis's own count over the idle window (the
// commands Lua scripts run included) divided by (renewal rounds × replicas).
func (r Result) ServerCommandsPerRenewalRound() float64 {
	return float64(r.IdleRedisServerCommands) / float64(max(r.IdleRounds*len(r.Replicas), 1))
}

// IdleCPUPerMinute is each replica's CPU over the idle window scaled to a minute.
func (r Result) IdleCPUPerMinute() []float64 {
	out := make([]float64, len(r.IdleCPU))
	if r.IdleWindow <= 0 {
		return out
	}
	for i, c := range r.IdleCPU {
		out[i] = c * float64(time.Minute) / float64(r.IdleWindow)
	}
	return out
}

// TakenOver is how many trunks the survivors' sipreg_cluster_takeovers_total rose
// by from before the kill to after the failover; ok is false when a scrape is missing.
func (r Result) TakenOver() (n int64, ok bool) {
	if len(r.MetricsBefore) != len(r.MetricsAfter) || len(r.MetricsAfter) == 0 {
		return 0, false
	}
	for i, a := range r.MetricsAfter {
		if r.Replicas[i] == r.Victim {
			continue
		}
		if !a.OK || !r.MetricsBefore[i].OK {
			return n, false
		}
		n += a.Takeovers - r.MetricsBefore[i].Takeovers
	}
	return n, true
}

// TargetFailover is the failover target: the lease TTL plus TargetFailoverSlack.
func (r Result) TargetFailover() time.Duration { return r.LeaseTTL + TargetFailoverSlack }
