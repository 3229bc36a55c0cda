package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

// listPageSize is the page size list asks for (the server's maximum).
const listPageSize = 1000

// runList prints every registration (all pages), sorted by ref, with a footer of
// counts per state.
func runList(ctx context.Context, s *session, _ []string) error {
	regs, err := listAll(ctx, s)
	if err != nil {
		return err
	}
	if s.output == "json" {
		return writeJSON(s.out, &registryv1.ListRegistrationsResponse{Registrations: regs})
	}
	return writeList(s.out, regs, s.output == "wide", s.color, s.now())
}

// listAll follows ListRegistrations' pages to the end, within one deadline.
func listAll(ctx context.Context, s *session) ([]*registryv1.Registration, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	req := &registryv1.ListRegistrationsRequest{States: s.flags.states, PageSize: listPageSize}
	var out []*registryv1.Registration
	seen := map[string]bool{}
	for {
		resp, err := s.client.ListRegistrations(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Msg.GetRegistrations()...)
		next := resp.Msg.GetNextPageToken()
		if next == "" {
			break
		}
		if seen[next] {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("list: the server sent the same page token twice"))
		}
		seen[next] = true
		req.PageToken = next
	}
	sortByRef(out)
	return out, nil
}

func sortByRef(regs []*registryv1.Registration) {
	slices.SortStableFunc(regs, func(a, b *registryv1.Registration) int {
		return strings.Compare(a.GetTrunkRef(), b.GetTrunkRef())
	})
}

// listHeader is the header of the list table, and of watch's.
func listHeader(wide bool) []string {
	if wide {
		return []string{"REF", "NAME", "AOR", "TARGET", "EDGEPORT", "STATE", "CODE", "REASON", "EXPIRES", "NEXT",
			"FAILURES", "OWNER", "FENCE", "CSEQ", "CALL-ID", "UPDATED", "ERROR"}
	}
	return []string{"REF", "AOR", "STATE", "CODE", "EXPIRES", "NEXT", "FAILURES", "OWNER"}
}

// listRow is one registration as a row of the list table; times relative to now.
func listRow(r *registryv1.Registration, wide, removed bool, now time.Time) []cell {
	state := cell{stateName(r.GetState()), stateColor(r.GetState())}
	if removed {
		state = cell{"removed", sgrFaint}
	}
	text := func(s string) cell { return cell{text: orDash(s)} }
	failures := cell{text: strconv.Itoa(int(r.GetFailureCount()))}
	if r.GetFailureCount() > 0 {
		failures.sgr = sgrYellow
	}
	if !wide {
		return []cell{text(r.GetTrunkRef()), text(r.GetAor()), state, text(lastCode(r)),
			text(relative(r.GetExpiresAt(), now)), text(nextAction(r, now)), failures, text(r.GetOwner())}
	}
	target := r.GetTarget()
	if t := r.GetTransport(); target != "" && t != "" {
		target += "/" + strings.ToLower(t)
	}
	fence := "-"
	if r.GetFencingToken() != 0 {
		fence = strconv.FormatInt(r.GetFencingToken(), 10)
	}
	reason := r.GetLastReason()
	if reason == "" {
		reason = r.GetLastResponseType()
	}
	return []cell{text(r.GetTrunkRef()), text(r.GetTrunkName()), text(r.GetAor()), text(target), text(r.GetEdgePort()),
		state, text(lastCode(r)), text(reason), text(relative(r.GetExpiresAt(), now)), text(nextAction(r, now)),
		failures, text(r.GetOwner()), text(fence), text(strconv.FormatUint(uint64(r.GetCseq()), 10)), text(r.GetCallId()),
		text(relative(r.GetUpdatedAt(), now)), cell{orDash(oneLine(r.GetLastError())), sgrRed}}
}

// writeList writes the list table and its footer.
func writeList(w io.Writer, regs []*registryv1.Registration, wide, color bool, now time.Time) error {
	if len(regs) == 0 {
		_, err := fmt.Fprintln(w, "No registrations.")
		return err
	}
	t := &table{header: listHeader(wide)}
	for _, r := range regs {
		t.add(listRow(r, wide, false, now)...)
	}
	if err := t.write(w, color); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", footer(regs, color))
	return err
}
