package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

const statePrefix = "REGISTRATION_STATE_"

// stateName is the short name of a state, as the README and the metrics spell it
// (registered, auth-failed).
func stateName(s registryv1.RegistrationState) string {
	name, ok := registryv1.RegistrationState_name[int32(s)]
	if !ok || s == registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED {
		return "unknown"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, statePrefix)), "_", "-")
}

// states are every known state, in the order of the enum (the footer's order).
func states() []registryv1.RegistrationState {
	var out []registryv1.RegistrationState
	for v := int32(1); ; v++ {
		if _, ok := registryv1.RegistrationState_name[v]; !ok {
			return out
		}
		out = append(out, registryv1.RegistrationState(v))
	}
}

func stateNames() []string {
	var out []string
	for _, s := range states() {
		out = append(out, stateName(s))
	}
	return out
}

// parseState reads a state by its short name or its enum name, in any case.
func parseState(v string) (registryv1.RegistrationState, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	v = strings.ReplaceAll(strings.TrimPrefix(v, strings.ToLower(statePrefix)), "_", "-")
	for _, s := range states() {
		if stateName(s) == v {
			return s, true
		}
	}
	return 0, false
}

// stateList is the repeatable --state flag.
type stateList []registryv1.RegistrationState

func (l *stateList) String() string {
	if l == nil {
		return ""
	}
	var names []string
	for _, s := range *l {
		names = append(names, stateName(s))
	}
	return strings.Join(names, ",")
}

func (l *stateList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		s, ok := parseState(part)
		if !ok {
			return fmt.Errorf("unknown state %q (want %s)", part, strings.Join(stateNames(), ", "))
		}
		*l = append(*l, s)
	}
	return nil
}

// has reports whether s passes the filter (an empty list lets every state through).
func (l stateList) has(s registryv1.RegistrationState) bool {
	if len(l) == 0 {
		return true
	}
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// ANSI SGR codes of the colours used.
const (
	sgrRed    = "31"
	sgrGreen  = "32"
	sgrYellow = "33"
	sgrFaint  = "2"
	sgrBold   = "1"
)

// stateColor is how a state is shown on a colour terminal: green when fine, yellow on
// the way, red when a person is needed.
func stateColor(s registryv1.RegistrationState) string {
	switch s {
	case registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED:
		return sgrGreen
	case registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED, registryv1.RegistrationState_REGISTRATION_STATE_REJECTED:
		return sgrRed
	case registryv1.RegistrationState_REGISTRATION_STATE_UNREGISTERED:
		return sgrFaint
	}
	return sgrYellow
}

// paint wraps s in an SGR colour when color is on.
func paint(color bool, sgr, s string) string {
	if !color || sgr == "" || s == "" {
		return s
	}
	return "\x1b[" + sgr + "m" + s + "\x1b[0m"
}

// relative shows t against now: "in 4m12s", "3s ago", "now"; "-" for no time.
func relative(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.AsTime().Sub(now).Truncate(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + shortDuration(d)
	}
	return shortDuration(-d) + " ago"
}

// shortDuration is d in at most two units: 42s, 4m12s, 2h3m, 3d4h.
func shortDuration(d time.Duration) string {
	s := int(d / time.Second)
	switch {
	case s < 60:
		return strconv.Itoa(s) + "s"
	case s < 3600:
		return twoUnits(s/60, "m", s%60, "s")
	case s < 86400:
		return twoUnits(s/3600, "h", s%3600/60, "m")
	}
	return twoUnits(s/86400, "d", s%86400/3600, "h")
}

// twoUnits is "4m12s", or "4m" when the smaller unit is 0.
func twoUnits(big int, bigUnit string, small int, smallUnit string) string {
	if small == 0 {
		return strconv.Itoa(big) + bigUnit
	}
	return strconv.Itoa(big) + bigUnit + strconv.Itoa(small) + smallUnit
}

// absolute is t in RFC 3339 (UTC, whole seconds); "-" for no time.
func absolute(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// nextAction is "refresh in 4m12s"; "-" when nothing is planned.
func nextAction(r *registryv1.Registration, now time.Time) string {
	action := r.GetNextAction()
	if action == "" || action == "none" {
		return "-"
	}
	if r.GetNextActionAt() == nil {
		return action
	}
	return action + " " + relative(r.GetNextActionAt(), now)
}

// lastCode is the last SIP status code, "-" when no answer came.
func lastCode(r *registryv1.Registration) string {
	if r.GetLastResponseCode() == 0 {
		return "-"
	}
	return strconv.Itoa(int(r.GetLastResponseCode()))
}

// lastAnswer is "403 Forbidden": the code with the reason phrase (or Routr's type name).
func lastAnswer(r *registryv1.Registration) string {
	if r.GetLastResponseCode() == 0 {
		return "-"
	}
	text := r.GetLastReason()
	if text == "" {
		text = r.GetLastResponseType()
	}
	return strings.TrimSpace(lastCode(r) + " " + text)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell is one table cell and its colour (an SGR code, or none).
type cell struct {
	text string
	sgr  string
}

// table is a plain-text table: columns padded to their widest cell (colour codes do
// not count), separated by three spaces, with no trailing blanks.
type table struct {
	header []string
	rows   [][]cell
}

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer, color bool) error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range t.rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	var b strings.Builder
	line := func(cells []cell) {
		for i, c := range cells {
			b.WriteString(paint(color, c.sgr, c.text))
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+3))
			}
		}
		b.WriteByte('\n')
	}
	head := make([]cell, len(t.header))
	for i, h := range t.header {
		head[i] = cell{text: h}
	}
	line(head)
	for _, row := range t.rows {
		line(row)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// footer counts registrations per state: "3 trunks: 2 registered, 1 rejected".
func footer(regs []*registryv1.Registration, color bool) string {
	counts := map[registryv1.RegistrationState]int{}
	for _, r := range regs {
		counts[r.GetState()]++
	}
	noun := "trunks"
	if len(regs) == 1 {
		noun = "trunk"
	}
	var parts []string
	for _, s := range append(states(), registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED) {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, paint(color, stateColor(s), stateName(s))))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d %s", len(regs), noun)
	}
	return fmt.Sprintf("%d %s: %s", len(regs), noun, strings.Join(parts, ", "))
}

// writeJSON writes m as indented JSON (protojson: field names as grpcurl shows them,
// enums by name, times in RFC 3339), then a newline.
func writeJSON(w io.Writer, m proto.Message) error {
	return writeProtoJSON(w, m, "  ")
}

// writeJSONLine writes m as JSON on one line.
func writeJSONLine(w io.Writer, m proto.Message) error {
	return writeProtoJSON(w, m, "")
}

// writeProtoJSON writes m with a stable layout: protojson's own spacing varies on
// purpose, so its output is compacted, then indented when indent is set.
func writeProtoJSON(w io.Writer, m proto.Message, indent string) error {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	var b bytes.Buffer
	if indent == "" {
		err = json.Compact(&b, raw)
	} else {
		err = json.Indent(&b, raw, "", indent)
	}
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	b.WriteByte('\n')
	_, err = w.Write(b.Bytes())
	return err
}
