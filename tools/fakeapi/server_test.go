package fakeapi

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/tools/internal/syncbuf"
)

const fixtureYAML = `
trunks:
  - ref: trunk-a
    sendRegister: true
    uris: [{host: sip.a.example, port: 5060, transport: UDP, user: alice}]
    outboundCredentials: {username: alice, password: secret}
  - ref: trunk-b
    sendRegister: false
    uris: [{host: sip.b.example}]
  - ref: trunk-c
    sendRegister: true
    uris: [{host: sip.c.example, transport: TCP}]
`

const fixtureJSON = `{"trunks": [
  {"ref": "trunk-a", "sendRegister": true, "uris": [{"host": "sip.a.example", "port": 5060, "transport": "UDP", "user": "alice"}],
   "outboundCredentials": {"username": "alice", "password": "secret"}},
  {"ref": "trunk-b", "sendRegister": false, "uris": [{"host": "sip.b.example"}]},
  {"ref": "trunk-c", "sendRegister": true, "uris": [{"host": "sip.c.example", "transport": "TCP"}]}
]}`

// start serves s on a loopback port and returns a client for it.
func start(t *testing.T, s *Server) trunksv2beta1.TrunksClient {
	t.Helper()
	return trunksv2beta1.NewTrunksClient(dial(t, serve(t, s)))
}

func serve(t *testing.T, s *Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	return lis.Addr().String()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func refs(trunks []*trunksv2beta1.Trunk) string {
	out := make([]string, len(trunks))
	for i, tr := range trunks {
		out[i] = tr.GetRef()
	}
	return strings.Join(out, ",")
}

func TestFindByFixture(t *testing.T) {
	yamlPath := writeFile(t, "trunks.yaml", fixtureYAML)
	jsonPath := writeFile(t, "trunks.json", fixtureJSON)
	tests := []struct {
		name     string
		fixture  string
		field    string
		value    string
		wantRefs string
		wantCode codes.Code
	}{
		{"yaml sendRegister true", yamlPath, "sendRegister", "true", "trunk-a,trunk-c", codes.OK},
		{"yaml sendRegister false", yamlPath, "sendRegister", "false", "trunk-b", codes.OK},
		{"json sendRegister true", jsonPath, "sendRegister", "true", "trunk-a,trunk-c", codes.OK},
		{"json sendRegister false", jsonPath, "sendRegister", "false", "trunk-b", codes.OK},
		{"other field", yamlPath, "name", "x", "", codes.InvalidArgument},
		{"snake case field", yamlPath, "send_register", "true", "", codes.InvalidArgument},
		{"bad value", yamlPath, "sendRegister", "yes", "", codes.InvalidArgument},
		{"missing fixture", filepath.Join(t.TempDir(), "none.yaml"), "sendRegister", "true", "", codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Fixture: tt.fixture})
			c := start(t, s)
			resp, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: tt.field, FieldValue: tt.value})
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("FindBy() code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if got := refs(resp.GetItems()); got != tt.wantRefs {
				t.Errorf("FindBy() refs = %q, want %q", got, tt.wantRefs)
			}
			if got := s.FindByCalls(); got != 1 {
				t.Errorf("FindByCalls() = %d, want 1", got)
			}
		})
	}
}

func TestFindByReturnsFullTrunks(t *testing.T) {
	c := start(t, New(Options{Fixture: writeFile(t, "trunks.yaml", fixtureYAML)}))
	resp, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
	if err != nil {
		t.Fatal(err)
	}
	a := resp.GetItems()[0]
	u := a.GetUris()[0]
	if u.GetHost() != "sip.a.example" || u.GetPort() != 5060 || u.GetTransport() != "UDP" || u.GetUser() != "alice" || !u.GetEnabled() {
		t.Errorf("uri = %v", u)
	}
	if cr := a.GetOutboundCredentials(); cr.GetUsername() != "alice" || cr.GetPassword() != "secret" {
		t.Errorf("outbound credentials = %v", cr)
	}
}

func TestGetListAndUnimplemented(t *testing.T) {
	c := start(t, New(Options{Fixture: writeFile(t, "trunks.yaml", fixtureYAML)}))
	ctx := t.Context()

	tr, err := c.Get(ctx, &trunksv2beta1.GetTrunkRequest{Ref: "trunk-b"})
	if err != nil || tr.GetRef() != "trunk-b" {
		t.Errorf("Get(trunk-b) = %v, %v", tr, err)
	}
	if _, err := c.Get(ctx, &trunksv2beta1.GetTrunkRequest{Ref: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Get(nope) error = %v, want NotFound", err)
	}

	pages := []struct {
		size      int32
		token     string
		wantRefs  string
		wantToken string
		wantCode  codes.Code
	}{
		{0, "", "trunk-a,trunk-b,trunk-c", "", codes.OK},
		{2, "", "trunk-a,trunk-b", "2", codes.OK},
		{2, "2", "trunk-c", "", codes.OK},
		{5, "3", "", "", codes.OK},
		{1, "x", "", "", codes.InvalidArgument},
		{1, "9", "", "", codes.InvalidArgument},
	}
	for _, p := range pages {
		resp, err := c.List(ctx, &trunksv2beta1.ListTrunkRequest{PageSize: p.size, PageToken: p.token})
		if status.Code(err) != p.wantCode {
			t.Errorf("List(%d, %q) error = %v, want %v", p.size, p.token, err, p.wantCode)
			continue
		}
		if got := refs(resp.GetItems()); got != p.wantRefs || resp.GetNextPageToken() != p.wantToken {
			t.Errorf("List(%d, %q) = %q next %q, want %q next %q", p.size, p.token, got, resp.GetNextPageToken(), p.wantRefs, p.wantToken)
		}
	}

	unimplemented := map[string]func() error{
		"Create": func() error { _, err := c.Create(ctx, &trunksv2beta1.CreateTrunkRequest{}); return err },
		"Update": func() error { _, err := c.Update(ctx, &trunksv2beta1.UpdateTrunkRequest{}); return err },
		"Delete": func() error { _, err := c.Delete(ctx, &trunksv2beta1.DeleteTrunkRequest{}); return err },
	}
	for name, call := range unimplemented {
		if err := call(); status.Code(err) != codes.Unimplemented {
			t.Errorf("%s() error = %v, want Unimplemented", name, err)
		}
	}
}

func TestFindByLog(t *testing.T) {
	var log syncbuf.Buffer
	s := New(Options{Generate: 1, FindByLog: &log})
	c := start(t, s)
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("FindBy log has %d lines, want %d:\n%s", len(lines), n, log.String())
	}
	for _, l := range lines {
		if _, err := time.Parse(time.RFC3339Nano, l); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
}
