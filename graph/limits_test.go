package graph_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsewire/pulsewire/graph"
)

// Protection limits: each, when hit, fails with a clear message and a
// stable code, at the gateway and at the subgraph.

func TestLimits(t *testing.T) {
	limits := graph.Limits{
		MaxDepth: 5, MaxComplexity: 200, MaxFields: 40, MaxResources: 6, MaxResponseBytes: 1200,
		MaxBodyBytes: 2000, MaxPageSize: 10, MaxLastN: 3,
	}
	e := newEnv(t, withLimits(limits))
	for p := range 8 {
		e.put(t, patientJSON(fmt.Sprintf("p%d", p), "Doe", "A", "female", "1980-01-01"))
	}
	tok := e.sys

	tests := []struct {
		name        string
		query       string
		gateway     string // the code at the gateway ("" to skip)
		subgraph    string // the code at the subgraph ("" to skip)
		gatewayHTTP int    // the gateway's HTTP status
	}{
		{"depth", `{ patient(id: "p1") { observations { nodes { subject { observations { nodes { id } } } } } } }`,
			"QUERY_TOO_DEEP", "QUERY_TOO_DEEP", http.StatusBadRequest},
		{"depth through fragments", `{ patient(id: "p1") { ...a } } fragment a on Patient { observations { nodes { subject { ...b } } } } fragment b on Patient { observations { nodes { id } } }`,
			"QUERY_TOO_DEEP", "QUERY_TOO_DEEP", http.StatusBadRequest},
		{"fields at the gateway", `{ patient(id: "p1") { ` + strings.Repeat("id ", 20) + strings.Repeat("gender ", 20) + ` } }`,
			"COMPLEXITY_LIMIT_EXCEEDED", "", http.StatusBadRequest},
		{"complexity at the subgraph", `{ patients(first: 10) { nodes { observations(first: 10) { nodes { id } } } } }`,
			"COMPLEXITY_LIMIT_EXCEEDED", "COMPLEXITY_LIMIT_EXCEEDED", http.StatusOK},
		{"page size", `{ patients(first: 11) { nodes { id } } }`,
			"BAD_USER_INPUT", "BAD_USER_INPUT", http.StatusOK},
		{"lastN size", `{ patient(id: "p1") { lastN(max: 4) { id } } }`,
			"BAD_USER_INPUT", "BAD_USER_INPUT", http.StatusOK},
		{"resources in a response", `{ patients(first: 10) { nodes { id } } }`,
			"RESULT_TOO_LARGE", "RESULT_TOO_LARGE", http.StatusOK},
		{"response size", `{ a: patients(first: 5) { nodes { resource } } b: patient(id: "p6") { resource } }`,
			"RESULT_TOO_LARGE", "RESULT_TOO_LARGE", http.StatusOK},
		{"request size", `{ patient(id: "p1") { id } }` + strings.Repeat(" ", 2000),
			"REQUEST_TOO_LARGE", "REQUEST_TOO_LARGE", http.StatusRequestEntityTooLarge},
		{"introspection off", `{ __schema { types { name } } }`,
			"INTROSPECTION_DISABLED", "INTROSPECTION_DISABLED", http.StatusBadRequest},
		{"federated SDL off", `{ _service { sdl } }`,
			"", "INTROSPECTION_DISABLED", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gateway != "" {
				r := e.gateway(t, tok, tt.query, nil)
				if !hasCode(r, tt.gateway) {
					t.Errorf("gateway: errors %+v, want one with code %s", r.Errors, tt.gateway)
				}
				if r.Status != tt.gatewayHTTP {
					t.Errorf("gateway: HTTP %d, want %d", r.Status, tt.gatewayHTTP)
				}
				for _, er := range r.Errors {
					if er.Message == "" {
						t.Errorf("gateway: an error without a message: %+v", er)
					}
				}
			}
			if tt.subgraph != "" {
				if r := e.subgraph(t, tok, tt.query, nil); !hasCode(r, tt.subgraph) {
					t.Errorf("subgraph: errors %+v, want one with code %s", r.Errors, tt.subgraph)
				}
			}
		})
	}

	t.Run("within the limits", func(t *testing.T) {
		var got struct {
			Patients struct{ Nodes []struct{ ID string } }
		}
		e.gateway(t, tok, `{ patients(first: 5) { nodes { id } } }`, nil).decode(t, &got)
		if len(got.Patients.Nodes) != 5 {
			t.Errorf("got %d patients, want 5", len(got.Patients.Nodes))
		}
	})
}

func hasCode(r *gqlResponse, code string) bool {
	for _, c := range r.codes() {
		if c == code {
			return true
		}
	}
	return false
}

func TestIntrospectionOn(t *testing.T) {
	e := newEnv(t, withLimits(graph.Limits{Introspection: true}))
	var schema struct {
		Schema struct {
			QueryType struct{ Name string }
		} `json:"__schema"`
	}
	e.gateway(t, e.sys, `{ __schema { queryType { name } } }`, nil).decode(t, &schema)
	if schema.Schema.QueryType.Name != "Query" {
		t.Errorf("gateway introspection: query type %q", schema.Schema.QueryType.Name)
	}
	var svc struct {
		Service struct{ SDL string } `json:"_service"`
	}
	e.subgraph(t, e.sys, `{ _service { sdl } }`, nil).decode(t, &svc)
	for _, want := range []string{`type Patient @key(fields: "id")`, `type Observation @key(fields: "id")`, "specs.apollo.dev/federation/v2.3"} {
		if !strings.Contains(svc.Service.SDL, want) {
			t.Errorf("the subgraph's SDL lacks %q", want)
		}
	}
	// The generated code serves the schema files as they are now: gqlgen
	// was run after their last change (make generate).
	files, _ := filepath.Glob("schema/*.graphqls")
	var srcs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, string(b))
	}
	if svc.Service.SDL != strings.Join(srcs, "\n") {
		t.Error("internal/exec is stale: the schema changed since gqlgen ran; run make generate")
	}
}
