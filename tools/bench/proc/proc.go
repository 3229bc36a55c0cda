// Package proc runs the registry binary the bench measures and reads its cost from
// /proc: CPU time (utime + stime, in clock ticks) and resident memory (VmRSS, and the
// peak VmHWM). The bench runs the real binary, not the engine in process, so that what
// it reports is what a deployment pays: the whole process, its runtime and garbage
// collector included. It also keeps the registry's last output lines and watches its
// exit, so that a run which loses its registry says why.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrExited is returned when the registry ends while a run still needs it.
var ErrExited = errors.New("registry exited")

// tailLines is how many of the registry's last output lines are kept for errors.
const tailLines = 20

// Registry is a running registry binary whose output is kept (the last lines, and
// a count) and whose exit is observed.
type Registry struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed once the process has been waited for

	mu      sync.Mutex // guards the fields below
	exitErr error
	lines   int      // output lines seen (LOGS_LEVEL=warn: warnings and errors)
	tail    []string // the last tailLines of them
}

// Start starts bin with the config file, LOGS_LEVEL=warn and its output read
// into the registry's tail.
func Start(bin, config string) (*Registry, error) {
	cmd := exec.Command(bin, "--config", config)
	// Later entries win: the bench's log level overrides the environment's.
	cmd.Env = append(os.Environ(), "LOGS_LEVEL=warn")
	// The registry must not outlive a bench that dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start registry %s: %w", bin, err)
	}
	pw.Close() // the child holds its own copy
	r := &Registry{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.lines++
			r.tail = append(r.tail, sc.Text())
			if len(r.tail) > tailLines {
				r.tail = r.tail[len(r.tail)-tailLines:]
			}
			r.mu.Unlock()
		}
	}()
	go func() {
		err := cmd.Wait()
		<-read // the whole output is in before anyone looks at the exit
		r.mu.Lock()
		r.exitErr = err
		r.mu.Unlock()
		close(r.exited)
	}()
	return r, nil
}

// PID returns the registry's process ID.
func (r *Registry) PID() int { return r.pid }

// Exited returns a channel closed once the registry has exited (and its output is
// read).
func (r *Registry) Exited() <-chan struct{} { return r.exited }

// Kill sends SIGKILL and waits for the exit.
func (r *Registry) Kill() {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// Output returns how many lines the registry wrote and the last of them.
func (r *Registry) Output() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines, append([]string(nil), r.tail...)
}

// ExitError describes an exit that happened while the registry was still needed.
func (r *Registry) ExitError() error {
	r.mu.Lock()
	err := r.exitErr
	tail := strings.Join(r.tail, "\n  ")
	r.mu.Unlock()
	if err == nil {
		err = errors.New("exit status 0")
	}
	if tail == "" {
		tail = "(no output)"
	}
	return fmt.Errorf("%w early (%v); its last output:\n  %s", ErrExited, err, tail)
}

// Stop sends SIGTERM and waits for the exit, killing the process after grace.
func (r *Registry) Stop(grace time.Duration) error {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-r.exited:
		case <-t.C:
			_ = r.cmd.Process.Kill()
			<-r.exited
			return fmt.Errorf("registry did not stop within %s of SIGTERM: killed", grace)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exitErr != nil {
		return fmt.Errorf("registry exit after SIGTERM: %w", r.exitErr)
	}
	return nil
}

// ClockTicks returns the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: CPU times are read to 1/ClockTicks of a second.
func ClockTicks() float64 { return clockTicks() }

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100 // USER_HZ on every Linux architecture Go supports
})

// CPUSeconds returns the user plus system CPU time the process has used.
func CPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseStatTicks(data)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ticks) / clockTicks(), nil
}

// parseStatTicks returns utime+stime (fields 14 and 15) from /proc/<pid>/stat. The
// command name (field 2) is in parentheses and may hold spaces and parentheses, so
// the fields are counted from the last ')'.
func parseStatTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	// After ")": field 3 (state) is the first.
	f := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want more than %d", len(f), stime)
	}
	u, err := strconv.ParseInt(f[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseInt(f[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + s, nil
}

// Memory returns the peak (VmHWM) and current (VmRSS) resident set size, in bytes.
func Memory(pid int) (peak, rss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	peak, rss, err = parseStatusMemory(data)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return peak, rss, nil
}

// parseStatusMemory reads VmHWM and VmRSS ("VmHWM:\t  12345 kB") from /proc/<pid>/status.
func parseStatusMemory(status []byte) (peak, rss int64, err error) {
	var gotPeak, gotRSS bool
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", name, strings.TrimSpace(value))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		if name == "VmHWM" {
			peak, gotPeak = kb<<10, true
		} else {
			rss, gotRSS = kb<<10, true
		}
	}
	if !gotPeak || !gotRSS {
		return 0, 0, errors.New("no VmHWM or VmRSS line")
	}
	return peak, rss, nil
}
