package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/fakerequester"
	"sipreg.dev/tools/grpcserve/grpcservetest"
)

// TestMain lets the tests start this test binary as the fakerequester command.
func TestMain(m *testing.M) {
	grpcservetest.Main(m, main)
}

func register(user string, expires int32) *requesterv2beta1.SendMessageRequest {
	aor := &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: "10.0.0.1", Port: -1}}
	return &requesterv2beta1.SendMessageRequest{
		Target: "10.0.0.1:5060",
		Method: processorv2beta1.Method_REGISTER,
		Message: &sipmessagev2beta1.SIPMessage{
			MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{Host: "10.0.0.1", Port: -1}},
			From:        &sipmessagev2beta1.From{Address: aor, Tag: "t"},
			To:          &sipmessagev2beta1.To{Address: aor},
			CallId:      &sipmessagev2beta1.CallID{CallId: "c-" + user},
			Expires:     &sipmessagev2beta1.Expires{Expires: expires},
			Extensions:  []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: "1 REGISTER"}},
		},
	}
}

func TestBinaryFollowsScriptAndRecords(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script.yaml")
	if err := os.WriteFile(script, []byte("trunks:\n  bob: {kind: forbidden}\n  carol: {kind: unavailable}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "calls.jsonl")
	cmd := grpcservetest.Start(t, "fakerequester", nil,
		"--listen", "127.0.0.1:0", "--script", script, "--record", record, "--default-expires", "120")

	cc, err := grpc.NewClient(cmd.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := requesterv2beta1.NewRequesterClient(cc)
	tests := []struct {
		user        string
		want        sipmessagev2beta1.ResponseType
		wantExpires int32
		wantCode    codes.Code
	}{
		{"alice", sipmessagev2beta1.ResponseType_OK, 120, codes.OK},
		{"bob", sipmessagev2beta1.ResponseType_FORBIDDEN, 0, codes.OK},
		{"carol", 0, 0, codes.Unavailable},
	}
	for _, tt := range tests {
		resp, err := c.SendMessage(t.Context(), register(tt.user, 3600))
		if status.Code(err) != tt.wantCode {
			t.Fatalf("%s: error %v, want %v", tt.user, err, tt.wantCode)
		}
		if m := resp.GetMessage(); m.GetResponseType() != tt.want || m.GetExpires().GetExpires() != tt.wantExpires {
			t.Errorf("%s: answer %v expires %d, want %v %d", tt.user, m.GetResponseType(), m.GetExpires().GetExpires(), tt.want, tt.wantExpires)
		}
	}

	cmd.Stop(t)
	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := fakerequester.ReadRecords(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(tests) {
		t.Fatalf("record file has %d calls, want %d", len(recs), len(tests))
	}
	for i, tt := range tests {
		if recs[i].Key != tt.user || recs[i].Resp.GetResponseType() != tt.want || status.Code(recs[i].Err) != tt.wantCode {
			t.Errorf("record %d = %+v", i, recs[i])
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	badScript := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badScript, []byte("default: {kind: nope}"), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcservetest.CheckExits(t, run, []grpcservetest.ExitCase{
		{Name: "unknown flag", Args: []string{"--nope"}, Want: 2},
		{Name: "negative expires", Args: []string{"--default-expires", "-1"}, Want: 2},
		{Name: "extra argument", Args: []string{"extra"}, Want: 2},
		{Name: "missing script", Args: []string{"--script", filepath.Join(dir, "none.yaml")}, Want: 1},
		{Name: "bad script", Args: []string{"--script", badScript}, Want: 1},
		{Name: "unwritable record file", Args: []string{"--listen", "127.0.0.1:0", "--record", filepath.Join(dir, "no", "dir.jsonl")}, Want: 1},
		{Name: "bad listen address", Args: []string{"--listen", "nowhere"}, Want: 1},
	})
}
