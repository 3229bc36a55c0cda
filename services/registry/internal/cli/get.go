package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

// runGet prints one trunk's registration, field by field.
func runGet(ctx context.Context, s *session, args []string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.client.GetRegistration(ctx, connect.NewRequest(&registryv1.GetRegistrationRequest{TrunkRef: args[0]}))
	if err != nil {
		return err
	}
	if s.output == "json" {
		return writeJSON(s.out, resp.Msg.GetRegistration())
	}
	return writeFields(s.out, detail(resp.Msg.GetRegistration(), s.color, s.now()))
}

// field is one "Label: value" line of a detail view.
type field struct{ label, value string }

// writeFields writes the fields with their values aligned.
func writeFields(w io.Writer, fields []field) error {
	width := 0
	for _, f := range fields {
		width = max(width, len(f.label))
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-*s  %s\n", width+1, f.label+":", f.value)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// when is a time both ways: "in 4m12s (2026-11-23T10:04:12Z)".
func when(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	return relative(t, now) + " (" + absolute(t) + ")"
}

// detail is every field of a registration, for get.
func detail(r *registryv1.Registration, color bool, now time.Time) []field {
	trunk := r.GetTrunkRef()
	if n := r.GetTrunkName(); n != "" && n != trunk {
		trunk += " (" + n + ")"
	}
	target := orDash(r.GetTarget())
	if t := r.GetTransport(); t != "" {
		target += " over " + strings.ToUpper(t)
	}
	expires := when(r.GetExpiresAt(), now)
	if g := r.GetGrantedExpiresSeconds(); g > 0 {
		expires += fmt.Sprintf(", %ds granted", g)
	}
	next := nextAction(r, now)
	if r.GetNextActionAt() != nil {
		next += " (" + absolute(r.GetNextActionAt()) + ")"
	}
	owner := orDash(r.GetOwner())
	if r.GetFencingToken() != 0 {
		owner += fmt.Sprintf(" (fence %d)", r.GetFencingToken())
	}
	return []field{
		{"Trunk", trunk},
		{"AOR", orDash(r.GetAor())},
		{"State", paint(color, stateColor(r.GetState()), stateName(r.GetState()))},
		{"Last answer", lastAnswer(r)},
		{"Last error", orDash(oneLine(r.GetLastError()))},
		{"Failures", strconv.Itoa(int(r.GetFailureCount()))},
		{"Target", target},
		{"EdgePort", orDash(r.GetEdgePort())},
		{"Expires", expires},
		{"Next", next},
		{"Registered since", when(r.GetRegisteredSince(), now)},
		{"Call-ID", orDash(r.GetCallId())},
		{"CSeq", strconv.FormatUint(uint64(r.GetCseq()), 10)},
		{"Owner", owner},
		{"Updated", when(r.GetUpdatedAt(), now)},
	}
}

// runForce registers one trunk, or every trunk, now, and prints the outcomes. Trunks
// that could not be forced (--all) make the exit code 1.
func runForce(ctx context.Context, s *session, args []string) error {
	req := &registryv1.ForceRegisterRequest{All: s.flags.all}
	switch {
	case s.flags.all && len(args) > 0:
		return usagef("give a trunk ref or --all, not both")
	case !s.flags.all && len(args) == 0:
		return usagef("missing trunk ref (or --all)")
	case !s.flags.all:
		req.TrunkRef = args[0]
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.client.ForceRegister(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	results := resp.Msg.GetResults()
	if s.output == "json" {
		err = writeJSON(s.out, resp.Msg)
	} else {
		err = writeForce(s.out, results, s.color, s.now())
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.GetError() != "" {
			failed++
		}
	}
	if failed > 0 {
		return &reportedError{fmt.Sprintf("%d of %d trunks not forced", failed, len(results))}
	}
	return nil
}

// writeForce writes one row per forced trunk and a footer of the states they ended in.
func writeForce(w io.Writer, results []*registryv1.ForceRegisterResult, color bool, now time.Time) error {
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "No trunks to force.")
		return err
	}
	t := &table{header: []string{"REF", "STATE", "CODE", "EXPIRES", "NEXT", "OWNER", "ERROR"}}
	regs := make([]*registryv1.Registration, 0, len(results))
	for _, res := range results {
		r := res.GetRegistration()
		if r == nil {
			r = &registryv1.Registration{TrunkRef: res.GetTrunkRef()}
		}
		regs = append(regs, r)
		t.add(cell{text: orDash(res.GetTrunkRef())}, cell{stateName(r.GetState()), stateColor(r.GetState())},
			cell{text: lastCode(r)}, cell{text: relative(r.GetExpiresAt(), now)}, cell{text: nextAction(r, now)},
			cell{text: orDash(r.GetOwner())}, cell{orDash(oneLine(res.GetError())), sgrRed})
	}
	if err := t.write(w, color); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", footer(regs, color))
	return err
}
