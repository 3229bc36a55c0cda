package upstream

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// grpcJS runs tools/grpcjs/requester.js, a Requester on @grpc/grpc-js (the gRPC server
// of Routr's own Requester), and answers its address and the lines it prints after
// "listening". Without Node.js or the package's node_modules (make setup installs
// both) the test is skipped, except in CI, where it fails.
func grpcJS(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir, err := filepath.Abs("../../../../tools/grpcjs")
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js"))
	if missing := errors.Join(nodeErr, modErr); missing != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the grpc-js Requester needs Node.js and its packages (make setup): %v", missing)
		}
		t.Skipf("no Node.js or no tools/grpcjs/node_modules (make setup installs them): %v", missing)
	}
	cmd := exec.Command("node", filepath.Join(dir, "requester.js"), "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 16)
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "listening ") {
		t.Fatalf("the grpc-js Requester did not start: %q %v", sc.Text(), sc.Err())
	}
	port := strings.TrimPrefix(sc.Text(), "listening ")
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return "127.0.0.1:" + port, lines
}

func callTo(target, callID string) *requesterv2beta1.SendMessageRequest {
	return &requesterv2beta1.SendMessageRequest{Target: target, Message: &pb.SIPMessage{CallId: &pb.CallID{CallId: callID}}}
}

// TestRequesterAgainstGrpcJS: the Requester client (grpclite) against grpc-js, the
// server stack of Routr's Requester: concurrent calls each get their own answer, a
// status and its percent-encoded message come through, an answer larger than the
// initial flow-control windows arrives whole, and a call past its deadline ends with
// DeadlineExceeded and is cancelled on the server.
func TestRequesterAgainstGrpcJS(t *testing.T) {
	addr, lines := grpcJS(t)
	rc, err := DialRequester(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if rc.lean == nil {
		t.Fatal("DialRequester without tracing does not use grpclite")
	}
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := range 500 {
		wg.Go(func() {
			id := strings.Repeat("c", i%7) + "-" + time.Duration(i).String()
			resp, err := rc.SendMessage(ctx, callTo("sip.example.net:5060", id))
			switch {
			case err != nil:
				errs <- err
			case resp.GetMessage().GetReasonPhrase() != id || resp.GetMessage().GetResponseType() != pb.ResponseType_OK:
				errs <- errors.New("answer " + resp.GetMessage().GetReasonPhrase() + " to call " + id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	_, err = rc.SendMessage(ctx, callTo("error", "x"))
	if st, _ := status.FromError(errors.Unwrap(err)); st.Code() != codes.InvalidArgument || st.Message() != "bad target: 100% wrong, ünïcode" {
		t.Errorf("error answer: %v, want InvalidArgument with grpc-js's message", err)
	}

	// Routr's answers are decoded leanly: a 300,000-byte reason phrase is read whole.
	resp, err := rc.SendMessage(ctx, callTo("big", "x"))
	if err != nil || len(resp.GetMessage().GetReasonPhrase()) != 300000 {
		t.Errorf("big answer: %d bytes, %v", len(resp.GetMessage().GetReasonPhrase()), err)
	}

	short, err := DialRequester(addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if _, err := short.SendMessage(ctx, callTo("hang", "x")); status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
		t.Errorf("hanging call: %v, want DeadlineExceeded", err)
	}
	if l := <-lines; l != "cancelled 1" {
		t.Errorf("the server printed %q, want the call cancelled", l)
	}
	// The connection still serves calls.
	if _, err := short.SendMessage(ctx, callTo("sip.example.net", "after")); err != nil {
		t.Errorf("call after a deadline: %v", err)
	}
}
