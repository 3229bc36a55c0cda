package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/cli/siptext"
	"sipreg.dev/services/registry/internal/sipauth"
)

// runExplain prints why and when a trunk's next action happens, and the REGISTER it
// will send as the Requester receives it. The server redacts its secrets; they are
// redacted once more here, so none can reach a terminal.
func runExplain(ctx context.Context, s *session, args []string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.client.ExplainRegistration(ctx, connect.NewRequest(&registryv1.ExplainRegistrationRequest{TrunkRef: args[0]}))
	if err != nil {
		return err
	}
	x := resp.Msg
	if req := x.GetRequest(); req != nil {
		safe := proto.CloneOf(req)
		safe.Message = sipauth.Redact(req.GetMessage())
		x.Request = safe
	}
	if s.output == "json" {
		return writeJSON(s.out, x)
	}
	return writeExplain(s.out, x, s.color, s.now())
}

// writeExplain writes the registration's state, the reason and the next REGISTER.
func writeExplain(w io.Writer, x *registryv1.ExplainRegistrationResponse, color bool, now time.Time) error {
	r := x.GetRegistration()
	next := nextAction(r, now)
	if r.GetNextActionAt() != nil {
		next += " (" + absolute(r.GetNextActionAt()) + ")"
	}
	fields := []field{
		{"Trunk", orDash(r.GetTrunkRef())},
		{"State", paint(color, stateColor(r.GetState()), stateName(r.GetState()))},
		{"Last answer", lastAnswer(r)},
		{"Next", next},
		{"Why", orDash(x.GetReason())},
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	req := x.GetRequest()
	if req == nil {
		_, err := fmt.Fprintln(w, "\nNo REGISTER is planned.")
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nNext REGISTER, as the Requester receives it (secrets redacted):\n")
	fmt.Fprintf(&b, "SendMessage target=%s transport=%s method=%s\n\n", orDash(req.GetTarget()), req.GetTransport(), req.GetMethod())
	for _, line := range siptext.Lines(req) {
		b.WriteString("  " + line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
