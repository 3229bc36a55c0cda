package redisproxy

import (
	"bytes"
	"strconv"
	"strings"
)

// CommandCounter reads the RESP requests a client sends, across reads, and returns the
// name of each command as it starts (Feed). Requests are arrays of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); an inline command (a plain line) counts too.
type CommandCounter struct {
	line    []byte // a header line read in part
	elems   int    // bulk strings left in the current command
	skip    int    // bytes of bulk data (and its CRLF) left to pass over
	naming  bool   // the bulk being passed over is the command's name
	name    []byte
	pending bool // a command has started and its name is not complete yet
	// begun counts the commands started (at their first line), whole those read to
	// their end.
	begun, whole int64
}

// midCommand reports whether the stream stopped inside a command.
func (c *CommandCounter) midCommand() bool {
	return len(c.line) > 0 || c.elems > 0 || c.skip > 0
}

// maxName bounds how much of a command name is kept.
const maxName = 32

func (c *CommandCounter) Feed(p []byte) []string {
	var names []string
	for len(p) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(p))
			if c.naming {
				data := p[:k]
				if keep := c.skip - 2; keep < len(data) { // leave the CRLF out
					data = data[:max(keep, 0)]
				}
				if room := maxName - len(c.name); room > 0 {
					c.name = append(c.name, data[:min(room, len(data))]...)
				}
			}
			c.skip -= k
			p = p[k:]
			if c.skip == 0 && c.naming {
				c.naming = false
				names = append(names, strings.ToLower(string(c.name)))
				c.name, c.pending = c.name[:0], false
			}
			if c.skip == 0 && c.elems == 0 {
				c.whole++
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			return names
		}
		c.line = append(c.line, p[:i+1]...)
		p = p[i+1:]
		if name, ok := c.header(bytes.TrimRight(c.line, "\r\n")); ok {
			names = append(names, name)
		}
		c.line = c.line[:0]
	}
	return names
}

// header reads one header line; it returns a command's name when the line is a
// whole inline command or an empty array.
func (c *CommandCounter) header(line []byte) (string, bool) {
	if len(line) == 0 {
		return "", false
	}
	if c.elems == 0 {
		if line[0] != '*' {
			f := strings.Fields(string(line))
			if len(f) == 0 {
				return "", false
			}
			c.begun++
			c.whole++
			return strings.ToLower(f[0]), true
		}
		c.begun++
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n <= 0 {
			c.whole++
			return "?", true
		}
		c.elems, c.pending = n, true
		return "", false
	}
	c.elems--
	if line[0] != '$' {
		if c.elems == 0 {
			c.whole++
		}
		return "", false
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 {
		if c.elems == 0 {
			c.whole++
		}
		return "", false
	}
	c.skip = n + 2
	c.naming = c.pending
	return "", false
}

// respReplies counts the whole replies in what a RESP2 or RESP3 server sends, across
// reads: simple values, bulk strings (null ones included) and aggregates, nested to any
// depth, each counted once complete. A RESP3 push (>) is not a reply to a command and
// is not counted; an attribute (|) describes the reply that follows it.
type respReplies struct {
	line []byte // a header line read in part
	skip int    // bytes of bulk data (and its CRLF) left to pass over
	open []aggregate
}

// aggregate is an array, set, map, push or attribute still being read.
type aggregate struct {
	left       int // elements still to come
	push, attr bool
}

func (r *respReplies) feed(p []byte) int64 {
	var n int64
	for len(p) > 0 {
		if r.skip > 0 {
			k := min(r.skip, len(p))
			r.skip -= k
			p = p[k:]
			if r.skip == 0 {
				n += r.element()
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.line = append(r.line, p...)
			return n
		}
		r.line = append(r.line, p[:i+1]...)
		p = p[i+1:]
		n += r.header(bytes.TrimRight(r.line, "\r\n"))
		r.line = r.line[:0]
	}
	return n
}

// header reads one header line and returns the replies it completes.
func (r *respReplies) header(line []byte) int64 {
	if len(line) == 0 {
		return 0
	}
	size := func() int {
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return -1
		}
		return n
	}
	switch line[0] {
	case '$', '=', '!': // bulk string, verbatim string, bulk error
		if n := size(); n >= 0 {
			r.skip = n + 2
			return 0
		}
		return r.element() // null
	case '*', '~', '>', '%', '|':
		n := size()
		if line[0] == '%' || line[0] == '|' {
			n *= 2 // key-value pairs
		}
		if n <= 0 {
			if line[0] == '>' || line[0] == '|' {
				return 0
			}
			return r.element() // empty or null
		}
		r.open = append(r.open, aggregate{left: n, push: line[0] == '>', attr: line[0] == '|'})
		return 0
	}
	return r.element() // + - : _ # , ( and anything else on one line
}

// element notes that one element ended; it returns 1 when that ends a reply.
func (r *respReplies) element() int64 {
	for len(r.open) > 0 {
		top := &r.open[len(r.open)-1]
		top.left--
		if top.left > 0 {
			return 0
		}
		a := *top
		r.open = r.open[:len(r.open)-1]
		if a.attr || a.push && len(r.open) == 0 {
			// An attribute is no element of its own; a push is no reply.
			return 0
		}
	}
	return 1
}
