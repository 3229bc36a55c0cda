package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The file is decoded into tagged structs (config.go's file, spec.go's specFile) whose
// fields are the yaml.Unmarshaler types of values.go. A value type reads what the YAML
// text means (a duration, a size, a list of SIP methods); what a field allows, and the
// defaults, are spec.go's resolve.

// problem is an error, or a warning, about one place in the file.
type problem struct {
	path []string // the keys from the top of the file; "[i]" for a list item
	line int      // 0: the message gives no line
	msg  string
}

// Error is "path: line N: msg", the line left out when it is not known.
func (p *problem) Error() string {
	var b strings.Builder
	b.WriteString(p.where())
	if p.line > 0 {
		fmt.Fprintf(&b, ": line %d", p.line)
	}
	b.WriteString(": " + p.msg)
	return b.String()
}

// where joins the path: spec.edgePorts[1].address.
func (p *problem) where() string {
	var b strings.Builder
	for i, k := range p.path {
		if i > 0 && !strings.HasPrefix(k, "[") {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

// unknownField is the warning for an unknown key: a key at the top is quoted, a key
// below it is shown with its path.
func (p *problem) unknownField() string {
	key := p.where()
	if len(p.path) == 1 {
		key = strconv.Quote(key)
	}
	return fmt.Sprintf("line %d: unknown field %s ignored", p.line, key)
}

// under returns p as seen from one level up, below key.
func (p problem) under(key string) problem {
	p.path = append([]string{key}, p.path...)
	return p
}

// under puts key in front of the path of err.
func under(key string, err error) error {
	var p *problem
	if errors.As(err, &p) {
		p.path = append([]string{key}, p.path...)
		return p
	}
	return &problem{path: []string{key}, msg: err.Error()}
}

// atLine is an error about the value n.
func atLine(n *yaml.Node, format string, args ...any) error {
	return &problem{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

// index is the path element of a list item.
func index(i int) string { return fmt.Sprintf("[%d]", i) }

// unknownKeys keeps the warnings for the unknown keys met while decoding a mapping.
type unknownKeys struct{ warnings []problem }

// takeWarnings returns the warnings kept so far and forgets them.
func (u *unknownKeys) takeWarnings() []problem {
	w := u.warnings
	u.warnings = nil
	return w
}

// warner is a value that keeps warnings about what is below it.
type warner interface{ takeWarnings() []problem }

// decodeFields decodes the mapping n into the tagged struct v points to. Each key goes
// to the field with that yaml tag, a yaml.Unmarshaler, in the file's order, so that a
// key given twice is decoded twice and the last one wins. A key no field has is kept as
// a warning, and so are the warnings of the values below.
//
// It calls UnmarshalYAML itself rather than leaving the struct to yaml.v3's decoder,
// which does not call an Unmarshaler for a null value (`key:` with nothing after it
// must be refused where a value is needed), follows aliases and `<<` merge keys (here an
// alias where a value is expected is refused and `<<` is an unknown key), and refuses a
// key given twice.
func decodeFields(n *yaml.Node, v any) ([]problem, error) {
	rv := reflect.ValueOf(v).Elem()
	var warnings []problem
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(rv, key.Value)
		if !ok {
			warnings = append(warnings, problem{path: []string{key.Value}, line: key.Line})
			continue
		}
		u := f.Addr().Interface().(yaml.Unmarshaler)
		if err := u.UnmarshalYAML(val); err != nil {
			return nil, under(key.Value, err)
		}
		if w, ok := u.(warner); ok {
			for _, p := range w.takeWarnings() {
				warnings = append(warnings, p.under(key.Value))
			}
		}
	}
	return warnings, nil
}

// fieldByTag finds the field of the struct rv whose yaml tag is key.
func fieldByTag(rv reflect.Value, key string) (reflect.Value, bool) {
	for i := range rv.NumField() {
		if tag := rv.Type().Field(i).Tag.Get("yaml"); tag != "" && tag == key {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// value is a setting as the file gives it, with its line: 0 when the key is absent and
// the default stays.
type value[T any] struct {
	val  T
	line int
}

func (v value[T]) set() bool { return v.line > 0 }

// to copies the value to dst when the file gives it.
func (v value[T]) to(dst *T) {
	if v.set() {
		*dst = v.val
	}
}

// scalar refuses a list, a mapping or an alias where one value is expected.
func scalar(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return atLine(n, "must be a single value")
	}
	return nil
}

// str reads a string: trimmed, and empty for a null.
func str(n *yaml.Node) (string, error) {
	if err := scalar(n); err != nil {
		return "", err
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return strings.TrimSpace(n.Value), nil
}
