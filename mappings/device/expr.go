package device

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Expr is a compiled expression of our JSONPath subset. The grammar:
//
//	expr    = ("$" | "@") segment*
//	segment = "." name | "." "*" | "[" index "]" | "[" "*" "]"
//	        | "[" quoted "]" | "[?(" filter ")]"
//	filter  = "@" ("." name | "[" quoted "]")* [ op literal ]
//	op      = "==" | "!=" | "<" | "<=" | ">" | ">="
//	literal = quoted | number | "true" | "false" | "null"
//	name    = letters, digits, "_" and "-"; quoted = '...' or "..."
//
// "$" is the whole payload, "@" the node the template's match expression
// selected. A filter without op keeps the nodes where the path exists.
// Recursive descent (..), slices and functions are not supported: a
// template must say where a value is.
type Expr struct {
	src      string
	relative bool // starts at @
	steps    []step
}

type stepKind int

const (
	stepMember stepKind = iota
	stepIndex
	stepWildcard
	stepFilter
)

type step struct {
	kind   stepKind
	name   string
	index  int
	filter *filter
}

type filter struct {
	path []string
	op   string // "" : the path exists
	lit  any    // string, float64, bool or nil
}

// ParseError says where and why an expression does not parse.
type ParseError struct {
	Expr   string
	Offset int // byte offset in Expr
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("expression %q: at offset %d: %s", e.Expr, e.Offset, e.Msg)
}

// String returns the expression as written.
func (e *Expr) String() string { return e.src }

// ParseExpr compiles an expression. Errors are *ParseError.
func ParseExpr(s string) (*Expr, error) {
	p := &parser{src: s}
	return p.parse()
}

type parser struct {
	src string
	pos int
}

func (p *parser) errf(format string, args ...any) error {
	return &ParseError{Expr: p.src, Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) parse() (*Expr, error) {
	e := &Expr{src: p.src}
	switch p.peek() {
	case '$':
	case '@':
		e.relative = true
	default:
		if p.eof() {
			return nil, p.errf("empty expression, want $ or @")
		}
		return nil, p.errf("an expression starts with $ (the payload) or @ (the matched node)")
	}
	p.pos++
	for !p.eof() {
		switch p.peek() {
		case '.':
			p.pos++
			switch {
			case p.peek() == '.':
				return nil, p.errf("recursive descent (..) is not supported; write the full path")
			case p.peek() == '*':
				p.pos++
				e.steps = append(e.steps, step{kind: stepWildcard})
			default:
				name, err := p.name()
				if err != nil {
					return nil, err
				}
				e.steps = append(e.steps, step{kind: stepMember, name: name})
			}
		case '[':
			p.pos++
			st, err := p.bracket()
			if err != nil {
				return nil, err
			}
			e.steps = append(e.steps, st)
		default:
			return nil, p.errf("unexpected %q, want '.' or '['", p.peek())
		}
	}
	return e, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *parser) name() (string, error) {
	start := p.pos
	for !p.eof() && isNameByte(p.peek()) {
		p.pos++
	}
	if p.pos == start {
		if p.eof() {
			return "", p.errf("unexpected end, want a member name")
		}
		return "", p.errf("unexpected %q, want a member name (use ['...'] for other characters)", p.peek())
	}
	return p.src[start:p.pos], nil
}

func (p *parser) quoted() (string, error) {
	q := p.peek()
	start := p.pos
	p.pos++
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.src):
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	p.pos = start
	return "", p.errf("unterminated quoted name")
}

func (p *parser) expect(c byte) error {
	if p.peek() != c {
		if p.eof() {
			return p.errf("unexpected end, want %q", c)
		}
		return p.errf("unexpected %q, want %q", p.peek(), c)
	}
	p.pos++
	return nil
}

func (p *parser) bracket() (step, error) {
	var st step
	switch c := p.peek(); {
	case c == '*':
		p.pos++
		st = step{kind: stepWildcard}
	case c == '\'' || c == '"':
		name, err := p.quoted()
		if err != nil {
			return st, err
		}
		st = step{kind: stepMember, name: name}
	case c >= '0' && c <= '9':
		start := p.pos
		for !p.eof() && p.peek() >= '0' && p.peek() <= '9' {
			p.pos++
		}
		n, err := strconv.Atoi(p.src[start:p.pos])
		if err != nil || n > 1<<20 {
			p.pos = start
			return st, p.errf("index out of range")
		}
		st = step{kind: stepIndex, index: n}
	case c == '?':
		p.pos++
		if err := p.expect('('); err != nil {
			return st, err
		}
		f, err := p.filter()
		if err != nil {
			return st, err
		}
		if err := p.expect(')'); err != nil {
			return st, err
		}
		st = step{kind: stepFilter, filter: f}
	case c == '-':
		return st, p.errf("negative indexes are not supported")
	case c == ':':
		return st, p.errf("slices are not supported")
	default:
		if p.eof() {
			return st, p.errf("unexpected end, want an index, '*', a quoted name or a filter")
		}
		return st, p.errf("unexpected %q, want an index, '*', a quoted name or a filter", c)
	}
	if err := p.expect(']'); err != nil {
		return st, err
	}
	return st, nil
}

func (p *parser) skipSpace() {
	for p.peek() == ' ' {
		p.pos++
	}
}

func (p *parser) filter() (*filter, error) {
	p.skipSpace()
	if err := p.expect('@'); err != nil {
		return nil, err
	}
	f := &filter{}
	for {
		if p.peek() == '.' {
			p.pos++
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			f.path = append(f.path, name)
			continue
		}
		if p.peek() == '[' {
			p.pos++
			if c := p.peek(); c != '\'' && c != '"' {
				return nil, p.errf("a filter path takes only member names")
			}
			name, err := p.quoted()
			if err != nil {
				return nil, err
			}
			if err := p.expect(']'); err != nil {
				return nil, err
			}
			f.path = append(f.path, name)
			continue
		}
		break
	}
	p.skipSpace()
	if p.peek() == ')' {
		if len(f.path) == 0 {
			return nil, p.errf("a filter needs a path after @")
		}
		return f, nil
	}
	for _, op := range []string{"==", "!=", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(p.src[p.pos:], op) {
			f.op = op
			p.pos += len(op)
			break
		}
	}
	if f.op == "" {
		if p.eof() {
			return nil, p.errf("unexpected end, want a comparison or ')'")
		}
		return nil, p.errf("unexpected %q, want one of == != < <= > >= or ')'", p.peek())
	}
	p.skipSpace()
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	f.lit = lit
	if _, isNum := lit.(float64); !isNum && f.op != "==" && f.op != "!=" {
		if _, isStr := lit.(string); !isStr {
			return nil, p.errf("%s compares numbers or strings only", f.op)
		}
	}
	p.skipSpace()
	return f, nil
}

func (p *parser) literal() (any, error) {
	c := p.peek()
	switch {
	case c == '\'' || c == '"':
		return p.quoted()
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for !p.eof() && strings.IndexByte("0123456789.eE+-", p.peek()) >= 0 {
			p.pos++
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			p.pos = start
			return nil, p.errf("not a number")
		}
		return f, nil
	}
	for _, w := range []struct {
		s string
		v any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(p.src[p.pos:], w.s) {
			p.pos += len(w.s)
			return w.v, nil
		}
	}
	if p.eof() {
		return nil, p.errf("unexpected end, want a literal")
	}
	return nil, p.errf("unexpected %q, want a quoted string, a number, true, false or null", c)
}

// Eval returns the nodes the expression selects in a document decoded by
// encoding/json with UseNumber (maps, slices, json.Number, string, bool,
// nil). An explicit JSON null is a node (nil); a missing member is none.
// ctx is the node "@" stands for.
func (e *Expr) Eval(root, ctx any) []any {
	cur := []any{root}
	if e.relative {
		cur = []any{ctx}
	}
	for _, st := range e.steps {
		var next []any
		for _, n := range cur {
			next = st.apply(n, next)
		}
		cur = next
		if len(cur) == 0 {
			break
		}
	}
	return cur
}

func (st step) apply(n any, out []any) []any {
	switch st.kind {
	case stepMember:
		if m, ok := n.(map[string]any); ok {
			if v, ok := m[st.name]; ok {
				out = append(out, v)
			}
		}
	case stepIndex:
		if a, ok := n.([]any); ok && st.index < len(a) {
			out = append(out, a[st.index])
		}
	case stepWildcard:
		switch x := n.(type) {
		case []any:
			out = append(out, x...)
		case map[string]any:
			for _, k := range sortedKeys(x) {
				out = append(out, x[k])
			}
		}
	case stepFilter:
		switch x := n.(type) {
		case []any:
			for _, c := range x {
				if st.filter.keep(c) {
					out = append(out, c)
				}
			}
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if st.filter.keep(x[k]) {
					out = append(out, x[k])
				}
			}
		}
	}
	return out
}

func (f *filter) keep(n any) bool {
	for _, name := range f.path {
		m, ok := n.(map[string]any)
		if !ok {
			return false
		}
		if n, ok = m[name]; !ok {
			return false
		}
	}
	if f.op == "" {
		return true
	}
	c, ok := compare(n, f.lit)
	if !ok {
		return f.op == "!="
	}
	switch f.op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// compare orders a document node against a literal of the same JSON type.
// ok is false when the types differ.
func compare(n, lit any) (int, bool) {
	switch l := lit.(type) {
	case string:
		s, ok := n.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(s, l), true
	case float64:
		num, ok := n.(json.Number)
		if !ok {
			return 0, false
		}
		v, err := num.Float64()
		if err != nil {
			return 0, false
		}
		switch {
		case v < l:
			return -1, true
		case v > l:
			return 1, true
		}
		return 0, true
	case bool:
		b, ok := n.(bool)
		if !ok || b != l {
			return 1, ok
		}
		return 0, true
	case nil:
		if n == nil {
			return 0, true
		}
		return 1, true
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
