package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func TestLoaderBatches(t *testing.T) {
	tests := []struct {
		name        string
		keys        []string
		max         int
		wantBatches [][]string
	}{
		{"one batch", []string{"a", "b", "c"}, 10, [][]string{{"a", "b", "c"}}},
		{"repeated keys fetched once", []string{"a", "b", "a", "b"}, 10, [][]string{{"a", "b"}}},
		{"split at max", []string{"a", "b", "c"}, 2, [][]string{{"a", "b"}, {"c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				batches [][]string
			)
			l := newLoader(context.Background(), 50*time.Millisecond, tt.max, func(_ context.Context, keys []string) ([]string, []error) {
				mu.Lock()
				batches = append(batches, append([]string(nil), keys...))
				mu.Unlock()
				vs := make([]string, len(keys))
				errs := make([]error, len(keys))
				for i, k := range keys {
					if k == "c" {
						errs[i] = errors.New("no c")
						continue
					}
					vs[i] = "v" + k
				}
				return vs, errs
			})
			got := make([]string, len(tt.keys))
			var wg sync.WaitGroup
			for i, k := range tt.keys {
				// In order, so that batches are predictable.
				time.Sleep(time.Millisecond)
				wg.Go(func() {
					v, err := l.Load(context.Background(), k)
					if err != nil {
						v = err.Error()
					}
					got[i] = v
				})
			}
			wg.Wait()
			want := make([]string, len(tt.keys))
			for i, k := range tt.keys {
				want[i] = "v" + k
				if k == "c" {
					want[i] = "no c"
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("values (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantBatches, batches); d != "" {
				t.Errorf("batches (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoaderCanceled(t *testing.T) {
	l := newLoader(context.Background(), time.Hour, 10, func(context.Context, []int) ([]int, []error) {
		t.Error("fetched")
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Load(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Load on a canceled context: %v", err)
	}
}

func TestCursors(t *testing.T) {
	for _, n := range []int{0, 1, 57, 100000} {
		c := encodeCursor(n)
		got, err := decodeCursor(&c)
		if err != nil || got != n {
			t.Errorf("cursor of %d decodes to %d, %v", n, got, err)
		}
	}
	for _, bad := range []string{"x", "bzE=", "eDU", "by0x", "b!"} { // padded, "x5", "o-1", not base64
		if _, err := decodeCursor(&bad); !fhir.IsKind(err, fhir.KindInvalid) {
			t.Errorf("decodeCursor(%q): %v, want KindInvalid", bad, err)
		}
	}
}

func TestPageInfo(t *testing.T) {
	tests := []struct {
		name      string
		p         page
		offset    int
		wantStart int // -1: nil
		wantEnd   int
	}{
		{"all kept", page{positions: []int{0, 1, 2}, scanned: 3, hasMore: true}, 10, 11, 13},
		{"last withheld, more to come: resume after it", page{positions: []int{0, 1}, scanned: 3, hasMore: true}, 0, 1, 3},
		{"all withheld", page{scanned: 3, hasMore: true}, 3, -1, 6},
		{"last page", page{positions: []int{0}, scanned: 2}, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pi, cursors := pageInfo(&tt.p, tt.offset)
			if len(cursors) != len(tt.p.positions) {
				t.Fatalf("%d cursors for %d nodes", len(cursors), len(tt.p.positions))
			}
			pos := func(c *string) int {
				if c == nil {
					return -1
				}
				n, err := decodeCursor(c)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if s := pos(pi.StartCursor); s != tt.wantStart {
				t.Errorf("start cursor at %d, want %d", s, tt.wantStart)
			}
			if e := pos(pi.EndCursor); e != tt.wantEnd {
				t.Errorf("end cursor at %d, want %d", e, tt.wantEnd)
			}
			if pi.HasNextPage != tt.p.hasMore || pi.HasPreviousPage != (tt.offset > 0) {
				t.Errorf("page info %+v", pi)
			}
		})
	}
}

func TestMeasure(t *testing.T) {
	tests := []struct {
		query string
		want  shape
	}{
		{`{ a }`, shape{depth: 1, fields: 1}},
		{`{ a { b { c } } d }`, shape{depth: 3, fields: 4}},
		{`{ a { ...f } } fragment f on T { b { c } }`, shape{depth: 3, fields: 3}},
		{`{ a { ... on T { b } } }`, shape{depth: 2, fields: 2}},
		{`{ a { ...f ...f } } fragment f on T { b }`, shape{depth: 2, fields: 3}},
		{`{ __schema { types { name } } }`, shape{depth: 3, fields: 3, introspection: true}},
		{`{ _service { sdl } }`, shape{depth: 2, fields: 2, service: true}},
		{`{ a { _service } }`, shape{depth: 2, fields: 2}},
		{`{ a { ...f } } fragment f on T { ...f }`, shape{depth: 1, fields: 1}}, // a cycle: validation's to report
	}
	for _, tt := range tests {
		doc, err := parser.ParseQuery(&ast.Source{Input: tt.query})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tt.want, measure(doc), cmp.AllowUnexported(shape{})); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.query, d)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	l := Limits{MaxDepth: 3, MaxFields: 5}.withDefaults()
	tests := []struct {
		s        shape
		subgraph bool
		want     string
	}{
		{shape{depth: 3, fields: 5}, false, ""},
		{shape{depth: 4}, false, CodeQueryTooDeep},
		{shape{depth: 1, fields: 6}, false, CodeTooComplex},
		{shape{depth: 1, fields: 6}, true, ""}, // the subgraph weighs complexity instead
		{shape{depth: 1, introspection: true}, false, CodeIntrospection},
		{shape{depth: 1, service: true}, false, ""}, // no _service at the gateway
		{shape{depth: 1, service: true}, true, CodeIntrospection},
	}
	for _, tt := range tests {
		got := ""
		if e := l.check(tt.s, tt.subgraph); e != nil {
			got = e.Extensions["code"].(string)
		}
		if got != tt.want {
			t.Errorf("check(%+v, subgraph %v) = %q, want %q", tt.s, tt.subgraph, got, tt.want)
		}
	}
}

func TestDenialCodes(t *testing.T) {
	reasons := map[authz.Reason]string{
		authz.ReasonNoScope: CodeForbidden, authz.ReasonNoLaunchPatient: CodeForbidden, authz.ReasonNoUser: CodeForbidden,
		authz.ReasonPatientOutOfScope: CodeForbidden, authz.ReasonScopeRestriction: CodeForbidden,
		authz.ReasonUnreadableResource: CodeForbidden,
		authz.ReasonConsentDeny:        CodeConsentDenied, authz.ReasonConsentRequired: CodeConsentDenied,
	}
	if len(reasons) != len(knownReasons) {
		t.Errorf("%d reasons tested, %d known", len(reasons), len(knownReasons))
	}
	for r, want := range reasons {
		// As authz reports a denial.
		err := fmt.Errorf("checking: %w", fhir.Errorf(fhir.KindForbidden, "access denied (%s)", r))
		got := reasonOf(err)
		if got != string(r) {
			t.Errorf("reasonOf(%v) = %q", err, got)
		}
		if c := denied("Observation", "o1", got).Code(); c != want {
			t.Errorf("%s: code %s, want %s", r, c, want)
		}
	}
	if got := reasonOf(errors.New("something else")); got != string(authz.ReasonScopeRestriction) {
		t.Errorf("an unknown denial reads as %q", got)
	}
}

func TestWithheldErrors(t *testing.T) {
	ds := []*Denied{
		denied("Patient", "a", "consent-deny"), denied("Patient", "b", "consent-required"),
		denied("Patient", "c", "scope-restriction"), denied("Observation", "d", "consent-deny"),
	}
	var got []string
	for _, err := range withheldErrors(ds) {
		ce, ok := classify(err)
		if !ok {
			t.Fatalf("%v not classified", err)
		}
		got = append(got, fmt.Sprintf("%s %v %v", ce.code, ce.ext["resourceType"], ce.ext["withheld"]))
	}
	want := []string{"CONSENT_DENIED Patient 2", "FORBIDDEN Patient 1", "CONSENT_DENIED Observation 1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string // "" for internal
	}{
		{fhir.Errorf(fhir.KindInvalid, "bad"), CodeBadUserInput},
		{fmt.Errorf("parsing: %w", fhir.Errorf(fhir.KindNotSupported, "modifier")), CodeBadUserInput},
		{fhir.Errorf(fhir.KindNotFound, "gone"), CodeNotFound},
		{fhir.Errorf(fhir.KindGone, "deleted"), CodeGone},
		{fhir.Errorf(fhir.KindPreconditionFailed, "several").WithCode(fhir.IssueMultipleMatches), CodeMultipleMatches},
		{fhir.Errorf(fhir.KindTooCostly, "slow"), CodeTooCostly},
		{fhir.Errorf(fhir.KindUnauthorized, "who"), CodeUnauthenticated},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), CodeTimeout},
		{limitf(CodeResultTooLarge, "big"), CodeResultTooLarge},
		{fhir.Errorf(fhir.KindInternal, "db"), ""},
		{errors.New("plain"), ""},
	}
	for _, tt := range tests {
		ce, ok := classify(tt.err)
		got := ce.code
		if !ok {
			got = ""
		}
		if got != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestAnnotate(t *testing.T) {
	gw := &gateway{names: map[string]string{"1": "wards"}}
	in := `{"errors":[{"message":"Failed to fetch from Subgraph '1' at Path 'wardCensus.@', Reason: dial tcp 10.0.0.1:80: connection refused."},` +
		`{"message":"other","extensions":{"code":"X"}}],"data":{"wardCensus":null}}`
	var got struct {
		Errors []map[string]any `json:"errors"`
		Data   map[string]any   `json:"data"`
	}
	if err := json.Unmarshal(gw.annotate([]byte(in)), &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"message": `subgraph "wards" did not answer`, "path": []any{"wardCensus"},
			"extensions": map[string]any{"code": CodeSubgraphUnavail, "serviceName": "wards"}},
		{"message": "other", "extensions": map[string]any{"code": "X"}},
	}
	if d := cmp.Diff(want, got.Errors); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]any{"wardCensus": nil}, got.Data); d != "" {
		t.Errorf("data (-want +got):\n%s", d)
	}
	plain := `{"data":{"a":1}}`
	if out := gw.annotate([]byte(plain)); string(out) != plain {
		t.Errorf("a response without fetch errors changed: %s", out)
	}
}

func TestParseRemotes(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]Remote
		wantErr bool
	}{
		{"", nil, false},
		{`{"wards": {"url": "https://w.example/t/{tenant}/graphql", "timeout": "2s"}, "labs": {"url": "http://labs:8080/graphql"}}`,
			map[string]Remote{"wards": {URL: "https://w.example/t/{tenant}/graphql", Timeout: 2 * time.Second}, "labs": {URL: "http://labs:8080/graphql"}}, false},
		{`{"wards": {"url": "ftp://x/graphql"}}`, nil, true},
		{`{"wards": {"url": "http://x/graphql", "timeout": "soon"}}`, nil, true},
		{`{"wards": {"url": "http://x/graphql", "retries": 3}}`, nil, true},
		{`["wards"]`, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseRemotes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRemotes(%s): error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("ParseRemotes(%s) (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestNewGatewayChecksConfig(t *testing.T) {
	l := Limits{}.withDefaults()
	local := func(http.ResponseWriter, *http.Request, *call) {}
	tests := []struct {
		name    string
		config  []byte
		remotes map[string]Remote
		wantErr bool
	}{
		{"embedded supergraph", Supergraph, nil, false},
		{"our subgraph moved", Supergraph, map[string]Remote{"pulsewire": {URL: "http://graph.internal:8080/t/{tenant}/graphql/subgraph"}}, false},
		{"unknown subgraph", Supergraph, map[string]Remote{"wards": {URL: "http://w/graphql"}}, true},
		{"bad URL", Supergraph, map[string]Remote{"pulsewire": {URL: "graph.internal"}}, true},
		{"not a supergraph", []byte(`{"x": 1}`), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newGateway(t.Context(), tt.config, tt.remotes, http.DefaultTransport, &l, slog.Default(), local)
			if (err != nil) != tt.wantErr {
				t.Errorf("error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
