package registration_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/registration"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestStateValid(t *testing.T) {
	if len(registration.States) != 8 {
		t.Errorf("States has %d states, want 8", len(registration.States))
	}
	seen := map[registration.State]bool{}
	for _, s := range registration.States {
		if !s.Valid() {
			t.Errorf("%q is not Valid", s)
		}
		if seen[s] {
			t.Errorf("%q listed twice", s)
		}
		seen[s] = true
	}
	for _, s := range []registration.State{
		registration.StatePending, registration.StateRegistering, registration.StateRegistered,
		registration.StateAuthFailed, registration.StateRejected, registration.StateRetrying,
		registration.StateUnregistering, registration.StateUnregistered,
	} {
		if !seen[s] {
			t.Errorf("%q is missing from States", s)
		}
	}
	for _, s := range []registration.State{"", "Registered", "REGISTERED", "registered ", "expired", "auth_failed"} {
		if s.Valid() {
			t.Errorf("%q is Valid", s)
		}
	}
}

func TestRecordRegistered(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  registration.Record
		want bool
	}{
		{"registered, live", registration.Record{State: registration.StateRegistered, ExpiresAt: now.Add(time.Second)}, true},
		{"registered, expires now", registration.Record{State: registration.StateRegistered, ExpiresAt: now}, false},
		{"registered, expired", registration.Record{State: registration.StateRegistered, ExpiresAt: now.Add(-time.Second)}, false},
		{"registered, no expiry", registration.Record{State: registration.StateRegistered}, false},
		{"retrying, still live", registration.Record{State: registration.StateRetrying, ExpiresAt: now.Add(time.Minute)}, false},
		{"pending", registration.Record{State: registration.StatePending}, false},
	}
	for _, tt := range tests {
		if got := tt.rec.Registered(now); got != tt.want {
			t.Errorf("%s: Registered = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The Record is what the store keeps and another replica reads: its JSON form is a
// compatibility contract, pinned by testdata/record.golden.json (and an empty Record
// writes no zero times).
func TestRecordJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rec := registration.Record{
		TrunkRef: "trunk-1", TrunkName: "Provider", AOR: "sip:alice@sip.provider.net",
		Target: "sip.provider.net:5060", Transport: "udp", EdgePort: "sip01.edgeport.net:5060",
		Fingerprint: "0123456789abcdef", State: registration.StateRegistered,
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 7,
		RequestedExpires: 3600, MinExpires: 3600, NoGin: true,
		GrantedExpires: 3600, ExpiresAt: at.Add(time.Hour), RegisteredSince: at.Add(-time.Hour),
		NextAction: registration.ActionRefresh, NextActionAt: at.Add(30 * time.Minute),
		LastResponseCode: 200, LastResponseType: "OK", LastReason: "OK", Failures: 0,
		Owner: "replica-a", Fence: 3, UpdatedAt: at,
	}
	got, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "record.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(path); err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	} else if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update and review the diff)\n--- got\n%s\n--- want\n%s", path, got, want)
	}

	var back registration.Record
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back != rec {
		t.Errorf("round trip:\n %+v\nwant\n %+v", back, rec)
	}

	empty, err := json.Marshal(registration.Record{TrunkRef: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"expiresAt", "registeredSince", "nextActionAt"} {
		if bytes.Contains(empty, []byte(k)) {
			t.Errorf("empty Record writes %s: %s", k, empty)
		}
	}
}
