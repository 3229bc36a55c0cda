package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

const (
	// redrawEvery bounds the live table's redraws: changes arriving within it are
	// drawn together.
	redrawEvery = 200 * time.Millisecond
	// tickEvery redraws the live table without changes, so relative times move on.
	tickEvery = time.Second
)

// ANSI sequences of the live table: cursor home, clear to end of line, clear to end
// of screen, clear the whole screen.
const (
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K"
	ansiClearBelow = "\x1b[J"
	ansiClearAll   = "\x1b[2J"
)

// runWatch follows registration changes until interrupted: on a terminal (with the
// table output) a table redrawn in place; otherwise one line per change, or one JSON
// object per line with -o json. Interrupting it (SIGINT, SIGTERM) is a clean end.
func runWatch(ctx context.Context, s *session, args []string) error {
	req := &registryv1.WatchRegistrationsRequest{}
	if len(args) == 1 {
		req.TrunkRef = args[0]
	}
	live := s.tty && s.output == "table"
	if !live {
		// The server filters changes into the states. The live table filters by
		// itself instead, so that a trunk leaving those states leaves the table.
		req.States = s.flags.states
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.WatchRegistrations(wctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		_ = stream.Close()
	}()
	if live {
		err = watchLive(wctx, s, stream)
	} else {
		err = watchLines(s, stream)
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return err
}

// watchLines writes one line (or JSON object) per message until the stream ends.
func watchLines(s *session, stream *connect.ServerStreamForClient[registryv1.WatchRegistrationsResponse]) error {
	for stream.Receive() {
		var err error
		if s.output == "json" {
			err = writeJSONLine(s.out, stream.Msg())
		} else {
			_, err = fmt.Fprintln(s.out, eventLine(stream.Msg(), s.now()))
		}
		if err != nil {
			return err
		}
	}
	return stream.Err()
}

// eventLine is one change as a line: time (of the change), ref, state, then key=value
// pairs with absolute times; "removed" for a trunk that went away.
func eventLine(ev *registryv1.WatchRegistrationsResponse, now time.Time) string {
	r := ev.GetRegistration()
	at := now.UTC().Format(time.RFC3339)
	if r.GetUpdatedAt() != nil {
		at = absolute(r.GetUpdatedAt())
	}
	if ev.GetRemoved() {
		return at + " " + r.GetTrunkRef() + " removed"
	}
	parts := []string{at, r.GetTrunkRef(), stateName(r.GetState())}
	kv := func(k, v string) {
		if v != "" && v != "-" {
			if strings.ContainsAny(v, " \t\"=") {
				v = strconv.Quote(v)
			}
			parts = append(parts, k+"="+v)
		}
	}
	kv("code", lastCode(r))
	kv("reason", r.GetLastReason())
	kv("expires", absolute(r.GetExpiresAt()))
	if a := r.GetNextAction(); a != "none" {
		kv("next", a)
		kv("next_at", absolute(r.GetNextActionAt()))
	}
	if n := r.GetFailureCount(); n > 0 {
		kv("failures", strconv.Itoa(int(n)))
	}
	kv("owner", r.GetOwner())
	kv("error", oneLine(r.GetLastError()))
	return strings.Join(parts, " ")
}

// liveTable is watch's view on a terminal: the current registration of every trunk
// seen, drawn as the list table.
type liveTable struct {
	s       *session
	filter  stateList
	regs    map[string]*registryv1.Registration
	updates int
	drawn   bool
}

// apply records one message of the stream.
func (v *liveTable) apply(ev *registryv1.WatchRegistrationsResponse) {
	ref := ev.GetRegistration().GetTrunkRef()
	v.updates++
	if ev.GetRemoved() {
		delete(v.regs, ref)
		return
	}
	v.regs[ref] = ev.GetRegistration()
}

// draw writes the whole view over the previous one, line by line (no flicker).
func (v *liveTable) draw(w io.Writer, now time.Time) error {
	var regs []*registryv1.Registration
	for _, r := range v.regs {
		if v.filter.has(r.GetState()) {
			regs = append(regs, r)
		}
	}
	sortByRef(regs)
	var body strings.Builder
	fmt.Fprintf(&body, "%s   %s   %d updates   (Ctrl-C to stop)\n\n",
		paint(v.s.color, sgrBold, "registry watch "+v.s.addr), now.Format("15:04:05"), v.updates)
	if err := writeList(&body, regs, false, v.s.color, now); err != nil {
		return err
	}
	var b strings.Builder
	if !v.drawn {
		b.WriteString(ansiClearAll)
		v.drawn = true
	}
	b.WriteString(ansiHome)
	for line := range strings.Lines(body.String()) {
		b.WriteString(strings.TrimSuffix(line, "\n") + ansiClearLine + "\n")
	}
	b.WriteString(ansiClearBelow)
	_, err := io.WriteString(w, b.String())
	return err
}

// watchLive keeps the live table up to date: a redraw at most every redrawEvery while
// changes arrive, and every tickEvery in any case.
func watchLive(ctx context.Context, s *session, stream *connect.ServerStreamForClient[registryv1.WatchRegistrationsResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan *registryv1.WatchRegistrationsResponse)
	ended := make(chan error, 1)
	received := make(chan struct{})
	go func() {
		defer close(received)
		for stream.Receive() {
			select {
			case events <- stream.Msg():
			case <-ctx.Done():
				return
			}
		}
		ended <- stream.Err()
	}()
	// The receiver is done before the stream is closed: canceling ends its Receive.
	defer func() {
		cancel()
		<-received
	}()
	view := &liveTable{s: s, filter: s.flags.states, regs: map[string]*registryv1.Registration{}}
	if err := view.draw(s.out, s.now()); err != nil {
		return err
	}
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	var pending <-chan time.Time
	for {
		select {
		case ev := <-events:
			view.apply(ev)
			if pending == nil {
				pending = time.After(redrawEvery)
			}
			continue
		case err := <-ended:
			_ = view.draw(s.out, s.now())
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-pending:
			pending = nil
		case <-tick.C:
		}
		if err := view.draw(s.out, s.now()); err != nil {
			return err
		}
	}
}
