package validate

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// lint checks the R4 JSON rules (https://hl7.org/fhir/R4/json.html) that
// google/fhir v0.7.4 does not enforce and that would otherwise let a
// resource change silently on its way to storage:
//
//   - member names are case-sensitive: google/fhir accepts "Status" for
//     "status" (and then keeps one of the two when both are present);
//   - a member appears at most once: its map decoding keeps the last;
//   - no empty strings ("string ... SHALL NOT be empty", datatypes.html):
//     google/fhir drops `"status": ""`, turning an invalid resource into a
//     different one without a required element;
//   - no empty objects or arrays, and null only as a placeholder inside an
//     array: google/fhir drops `{}`, `[]` and `null` members.
//
// body must already be valid JSON. lint returns at most maxLint problems,
// with element paths rooted at typ.
func lint(body []byte, typ string) []problem {
	l := linter{b: body, typ: typ}
	l.value(0, false)
	return l.problems
}

const (
	maxLint      = 50
	maxLintDepth = maxNestingDepth + 8 // deeper input is google/fhir's to reject
)

// The lint findings, as shown to clients.
const (
	lintEmptyString = "empty string (FHIR values are never empty)"
	lintNull        = "null value (allowed only as a placeholder inside arrays)"
	lintEmptyObject = "empty object (FHIR elements have a value or children)"
	lintEmptyArray  = "empty array (FHIR leaves out elements without values)"
	lintMemberName  = "element names are case-sensitive and start with a lowercase letter"
	lintDuplicate   = "duplicate member"
)

type frame struct {
	key   []byte // member name, or nil for an array element
	index int
}

type linter struct {
	b        []byte
	i        int
	typ      string
	path     []frame
	keys     [][]byte // member names of the open objects, for duplicate checks
	problems []problem
}

func (l *linter) report(details string) {
	if len(l.problems) >= maxLint {
		return
	}
	var sb strings.Builder
	sb.WriteString(l.typ)
	for _, f := range l.path {
		if f.key != nil {
			sb.WriteByte('.')
			sb.Write(f.key)
		} else {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(f.index))
			sb.WriteByte(']')
		}
	}
	l.problems = append(l.problems, problem{path: safePath(sb.String()), details: details})
}

func (l *linter) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\r', '\n':
			l.i++
		default:
			return
		}
	}
}

// value lints the value at l.i; inArray says whether it is an array element.
func (l *linter) value(depth int, inArray bool) {
	l.ws()
	if l.i >= len(l.b) {
		return
	}
	switch l.b[l.i] {
	case '{':
		l.object(depth + 1)
	case '[':
		l.array(depth + 1)
	case '"':
		start := l.i
		l.skipString()
		if l.i-start == 2 {
			l.report(lintEmptyString)
		}
	case 'n':
		l.i += len("null")
		if !inArray {
			l.report(lintNull)
		}
	default: // number, true, false
		for l.i < len(l.b) && !strings.ContainsRune(",]} \t\r\n", rune(l.b[l.i])) {
			l.i++
		}
	}
}

// skipString moves past the string starting at l.i and returns its raw
// content (without quotes).
func (l *linter) skipString() []byte {
	l.i++ // opening quote
	start := l.i
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case '\\':
			l.i += 2
		case '"':
			s := l.b[start:l.i]
			l.i++
			return s
		default:
			l.i++
		}
	}
	return l.b[start:]
}

func (l *linter) object(depth int) {
	l.i++ // {
	l.ws()
	if l.i < len(l.b) && l.b[l.i] == '}' {
		l.i++
		l.report(lintEmptyObject)
		return
	}
	if depth > maxLintDepth {
		l.skipContainer()
		return
	}
	mark := len(l.keys)
	for l.i < len(l.b) {
		l.ws()
		key := l.skipString()
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s); err == nil {
				key = []byte(s)
			}
		}
		l.ws()
		l.i++ // :
		l.path = append(l.path, frame{key: key})
		if !validMemberName(key) {
			l.report(lintMemberName)
		}
		for _, k := range l.keys[mark:] {
			if bytes.Equal(k, key) {
				l.report(lintDuplicate)
				break
			}
		}
		l.keys = append(l.keys, key)
		l.value(depth, false)
		l.path = l.path[:len(l.path)-1]
		l.ws()
		if l.i < len(l.b) && l.b[l.i] == ',' {
			l.i++
			continue
		}
		l.i++ // }
		break
	}
	l.keys = l.keys[:mark]
}

func (l *linter) array(depth int) {
	l.i++ // [
	l.ws()
	if l.i < len(l.b) && l.b[l.i] == ']' {
		l.i++
		l.report(lintEmptyArray)
		return
	}
	if depth > maxLintDepth {
		l.skipContainer()
		return
	}
	for n := 0; l.i < len(l.b); n++ {
		l.path = append(l.path, frame{index: n})
		l.value(depth, true)
		l.path = l.path[:len(l.path)-1]
		l.ws()
		if l.i < len(l.b) && l.b[l.i] == ',' {
			l.i++
			continue
		}
		l.i++ // ]
		break
	}
}

// skipContainer moves past the rest of the object or array whose opening
// bracket is already consumed.
func (l *linter) skipContainer() {
	for depth := 1; l.i < len(l.b) && depth > 0; {
		switch l.b[l.i] {
		case '"':
			l.skipString()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		l.i++
	}
}

// validMemberName reports whether k can name a FHIR JSON member: an element
// name starting with a lowercase letter, optionally prefixed by "_" for a
// primitive's id and extensions. Unknown names are google/fhir's to reject.
func validMemberName(k []byte) bool {
	k = bytes.TrimPrefix(k, []byte("_"))
	return len(k) > 0 && k[0] >= 'a' && k[0] <= 'z'
}
