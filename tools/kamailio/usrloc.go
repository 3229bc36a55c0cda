package kamailio

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Bindings returns the contacts bound to aor (the user part; usrloc runs without
// domains), via `kamcmd ul.lookup location <aor>`. An unknown AOR gives an empty slice
// and no error.
func (i *Instance) Bindings(aor string) ([]Binding, error) {
	out, err := i.rpc("ul.lookup", "location", "s:"+aor)
	if err != nil {
		if strings.Contains(err.Error(), "AOR not found") {
			return []Binding{}, nil
		}
		return nil, err
	}
	all, err := parseUL(out)
	if err != nil {
		return nil, err
	}
	if b := all[aor]; b != nil {
		return b, nil
	}
	return []Binding{}, nil
}

// Dump returns every AOR with its contacts, via `kamcmd ul.dump`.
func (i *Instance) Dump() (map[string][]Binding, error) {
	out, err := i.rpc("ul.dump")
	if err != nil {
		return nil, err
	}
	return parseUL(out)
}

// rpc runs one kamcmd command on the instance's ctl socket. kamcmd exits 0 on RPC
// errors and prints "error: <code> - <text>", which becomes the returned error.
func (i *Instance) rpc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kamcmdTimeout)
	defer cancel()
	argv := append([]string{"-s", "unix:" + filepath.Join(i.runDir, "kamailio_ctl")}, args...)
	out, err := exec.CommandContext(ctx, i.kamcmd, argv...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return "", fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, text)
	}
	if strings.HasPrefix(strings.ToLower(text), "error:") {
		return "", fmt.Errorf("kamcmd %s: %s", strings.Join(args, " "), text)
	}
	return text, nil
}

// parseUL reads the text output of ul.dump and ul.lookup: "AoR: <aor>" lines, each
// followed by "Contact: { ... }" blocks of "Key: value" lines.
func parseUL(out string) (map[string][]Binding, error) {
	res := make(map[string][]Binding)
	aor := ""
	var cur *Binding
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "AoR: "):
			aor = strings.TrimPrefix(line, "AoR: ")
			if res[aor] == nil {
				res[aor] = []Binding{}
			}
		case line == "Contact: {":
			if aor == "" {
				return nil, fmt.Errorf("line %d: contact outside an AoR", n+1)
			}
			cur = &Binding{}
		case line == "}" && cur != nil:
			res[aor] = append(res[aor], *cur)
			cur = nil
		case cur != nil:
			key, value, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			if value == "[not set]" {
				value = ""
			}
			switch key {
			case "Address":
				cur.Address = value
			case "Call-ID":
				cur.CallID = value
			case "User-Agent":
				cur.UserAgent = value
			case "CSeq":
				cseq, err := strconv.Atoi(value)
				if err != nil {
					return nil, fmt.Errorf("line %d: CSeq %q: %w", n+1, value, err)
				}
				cur.CSeq = cseq
			case "Expires":
				switch value {
				case "permanent":
					cur.Expires = -1
				case "expired", "deleted":
					cur.Expires = 0
				default:
					exp, err := strconv.Atoi(value)
					if err != nil {
						return nil, fmt.Errorf("line %d: Expires %q: %w", n+1, value, err)
					}
					cur.Expires = exp
				}
			}
		}
	}
	if cur != nil {
		return nil, errors.New("unterminated Contact block")
	}
	return res, nil
}
