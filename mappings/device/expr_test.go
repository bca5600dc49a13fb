package device

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	doc, err := DecodePayload([]byte(s))
	if err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return doc
}

// render turns selected nodes into JSON for comparison.
func render(t testing.TB, ns []any) []string {
	t.Helper()
	out := []string{}
	for _, n := range ns {
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestExprEval(t *testing.T) {
	doc := `{"a":{"b":1,"c":[10,20,30]},"list":[{"type":"hr","v":72},{"type":"spo2","v":97},{"type":"hr","v":75,"x":null}],
	         "odd key":{"k":"v"},"n":null,"flag":true,"hr":{"value":60}}`
	ctx := map[string]any{"periodMs": json.Number("4")}
	tests := []struct {
		expr string
		want []string
	}{
		{"$", []string{`{"a":{"b":1,"c":[10,20,30]},"flag":true,"hr":{"value":60},"list":[{"type":"hr","v":72},{"type":"spo2","v":97},{"type":"hr","v":75,"x":null}],"n":null,"odd key":{"k":"v"}}`}},
		{"$.a.b", []string{"1"}},
		{"$['a']['b']", []string{"1"}},
		{`$["odd key"].k`, []string{`"v"`}},
		{"$.a.c[0]", []string{"10"}},
		{"$.a.c[2]", []string{"30"}},
		{"$.a.c[3]", []string{}},
		{"$.a.c[*]", []string{"10", "20", "30"}},
		{"$.a.*", []string{"1", "[10,20,30]"}},
		{"$.list[*].v", []string{"72", "97", "75"}},
		{"$.list[?(@.type=='hr')].v", []string{"72", "75"}},
		{`$.list[?(@.type == "spo2")].v`, []string{"97"}},
		{"$.list[?(@.type!='hr')].v", []string{"97"}},
		{"$.list[?(@.v>72)].type", []string{`"spo2"`, `"hr"`}},
		{"$.list[?(@.v<=72)].type", []string{`"hr"`}},
		{"$.list[?(@.x)].v", []string{"75"}},
		{"$.list[?(@.x==null)].v", []string{"75"}},
		{"$.list[?(@.v=='72')].v", []string{}},
		{"$.flag", []string{"true"}},
		{"$.n", []string{"null"}},
		{"$.missing", []string{}},
		{"$.missing.deeper[0]", []string{}},
		{"$.a.b.c", []string{}},
		{"$.hr.value", []string{"60"}},
		{"@.periodMs", []string{"4"}},
		{"@", []string{`{"periodMs":4}`}},
	}
	root := mustDecode(t, doc)
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := ParseExpr(tt.expr)
			if err != nil {
				t.Fatalf("ParseExpr: %v", err)
			}
			if e.String() != tt.expr {
				t.Errorf("String() = %q, want %q", e.String(), tt.expr)
			}
			if diff := cmp.Diff(tt.want, render(t, e.Eval(root, ctx))); diff != "" {
				t.Errorf("Eval (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExprParseErrors(t *testing.T) {
	tests := []struct {
		expr   string
		offset int
		msg    string
	}{
		{"", 0, "empty expression, want $ or @"},
		{"a.b", 0, "an expression starts with $ (the payload) or @ (the matched node)"},
		{"$..a", 2, "recursive descent (..) is not supported; write the full path"},
		{"$.", 2, "unexpected end, want a member name"},
		{"$.a b", 3, `unexpected ' ', want '.' or '['`},
		{"$.a[", 4, "unexpected end, want an index, '*', a quoted name or a filter"},
		{"$.a[0", 5, `unexpected end, want ']'`},
		{"$.a[-1]", 4, "negative indexes are not supported"},
		{"$.a[1:2]", 5, `unexpected ':', want ']'`},
		{"$.a[:2]", 4, "slices are not supported"},
		{"$.a['b]", 4, "unterminated quoted name"},
		{"$.a[99999999999]", 4, "index out of range"},
		{"$.a[?(@.t=='x']", 14, `unexpected ']', want ')'`},
		{"$.a[?(x)]", 6, `unexpected 'x', want '@'`},
		{"$.a[?(@)]", 7, "a filter needs a path after @"},
		{"$.a[?(@.t=)]", 9, `unexpected '=', want one of == != < <= > >= or ')'`},
		{"$.a[?(@.t==)]", 11, `unexpected ')', want a quoted string, a number, true, false or null`},
		{"$.a[?(@.t<true)]", 14, "< compares numbers or strings only"},
		{"$.a[?(@.t==1.2.3)]", 11, "not a number"},
		{"$.a[?(@[0])]", 8, "a filter path takes only member names"},
		{"$.a!", 3, `unexpected '!', want '.' or '['`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := ParseExpr(tt.expr)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseExpr(%q) = %v, want a *ParseError", tt.expr, err)
			}
			if diff := cmp.Diff(ParseError{Expr: tt.expr, Offset: tt.offset, Msg: tt.msg}, *pe); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Error() = %q does not say %q", err.Error(), tt.msg)
			}
		})
	}
}

func FuzzExpression(f *testing.F) {
	for _, s := range []string{"$", "$.a.b", "$['a'][0]", "$.list[?(@.type=='hr')].v", "@.x[*]", "$.a[?(@.v>=1e3)]", "$..x", "$.a[?(@['q'] != null)]"} {
		f.Add(s, `{"a":{"b":[1,{"v":2000}]},"list":[{"type":"hr","v":1}]}`)
	}
	f.Fuzz(func(t *testing.T, expr, payload string) {
		e, err := ParseExpr(expr)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(expr) {
				t.Fatalf("ParseExpr(%q): bad error %v", expr, err)
			}
			return
		}
		if e.String() != expr {
			t.Fatalf("String() = %q, want %q", e.String(), expr)
		}
		doc, err := DecodePayload([]byte(payload))
		if err != nil {
			return
		}
		e.Eval(doc, doc)
	})
}
