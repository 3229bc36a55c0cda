package fakerequester_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/fakerequester"
)

func TestParseScript(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    fakerequester.Script
		wantErr string
	}{
		{
			name: "every field",
			doc: `
default_expires: 900
default: {kind: ok, expires: 300}
trunks:
  user000001:
    kind: challenge
    realm: example.com
    algorithm: SHA-256
    proxy: true
    username: alice
    password: secret
    stale_once: true
    expires: 120
  10.0.0.2:
    kind: server_error
    response: SERVER_INTERNAL_ERROR
    retry_after: 30
    fail_n: 2
    delay: 200ms
  user000003: {kind: interval_too_brief, min_expires: 3600}
  user000004: {kind: respond, response: decline}
`,
			want: fakerequester.Script{
				DefaultExpires: 900,
				Default:        fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 300},
				Trunks: map[string]fakerequester.Behaviour{
					"user000001": {Kind: fakerequester.KindChallenge, Realm: "example.com", Algorithm: "SHA-256", Proxy: true,
						Username: "alice", Password: "secret", StaleOnce: true, Expires: 120},
					"10.0.0.2": {Kind: fakerequester.KindServerError, Response: sipmessagev2beta1.ResponseType_SERVER_INTERNAL_ERROR,
						RetryAfter: 30, FailN: 2, Delay: 200 * time.Millisecond},
					"user000003": {Kind: fakerequester.KindIntervalTooBrief, MinExpires: 3600},
					"user000004": {Kind: fakerequester.KindRespond, Response: sipmessagev2beta1.ResponseType_DECLINE},
				},
			},
		},
		{
			name: "json",
			doc:  `{"trunks": {"alice": {"kind": "forbidden"}}}`,
			want: fakerequester.Script{Trunks: map[string]fakerequester.Behaviour{"alice": {Kind: fakerequester.KindForbidden}}},
		},
		{name: "empty", doc: "", want: fakerequester.Script{Trunks: map[string]fakerequester.Behaviour{}}},
		{name: "unknown kind", doc: "trunks: {a: {kind: explode}}", wantErr: `trunks["a"].kind: unknown kind "explode"`},
		{name: "unknown field", doc: "trunks: {a: {kind: ok, expiry: 3}}", wantErr: "expiry"},
		{name: "bad algorithm", doc: "default: {kind: challenge, algorithm: SHA-512}", wantErr: "default.algorithm"},
		{name: "423 without min", doc: "trunks: {a: {kind: interval_too_brief}}", wantErr: "min_expires: required"},
		{name: "respond without response", doc: "trunks: {a: {kind: respond}}", wantErr: "response: required"},
		{name: "unknown response", doc: "trunks: {a: {kind: respond, response: TEAPOT}}", wantErr: `unknown response type "TEAPOT"`},
		{name: "negative fail_n", doc: "trunks: {a: {kind: ok, fail_n: -1}}", wantErr: "fail_n"},
		{name: "negative default_expires", doc: "default_expires: -1", wantErr: "default_expires"},
		{name: "bad delay", doc: "default: {delay: soon}", wantErr: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fakerequester.ParseScript([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseScript() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScript() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseScript() =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestLoadScriptNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "script.yaml")
	if err := os.WriteFile(path, []byte("default: {kind: nope}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fakerequester.LoadScript(path); err == nil || !strings.HasPrefix(err.Error(), "script.yaml: default.kind") {
		t.Errorf("LoadScript() error = %v, want it to name the file and field", err)
	}
}
