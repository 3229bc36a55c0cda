package trunk

import "strings"

// Compact is t with its strings copied into one allocation and its URIs into an array
// of their own: what the engine keeps, one per trunk, while the trunk is unchanged. A
// trunk decoded from the API holds a string per field (ref, name, credentials, each
// URI's host, user and transport), six or more small objects a trunk for the
// collector to mark, and the URIs array FromProto grew. The transport is udp or tcp,
// kept as the constant. Compact(t) is Equal to t.
func (t Trunk) Compact() Trunk {
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
	c := t
	c.Ref, c.Name, c.Username, c.Password = take(t.Ref), take(t.Name), take(t.Username), take(t.Password)
	if t.URIs != nil {
		c.URIs = make([]URI, len(t.URIs))
		for i, u := range t.URIs {
			u.Host, u.User = take(u.Host), take(u.User)
			switch u.Transport {
			case "udp":
				u.Transport = "udp"
			case "tcp":
				u.Transport = "tcp"
			}
			c.URIs[i] = u
		}
	}
	return c
}
