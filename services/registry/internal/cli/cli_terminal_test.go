package cli

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

// TestCLIWatchLines: piped, watch prints one line per message (or one JSON object per
// line), and a stream cut by the server is a failure.
func TestCLIWatchLines(t *testing.T) {
	f := &fakeControl{regs: fixtures()[1:3], events: make(chan *registryv1.WatchRegistrationsResponse, 2),
		watchEnd: connect.NewError(connect.CodeUnavailable, errors.New("registry is shutting down; watch again"))}
	changed := fixtures()[2]
	changed.State, changed.LastResponseCode, changed.LastReason, changed.FailureCount, changed.LastError = stRegistered, 200, "OK", 0, ""
	changed.ExpiresAt, changed.NextAction, changed.NextActionAt, changed.UpdatedAt = at(10*time.Minute), "refresh", at(6*time.Minute), at(0)
	f.events <- &registryv1.WatchRegistrationsResponse{Registration: changed}
	f.events <- &registryv1.WatchRegistrationsResponse{Registration: &registryv1.Registration{TrunkRef: "acme", UpdatedAt: at(time.Second)}, Removed: true}
	close(f.events)
	addr := serveFake(t, f)
	r := runCLI(t, false, nil, "watch", "--addr", addr, "--state", "registered")
	want := `2026-11-23T09:55:12Z acme registered code=200 reason=OK expires=2026-11-23T10:09:12Z next=refresh next_at=2026-11-23T10:04:12Z owner=r1
2026-11-23T09:59:42Z charlie retrying code=503 reason="Service Unavailable" next=retry next_at=2026-11-23T10:00:42Z failures=2 owner=r1 error="503 Service Unavailable"
2026-11-23T10:00:00Z charlie registered code=200 reason=OK expires=2026-11-23T10:10:00Z next=refresh next_at=2026-11-23T10:06:00Z owner=r1
2026-11-23T10:00:01Z acme removed
`
	if r.stdout != want {
		t.Errorf("lines:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.code != 1 || r.stderr != "registry: Unavailable: registry is shutting down; watch again\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := f.lastWat.GetStates(); !slices.Equal(got, []registryv1.RegistrationState{stRegistered}) {
		t.Errorf("piped watch sent states %v, want the filter", got)
	}

	f2 := &fakeControl{regs: fixtures(), events: make(chan *registryv1.WatchRegistrationsResponse)}
	close(f2.events)
	r = runCLI(t, false, nil, "watch", "bravo", "--addr", serveFake(t, f2), "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var ev struct {
		Registration struct {
			TrunkRef  string `json:"trunkRef"`
			UpdatedAt string `json:"updatedAt"`
		} `json:"registration"`
	}
	if r.code != 0 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil ||
		ev.Registration.TrunkRef != "bravo" || ev.Registration.UpdatedAt != "2026-11-23T09:59:00Z" {
		t.Errorf("watch -o json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if f2.lastWat.GetTrunkRef() != "bravo" {
		t.Errorf("watch REF sent trunk_ref %q", f2.lastWat.GetTrunkRef())
	}
}

// TestCLIWatchLive: on a terminal, watch draws the table in place (cursor home, no
// scrolling), filters by state itself, in colour unless NO_COLOR is set.
func TestCLIWatchLive(t *testing.T) {
	for _, noColor := range []string{"", "1"} {
		f := &fakeControl{regs: fixtures(), events: make(chan *registryv1.WatchRegistrationsResponse, 1)}
		bravo := fixtures()[3]
		bravo.State = stRegistered
		f.events <- &registryv1.WatchRegistrationsResponse{Registration: bravo}
		close(f.events)
		r := runCLI(t, true, map[string]string{"NO_COLOR": noColor}, "watch", "--addr", serveFake(t, f), "--state", "registered")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if len(f.lastWat.GetStates()) != 0 {
			t.Errorf("live watch sent states %v: it filters by itself", f.lastWat.GetStates())
		}
		if !strings.HasPrefix(r.stdout, ansiClearAll+ansiHome) || !strings.HasSuffix(r.stdout, ansiClearBelow) {
			t.Errorf("not drawn in place: %q", r.stdout)
		}
		frames := strings.Split(r.stdout, ansiHome)
		last := frames[len(frames)-1]
		plain := stripANSI(last)
		if !strings.Contains(plain, "2 trunks: 2 registered") || !strings.Contains(plain, "bravo") || strings.Contains(plain, "echo") {
			t.Errorf("last frame:\n%s", plain)
		}
		if colored := strings.Contains(last, "\x1b["+sgrGreen+"m"); colored != (noColor == "") {
			t.Errorf("NO_COLOR=%q: colour %v", noColor, colored)
		}
	}
}

// stripANSI drops the escape sequences of a terminal frame.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < '@' || s[j] > '~') {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestCLIColourOnlyOnTerminal: no escape codes when stdout is not a terminal.
func TestCLIColourOnlyOnTerminal(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	if r := runCLI(t, false, nil, "list", "--addr", addr); strings.Contains(r.stdout, "\x1b") {
		t.Errorf("escape codes in piped output: %q", r.stdout)
	}
	r := runCLI(t, true, nil, "list", "--addr", addr)
	if !strings.Contains(r.stdout, "\x1b["+sgrRed+"mauth-failed\x1b[0m") {
		t.Errorf("no colour on a terminal: %q", r.stdout)
	}
	// Colour does not shift the columns.
	plain := runCLI(t, false, nil, "list", "--addr", addr).stdout
	if stripANSI(r.stdout) != plain {
		t.Errorf("coloured table differs from the plain one:\n%s\n%s", stripANSI(r.stdout), plain)
	}
	if r := runCLI(t, true, map[string]string{"NO_COLOR": "1"}, "list", "--addr", addr); strings.Contains(r.stdout, "\x1b") {
		t.Errorf("escape codes with NO_COLOR: %q", r.stdout)
	}
}

func TestRelativeTimes(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                "now",
		400 * time.Millisecond:           "now",
		3 * time.Second:                  "in 3s",
		-3 * time.Second:                 "3s ago",
		4*time.Minute + 12*time.Second:   "in 4m12s",
		2*time.Hour + 3*time.Minute:      "in 2h3m",
		-(50*time.Hour + 59*time.Minute): "2d2h ago",
		-29 * time.Minute:                "29m ago",
		3 * time.Hour:                    "in 3h",
	} {
		if got := relative(at(d), fixedNow); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
	if relative(nil, fixedNow) != "-" {
		t.Error("no time should show -")
	}
}
