package fakeapi

import (
	"context"
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

// replaceFile swaps path's content atomically, as the package doc advises.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
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

// waitForRefs polls FindBy until want comes back or the test's deadline passes.
func waitForRefs(t *testing.T, c trunksv2beta1.TrunksClient, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got string
	for ctx.Err() == nil {
		resp, err := c.FindBy(ctx, &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
		if err == nil {
			if got = refs(resp.GetItems()); got == want {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("FindBy refs = %q, want %q before the deadline", got, want)
}

func TestFixtureReload(t *testing.T) {
	path := writeFile(t, "trunks.yaml", fixtureYAML)
	s := New(Options{Fixture: path})
	c := start(t, s)
	waitForRefs(t, c, "trunk-a,trunk-c")

	steps := []struct {
		name    string
		content string
		want    string
	}{
		{"trunk added", fixtureYAML + "  - {ref: trunk-d, sendRegister: true}\n", "trunk-a,trunk-c,trunk-d"},
		{"switched to json", `{"trunks": [{"ref": "trunk-j", "sendRegister": true}]}`, "trunk-j"},
		{"broken file keeps the previous set", "trunks: [{ref: x, bogus: 1}]", "trunk-j"},
		{"fixed again", "trunks: [{ref: trunk-z, sendRegister: true}, {ref: trunk-y}]", "trunk-z"},
		{"emptied", "trunks: []", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			replaceFile(t, path, st.content)
			waitForRefs(t, c, st.want)
		})
	}
}

func TestSetTrunksAndGenerateWithFixture(t *testing.T) {
	path := writeFile(t, "trunks.yaml", "trunks: [{ref: fixed, sendRegister: true}]")
	s := New(Options{Fixture: path, Generate: 2})
	c := start(t, s)
	waitForRefs(t, c, "fixed,trunk-000001,trunk-000002")

	in := []*trunksv2beta1.Trunk{{Ref: "set-1", SendRegister: true}, {Ref: "set-2"}}
	s.SetTrunks(in)
	in[0].Ref = "changed by the caller" // the server holds copies
	waitForRefs(t, c, "set-1")

	replaceFile(t, path, "trunks: [{ref: fixed-again, sendRegister: true}]")
	waitForRefs(t, c, "fixed-again,trunk-000001,trunk-000002")
}

func TestGenerated100kInOneCall(t *testing.T) {
	s := New(Options{Generate: 100000})
	c := start(t, s)
	resp, err := c.FindBy(t.Context(), &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
	if err != nil {
		t.Fatalf("FindBy() error = %v", err)
	}
	items := resp.GetItems()
	if len(items) != 100000 {
		t.Fatalf("FindBy() gave %d trunks, want 100000", len(items))
	}
	if items[0].GetRef() != "trunk-000001" || items[99999].GetRef() != "trunk-100000" {
		t.Errorf("first/last refs = %s/%s", items[0].GetRef(), items[99999].GetRef())
	}
	for _, tr := range []*trunksv2beta1.Trunk{items[0], items[99999]} {
		if tr.GetOutboundCredentials().GetUsername() == "" || tr.GetOutboundCredentials().GetPassword() == "" {
			t.Errorf("trunk %s has no outbound credentials", tr.GetRef())
		}
	}
}

func TestFaults(t *testing.T) {
	req := &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}
	tests := []struct {
		name     string
		delay    time.Duration
		fail     codes.Code
		deadline time.Duration
		want     codes.Code
	}{
		{"delay past the client deadline", time.Hour, codes.OK, 50 * time.Millisecond, codes.DeadlineExceeded},
		{"fail unavailable", 0, codes.Unavailable, time.Minute, codes.Unavailable},
		{"fail internal", 0, codes.Internal, time.Minute, codes.Internal},
		{"delay then fail", time.Millisecond, codes.PermissionDenied, time.Minute, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Generate: 3})
			c := start(t, s)
			s.SetDelay(tt.delay)
			s.SetFail(tt.fail)
			ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
			defer cancel()
			if _, err := c.FindBy(ctx, req); status.Code(err) != tt.want {
				t.Fatalf("FindBy() error = %v, want %v", err, tt.want)
			}
			if _, err := c.Get(ctx, &trunksv2beta1.GetTrunkRequest{Ref: "trunk-000001"}); status.Code(err) != tt.want {
				t.Errorf("Get() error = %v, want %v", err, tt.want)
			}

			s.SetDelay(0)
			s.SetFail(codes.OK)
			resp, err := c.FindBy(t.Context(), req)
			if err != nil || len(resp.GetItems()) != 3 {
				t.Fatalf("after clearing the faults FindBy() = %d items, %v", len(resp.GetItems()), err)
			}
			if got := s.FindByCalls(); got != 2 {
				t.Errorf("FindByCalls() = %d, want 2", got)
			}
		})
	}
}

func TestStopAndServeAgain(t *testing.T) {
	s := New(Options{Generate: 1})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	c := trunksv2beta1.NewTrunksClient(dial(t, addr))
	req := &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}
	if _, err := c.FindBy(t.Context(), req); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Serve() after Stop = %v", err)
	}
	if _, err := c.FindBy(t.Context(), req); status.Code(err) != codes.Unavailable {
		t.Fatalf("FindBy() on a stopped server error = %v, want Unavailable", err)
	}

	lis2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	go func() { done <- s.Serve(lis2) }()
	t.Cleanup(func() { s.Stop(); <-done })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.FindBy(ctx, req, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("FindBy() after restart = %v", err)
	}
	// The call on the stopped server never arrived.
	if got := s.FindByCalls(); got != 2 {
		t.Errorf("FindByCalls() = %d, want 2 (counters survive a restart)", got)
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

func TestParseCode(t *testing.T) {
	tests := []struct {
		in      string
		want    codes.Code
		wantErr bool
	}{
		{"UNAVAILABLE", codes.Unavailable, false},
		{"Unavailable", codes.Unavailable, false},
		{"deadline_exceeded", codes.DeadlineExceeded, false},
		{"DeadlineExceeded", codes.DeadlineExceeded, false},
		{"CANCELLED", codes.Canceled, false},
		{"ok", codes.OK, false},
		{"14", codes.Unavailable, false},
		{"17", 0, true},
		{"nope", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseCode(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCode(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
