package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// Path is a position in a message in HL7 notation. Every number is 1-based;
// 0 in Occurrence, Rep, Comp or Sub means 1.
type Path struct {
	Segment    string // segment id, e.g. "PID"
	Occurrence int    // which segment of that id: OBX(2)
	Field      int    // PID-3
	Rep        int    // PID-3(2)
	Comp       int    // PID-3.1
	Sub        int    // PID-3.1.2
}

// ParsePath parses "SEG[(occ)]-field[(rep)][.comp[.sub]]", e.g. "PID-3",
// "PID-3(2).1.2", "OBX(2)-5.1", "MSH-9.2". Square brackets are accepted in
// place of parentheses.
func ParsePath(s string) (Path, error) {
	var p Path
	bad := func(what string) (Path, error) {
		return Path{}, fmt.Errorf("invalid HL7 position %q: %s", s, what)
	}
	rest := s
	if len(rest) < 3 || !validSegmentName(rest[:3]) {
		return bad("it must start with a segment id")
	}
	p.Segment, rest = rest[:3], rest[3:]
	var ok bool
	if p.Occurrence, rest, ok = index(rest); !ok {
		return bad("bad segment occurrence")
	}
	if !strings.HasPrefix(rest, "-") {
		return bad("a field number must follow the segment id")
	}
	if p.Field, rest, ok = number(rest[1:]); !ok {
		return bad("bad field number")
	}
	if p.Rep, rest, ok = index(rest); !ok {
		return bad("bad repetition")
	}
	if strings.HasPrefix(rest, ".") {
		if p.Comp, rest, ok = number(rest[1:]); !ok {
			return bad("bad component")
		}
		if strings.HasPrefix(rest, ".") {
			if p.Sub, rest, ok = number(rest[1:]); !ok {
				return bad("bad subcomponent")
			}
		}
	}
	if rest != "" {
		return bad("unexpected text after the position")
	}
	return p, nil
}

// index parses an optional "(n)" or "[n]".
func index(s string) (int, string, bool) {
	if s == "" || s[0] != '(' && s[0] != '[' {
		return 0, s, true
	}
	closer := byte(')')
	if s[0] == '[' {
		closer = ']'
	}
	n, rest, ok := number(s[1:])
	if !ok || rest == "" || rest[0] != closer {
		return 0, s, false
	}
	return n, rest[1:], true
}

// number parses a positive decimal number of at most 5 digits.
func number(s string) (int, string, bool) {
	i := 0
	for i < len(s) && i < 6 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 5 {
		return 0, s, false
	}
	n, _ := strconv.Atoi(s[:i])
	if n < 1 {
		return 0, s, false
	}
	return n, s[i:], true
}

// String returns the path in HL7 notation, omitting defaults.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.Occurrence > 1 {
		fmt.Fprintf(&b, "(%d)", p.Occurrence)
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.Rep > 1 {
		fmt.Fprintf(&b, "(%d)", p.Rep)
	}
	if p.Comp > 0 || p.Sub > 0 {
		fmt.Fprintf(&b, ".%d", one(p.Comp))
	}
	if p.Sub > 0 {
		fmt.Fprintf(&b, ".%d", p.Sub)
	}
	return b.String()
}

// validSegmentName reports whether s is a segment id: an upper-case letter
// then two upper-case letters or digits.
func validSegmentName(s string) bool {
	if len(s) != 3 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}
