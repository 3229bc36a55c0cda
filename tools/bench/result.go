package bench

import (
	"time"
)

// Result is one measured run of a row.
type Result struct {
	// Trunks and Cache repeat the row's Config.
	Trunks int
	Cache  string

	// RegisterTime is from the first FindBy until the N-th distinct trunk was
	// answered 200 OK.
	RegisterTime time.Duration
	// FirstRegister is from the first FindBy until the first REGISTER arrived.
	FirstRegister time.Duration
	// Registers is how many SendMessage calls arrived until every trunk was
	// registered (N when none was repeated).
	Registers int64
	// RegistersPerSecond is Registers over the time from the first REGISTER to the
	// last one of the phase.
	RegistersPerSecond float64
	// RegisterCPU is the registry's CPU (user + system) from the first FindBy until
	// it was quiet after the last trunk was answered.
	RegisterCPU float64
	// Settle is how long after the last answer the registry took to be quiet;
	// Settled is false when it was still busy after the longest wait.
	Settle  time.Duration
	Settled bool
	// BenchCPU is the bench process's own CPU over the same span (the fakes): on a
	// small machine it competes with the registry for cores.
	BenchCPU float64
	// FindBysDuringPhase counts the discovery ticks that fell in the phase.
	FindBysDuringPhase int

	// PeakRSS is the registry's VmHWM at the end of the row; StartRSS its VmRSS at
	// the first FindBy. Bytes.
	PeakRSS  int64
	StartRSS int64

	// RedisCommands and RedisRoundTrips are what the registry sent to Redis over
	// the registration phase, counted by a proxy on its connection; RedisByCommand
	// breaks the commands down by name. -1 and nil with the memory cache.
	RedisCommands   int64
	RedisRoundTrips int64
	RedisByCommand  map[string]int64
	// RedisServerCommands is Redis's own count over the same span
	// (total_commands_processed, the bench's INFOs taken out): server-wide, so it
	// also holds the commands of any other client of the server. -1 without Redis.
	RedisServerCommands int64
	// RedisKeys is how many keys of the row's prefix were deleted at the end (every
	// trunk's record, once persisted).
	RedisKeys int
	// RedisUsedMemoryBefore and RedisUsedMemoryAfter are Redis's INFO used_memory
	// at the first FindBy (before any record was written) and once the registry was
	// quiet after the last answer; -1 without Redis. RedisSampledKeys keys of the
	// row's prefix were read with MEMORY USAGE after the idle window, RedisSampleBytes
	// on average.
	RedisUsedMemoryBefore int64
	RedisUsedMemoryAfter  int64
	RedisSampledKeys      int
	RedisSampleBytes      float64

	// IdleTickCPU is the registry's CPU over one registerInterval centred on a
	// discovery tick once every trunk was registered: the mean over IdleWindows
	// back-to-back windows, the largest of which took IdleTickCPUMax. The windows
	// saw IdleFindBys FindBy calls, IdleRegisters REGISTERs and IdleRedisCommands
	// Redis commands in all.
	IdleTickCPU       float64
	IdleTickCPUMax    float64
	IdleWindows       int
	IdleFindBys       int
	IdleRegisters     int64
	IdleRedisCommands int64
	// IdleRedisByCommand breaks IdleRedisCommands down (nil without Redis), and
	// IdleRedisServerCommands is Redis's own, server-wide count over the windows.
	IdleRedisByCommand      map[string]int64
	IdleRedisServerCommands int64

	// LogLines is how many lines the registry wrote at LOGS_LEVEL=warn; LastLog
	// holds the last few.
	LogLines int
	LastLog  []string
}

// CPUPer1000 is the registry's CPU seconds per 1,000 registrations.
func (r Result) CPUPer1000() float64 {
	return r.RegisterCPU / float64(r.Trunks) * 1000
}

// RSSPerTrunk is the growth of the registry's RSS from the first FindBy to its peak,
// per trunk, in bytes.
func (r Result) RSSPerTrunk() float64 {
	return float64(r.PeakRSS-r.StartRSS) / float64(r.Trunks)
}

// RedisBytesPerTrunk is the growth of Redis's used_memory over the registration
// phase per trunk, -1 without Redis.
func (r Result) RedisBytesPerTrunk() float64 {
	if r.RedisUsedMemoryAfter < 0 || r.RedisUsedMemoryBefore < 0 {
		return -1
	}
	return float64(r.RedisUsedMemoryAfter-r.RedisUsedMemoryBefore) / float64(r.Trunks)
}

// RedisPerRegistration is RedisCommands per registration, -1 without Redis.
func (r Result) RedisPerRegistration() float64 {
	if r.RedisCommands < 0 {
		return -1
	}
	return float64(r.RedisCommands) / float64(r.Trunks)
}

// RoundTripsPerRegistration is RedisRoundTrips per registration, -1 without Redis.
func (r Result) RoundTripsPerRegistration() float64 {
	if r.RedisRoundTrips < 0 {
		return -1
	}
	return float64(r.RedisRoundTrips) / float64(r.Trunks)
}
