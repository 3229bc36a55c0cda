package trunk

import "strings"

// packed is t with its strings copied into one allocation and its transport the
// constant, its URIs array changed in place (t's own). A trunk decoded from the API
// holds a string per field (ref, name, credentials, each URI's host, user and
// transport): six or more small objects a trunk for the collector to mark, for as long
// as the engine keeps the trunk. FromProto answers packed trunks; packed(t) is Equal
// to t.
func (t Trunk) packed() Trunk {
	n := len(t.Ref) + len(t.Name) + len(t.Username) + len(t.Password)
	for _, u := range t.URIs {
		n += len(u.Host) + len(u.User)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(t.Ref)
	b.WriteString(t.Name)
	b.WriteString(t.Username)
	b.WriteString(t.Password)
	for _, u := range t.URIs {
		b.WriteString(u.Host)
		b.WriteString(u.User)
	}
	all, off := b.String(), 0
	take := func(s string) string {
		off += len(s)
		return all[off-len(s) : off]
	}
	t.Ref, t.Name, t.Username, t.Password = take(t.Ref), take(t.Name), take(t.Username), take(t.Password)
	for i := range t.URIs {
		u := &t.URIs[i]
		u.Host, u.User = take(u.Host), take(u.User)
		switch u.Transport {
		case "udp":
			u.Transport = "udp"
		case "tcp":
			u.Transport = "tcp"
		}
	}
	return t
}
