package fhir

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeMembers decodes the top-level members of the JSON object body that
// keep selects into a map, and returns the resourceType member's string
// value ("" when it is missing or not a string). Values decode as
// encoding/json decodes into any with UseNumber (map[string]any, []any,
// string, json.Number, bool, nil), and body is accepted exactly when
// json.Valid accepts it and it is an object: the fuzz test
// FuzzDecodeMembers holds it to both.
//
// It exists for search index extraction, which every write runs:
// encoding/json scans a value once to find its end, again to decode it
// through reflection, and allocates for every member it is asked to skip;
// this scans once and only validates the members it skips (the narrative,
// mostly).
func DecodeMembers(body []byte, keep func(key string) bool) (root map[string]any, resourceType string, err error) {
	d := decoder{b: body}
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, "", errNotJSONObject
	}
	root = make(map[string]any, 8)
	err = d.object(0, func(key string) error {
		switch {
		case key == "resourceType":
			v, err := d.value(1, true)
			if err != nil {
				return err
			}
			resourceType, _ = v.(string)
		case keep(key):
			v, err := d.value(1, true)
			if err != nil {
				return err
			}
			root[key] = v
		default:
			_, err := d.value(1, false)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if d.space(); d.i != len(d.b) {
		return nil, "", d.fail()
	}
	return root, resourceType, nil
}

var errNotJSONObject = errors.New("not a JSON object")

// ValidJSON reports whether b is one valid JSON value (RFC 8259), as
// json.Valid does, in one pass that allocates nothing: every write
// validates its body (Members), and json.Valid's byte-by-byte state
// machine was the larger part of that.
func ValidJSON(b []byte) bool {
	d := decoder{b: b}
	if _, err := d.value(0, false); err != nil {
		return false
	}
	d.space()
	return d.i == len(d.b)
}

// maxDepth is encoding/json's nesting limit, which json.Valid applies.
const maxDepth = 10000

// decoder is a strict single-pass JSON reader over b from offset i.
type decoder struct {
	b []byte
	i int
}

func (d *decoder) fail() error {
	return errors.New("invalid JSON at offset " + strconv.Itoa(d.i))
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value reads the value at d.i (after white space). With build false it
// only checks it and returns nil.
func (d *decoder) value(depth int, build bool) (any, error) {
	d.space()
	if d.i >= len(d.b) {
		return nil, d.fail()
	}
	switch c := d.b[d.i]; {
	case c == '{':
		if depth >= maxDepth {
			return nil, d.fail()
		}
		var m map[string]any
		if build {
			m = map[string]any{}
		}
		err := d.object(depth, func(key string) error {
			v, err := d.value(depth+1, build)
			if build {
				m[key] = v
			}
			return err
		})
		if err != nil || !build {
			return nil, err
		}
		return m, nil
	case c == '[':
		if depth >= maxDepth {
			return nil, d.fail()
		}
		return d.array(depth, build)
	case c == '"':
		s, err := d.str(build)
		if err != nil || !build {
			return nil, err
		}
		return s, nil
	case c == '-' || '0' <= c && c <= '9':
		start := d.i
		if err := d.number(); err != nil {
			return nil, err
		}
		if !build {
			return nil, nil
		}
		return json.Number(d.b[start:d.i]), nil
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.fail()
}

// object reads the object at d.i, calling member for each key with d.i at
// the start of the key's value; member must read the value.
func (d *decoder) object(depth int, member func(key string) error) error {
	d.i++ // '{'
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return d.fail()
		}
		key, err := d.str(true)
		if err != nil {
			return err
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.fail()
		}
		d.i++
		if err := member(key); err != nil {
			return err
		}
		d.space()
		if d.i >= len(d.b) {
			return d.fail()
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.fail()
		}
	}
}

func (d *decoder) array(depth int, build bool) (any, error) {
	d.i++ // '['
	var a []any
	if build {
		a = []any{}
	}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		if !build {
			return nil, nil
		}
		return a, nil
	}
	for {
		v, err := d.value(depth+1, build)
		if err != nil {
			return nil, err
		}
		if build {
			a = append(a, v)
		}
		d.space()
		if d.i >= len(d.b) {
			return nil, d.fail()
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			if !build {
				return nil, nil
			}
			return a, nil
		default:
			return nil, d.fail()
		}
	}
}

func (d *decoder) literal(word string) error {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return d.fail()
	}
	d.i += len(word)
	return nil
}

// number reads a number of RFC 8259's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	b := d.b
	if d.i < len(b) && b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(b) && b[d.i] == '0':
		d.i++
	case d.i < len(b) && '1' <= b[d.i] && b[d.i] <= '9':
		d.digits()
	default:
		return d.fail()
	}
	if d.i < len(b) && b[d.i] == '.' {
		d.i++
		if !d.digits() {
			return d.fail()
		}
	}
	if d.i < len(b) && (b[d.i] == 'e' || b[d.i] == 'E') {
		d.i++
		if d.i < len(b) && (b[d.i] == '+' || b[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return d.fail()
		}
	}
	return nil
}

// digits reads [0-9]* and reports whether there was one.
func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// str reads the string at d.i (its opening quote). Plain ASCII without
// escapes, the usual case, is sliced; anything else is decoded as
// encoding/json does (an invalid byte or lone surrogate becomes U+FFFD).
func (d *decoder) str(build bool) (string, error) {
	d.i++ // '"'
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !build {
				return "", nil
			}
			return string(d.b[start : d.i-1]), nil
		case c == '\\' || c >= utf8.RuneSelf:
			return d.slowStr(start, build)
		case c < 0x20:
			return "", d.fail()
		}
		d.i++
	}
	return "", d.fail()
}

func (d *decoder) slowStr(start int, build bool) (string, error) {
	var out []byte
	if build {
		out = append(make([]byte, 0, 2*(d.i-start)+8), d.b[start:d.i]...)
	}
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.fail()
		case c == '\\':
			r, err := d.escape()
			if err != nil {
				return "", err
			}
			if build {
				out = utf8.AppendRune(out, r)
			}
		case c < utf8.RuneSelf:
			if build {
				out = append(out, c)
			}
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if build {
				out = utf8.AppendRune(out, r) // RuneError for an invalid byte
			}
			d.i += size
		}
	}
	return "", d.fail()
}

// escape reads the escape sequence at d.i (its backslash).
func (d *decoder) escape() (rune, error) {
	if d.i+1 >= len(d.b) {
		return 0, d.fail()
	}
	c := d.b[d.i+1]
	d.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := d.hex4()
		if !ok {
			return 0, d.fail()
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		// A pair when a low surrogate escape follows; otherwise U+FFFD,
		// leaving what follows to be read on its own.
		if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
			save := d.i
			d.i += 2
			if r2, ok := d.hex4(); ok {
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					return dec, nil
				}
			}
			d.i = save
		}
		return utf8.RuneError, nil
	}
	return 0, d.fail()
}

// hex4 reads four hex digits.
func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}
