package fakeapi

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	aclv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/acl/v2beta1"
	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

func TestParseFixture(t *testing.T) {
	full := &trunksv2beta1.Trunk{
		Ref:          "trunk-a",
		ApiVersion:   "v2beta1",
		Name:         "Provider A",
		SendRegister: true,
		InboundUri:   "trunk-a.sip.example.net",
		CreatedAt:    1700000000,
		UpdatedAt:    1700000001,
		Uris: []*trunksv2beta1.TrunkURI{
			{Host: "sip.a.example", Port: 5060, Transport: "UDP", User: "5551234", Weight: 1, Priority: 2, Enabled: true},
			{Host: "sip2.a.example", Port: 5080, Transport: "tcp", Enabled: false},
		},
		OutboundCredentials: &credentialsv2beta1.Credentials{Ref: "cred-a", Name: "A", Username: "alice", Password: "secret"},
		InboundCredentials:  &credentialsv2beta1.Credentials{},
		AccessControlList:   &aclv2beta1.AccessControlList{Ref: "acl-a", Allow: []string{"10.0.0.0/8"}, Deny: []string{"0.0.0.0/0"}},
		Extended:            mustStruct(t, map[string]any{"tier": "gold", "n": 2.0}),
	}
	tests := []struct {
		name    string
		doc     string
		want    []*trunksv2beta1.Trunk
		wantErr string
	}{
		{
			name: "yaml with every field",
			doc: `
trunks:
  - ref: trunk-a
    apiVersion: v2beta1
    name: Provider A
    sendRegister: true
    inboundUri: trunk-a.sip.example.net
    createdAt: 1700000000
    updatedAt: 1700000001
    uris:
      - {host: sip.a.example, port: 5060, transport: UDP, user: "5551234", weight: 1, priority: 2, enabled: true}
      - {host: sip2.a.example, port: 5080, transport: tcp, enabled: false}
    outboundCredentials: {ref: cred-a, name: A, username: alice, password: secret}
    inboundCredentials: {}
    accessControlList: {ref: acl-a, allow: [10.0.0.0/8], deny: [0.0.0.0/0]}
    extended: {tier: gold, n: 2}
`,
			want: []*trunksv2beta1.Trunk{full},
		},
		{
			name: "json with every field",
			doc: `{"trunks": [{"ref": "trunk-a", "apiVersion": "v2beta1", "name": "Provider A",
  "sendRegister": true, "inboundUri": "trunk-a.sip.example.net",
  "createdAt": 1700000000, "updatedAt": 1700000001,
  "uris": [{"host": "sip.a.example", "port": 5060, "transport": "UDP", "user": "5551234", "weight": 1, "priority": 2, "enabled": true},
           {"host": "sip2.a.example", "port": 5080, "transport": "tcp", "enabled": false}],
  "outboundCredentials": {"ref": "cred-a", "name": "A", "username": "alice", "password": "secret"},
  "inboundCredentials": {},
  "accessControlList": {"ref": "acl-a", "allow": ["10.0.0.0/8"], "deny": ["0.0.0.0/0"]},
  "extended": {"tier": "gold", "n": 2}}]}`,
			want: []*trunksv2beta1.Trunk{full},
		},
		{
			name: "absent fields are zero, enabled defaults to true",
			doc:  "trunks:\n  - ref: b\n    uris: [{host: h}]\n",
			want: []*trunksv2beta1.Trunk{{Ref: "b", Uris: []*trunksv2beta1.TrunkURI{{Host: "h", Enabled: true}}}},
		},
		{
			name: "items as in Routr's list answers",
			doc:  `{"items": [{"ref": "c", "sendRegister": false}]}`,
			want: []*trunksv2beta1.Trunk{{Ref: "c"}},
		},
		{name: "empty document", doc: "", want: []*trunksv2beta1.Trunk{}},
		{name: "empty list", doc: "trunks: []", want: []*trunksv2beta1.Trunk{}},
		{name: "unknown field", doc: "trunks:\n  - ref: a\n    sendRegistr: true\n", wantErr: "sendRegistr"},
		{name: "missing ref", doc: "trunks:\n  - ref: a\n  - name: b\n", wantErr: "trunks[1].ref: missing"},
		{name: "duplicate ref", doc: "trunks: [{ref: a}, {ref: a}]", wantErr: `trunks[1].ref: "a" already used by trunks[0]`},
		{name: "both keys", doc: "trunks: [{ref: a}]\nitems: [{ref: b}]", wantErr: "both trunks and items"},
		{name: "wrong type", doc: "trunks: [{ref: a, sendRegister: maybe}]", wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFixture([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFixture() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFixture() error = %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseFixture() gave %d trunks, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("trunk %d:\n got  %s\n want %s", i, protojson.Format(got[i]), protojson.Format(tt.want[i]))
				}
			}
		})
	}
}

func TestLoadFixtureNamesTheFile(t *testing.T) {
	path := writeFile(t, "broken.yaml", "trunks: [{name: x}]")
	_, err := LoadFixture(path)
	if err == nil || !strings.HasPrefix(err.Error(), "broken.yaml: trunks[0].ref") {
		t.Fatalf("LoadFixture() error = %v, want it to start with the file name and field", err)
	}
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		i        int // 1-based
		ref      string
		host     string
		user     string
		password string
	}{
		{1, "trunk-000001", "10.0.0.1", "user000001", "pass000001"},
		{256, "trunk-000256", "10.0.1.0", "user000256", "pass000256"},
		{100000, "trunk-100000", "10.1.134.160", "user100000", "pass100000"},
	}
	trunks := Generate(100000)
	if len(trunks) != 100000 {
		t.Fatalf("Generate(100000) gave %d trunks", len(trunks))
	}
	again := Generate(100000)
	for _, tt := range tests {
		tr := trunks[tt.i-1]
		u := tr.GetUris()[0]
		if tr.GetRef() != tt.ref || !tr.GetSendRegister() || u.GetHost() != tt.host || u.GetPort() != 5060 ||
			u.GetTransport() != "UDP" || u.GetUser() != tt.user || !u.GetEnabled() ||
			tr.GetOutboundCredentials().GetUsername() != tt.user || tr.GetOutboundCredentials().GetPassword() != tt.password {
			t.Errorf("trunk %d = %s", tt.i, protojson.Format(tr))
		}
		if !proto.Equal(tr, again[tt.i-1]) {
			t.Errorf("trunk %d differs between two calls", tt.i)
		}
	}
	if n := len(Generate(0)); n != 0 {
		t.Errorf("Generate(0) gave %d trunks", n)
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
