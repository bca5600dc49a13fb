package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/search"
	"github.com/pulsewire/pulsewire/server/smart"
)

// The gateway's fast path (an operation only our subgraph serves runs on
// the subgraph's executor directly) answers exactly what the federation
// engine answers, and whatever needs another subgraph still goes through
// the engine.

func TestFastPathMatchesEngine(t *testing.T) {
	w := &wards{beds: map[string]wardBed{"p1": {"ICU", 3}, "p2": {"ICU", 4}}}
	e := newWardsEnv(t, w) // p1, p2, p3; wards serves ward and bed
	e.put(t, deviceJSON("d1", ""))
	e.put(t, deviceJSON("d2", "p1"))
	e.put(t, dusJSON("u1", "d1", "p1", "2020-01-01T00:00:00Z", ""))
	for i, c := range []string{heartCd, tempCd, heartCd, glucose} {
		cat := vitalCat
		if c == glucose {
			cat = labCat
		}
		e.put(t, obsJSON(fmt.Sprintf("o%c", 'a'+i), "p1", cat, c, fmt.Sprintf("2024-03-%02dT10:00:00Z", i+1), "d1", float64(60+i)))
	}
	e.put(t, obsJSON("q1", "p2", vitalCat, heartCd, "2024-03-01T10:00:00Z", "", 80))
	e.put(t, denyConsent("c2", "p2"))
	user := e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs")
	patientsOnly := e.srv.BackendToken(t, tenant, "system/Patient.rs")

	engine := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		e.h.ServeEngine(rw, r, tenant)
	}))
	t.Cleanup(engine.Close)

	tests := []struct {
		name  string
		token string
		body  map[string]any
		// local says the fast path serves it; otherwise the engine does
		// (at the gateway as well as on the engine-only endpoint).
		local bool
		// wards says the wards subgraph is asked.
		wards bool
		// code, when set, is the code of the response's first error.
		code string
	}{
		{name: "issue 6's query", local: true, body: map[string]any{"query": `query($id: ID!) { patient(id: $id) {
			id name { family given } gender birthDate
			observations(category: ["vital-signs"], first: 10) { nodes { id code { coding { system code } } effective valueQuantity { value unit } } }
			devices { id serialNumber manufacturer } } }`, "variables": map[string]any{"id": "p1"}}},
		{name: "aliases, fragments, __typename", local: true, body: map[string]any{"query": `{ __typename a: patient(id: "p1") { ...p } b: observation(id: "ob") { __typename ... on Observation { status subject { ...p } device { id currentPatient { id } readings(first: 2) { id } } } } }
			fragment p on Patient { __typename id gender meta { versionId } lastN(max: 2) { id code { coding { code } } } }`}},
		{name: "several operations, one named", local: true, body: map[string]any{
			"query":         `query A { patient(id: "p1") { id } } query B { patients(first: 2) { nodes { id } pageInfo { hasNextPage endCursor } totalCount } }`,
			"operationName": "B"}},
		{name: "denied patient inside a list", token: user, local: true, body: map[string]any{
			"query": `{ patients { nodes { id observations { nodes { id } } } } }`}},
		{name: "denied patient by id", token: user, local: true, body: map[string]any{
			"query": `{ patient(id: "p2") { id } observation(id: "q1") { id } }`}},
		{name: "no scope for a field", token: patientsOnly, local: true, body: map[string]any{
			"query": `{ patient(id: "p1") { id observations { nodes { id } } devices { id } } }`}},
		{name: "not found", local: true, body: map[string]any{"query": `{ patient(id: "nobody") { id } device(id: "d2") { id patientReference { reference } } }`}},
		{name: "bad argument", local: true, code: "BAD_USER_INPUT", body: map[string]any{"query": `{ patients(first: 1000) { nodes { id } } }`}},
		{name: "bad variables: the engine says so", code: "GRAPHQL_VALIDATION_FAILED", body: map[string]any{
			"query": `query($id: ID!) { patient(id: $id) { id } }`, "variables": map[string]any{"id": []int{1}}}},
		{name: "invalid operation", code: "GRAPHQL_VALIDATION_FAILED", body: map[string]any{"query": `{ patient(id: "p1") { nosuchfield } }`}},
		{name: "subgraph-only fields are not the gateway's", body: map[string]any{
			"query": `{ _entities(representations: [{__typename: "Patient", id: "p1"}]) { ... on Patient { id } } }`}},
		{name: "a remote field", wards: true, body: map[string]any{"query": `{ patient(id: "p1") { id gender ward bed } }`}},
		{name: "a remote root field", wards: true, body: map[string]any{"query": `{ wardCensus(ward: "ICU") { id birthDate } }`}},
	}
	post := func(t *testing.T, url, token string, body map[string]any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token == "" {
			token = e.sys
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		// Root fields resolve concurrently: their errors come in any order.
		if errs, ok := v["errors"].([]any); ok {
			slices.SortFunc(errs, func(a, b any) int {
				x, _ := json.Marshal(a)
				y, _ := json.Marshal(b)
				return bytes.Compare(x, y)
			})
		}
		return resp.StatusCode, v
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local0, engine0 := e.h.Served()
			asked0 := len(w.requests())
			fastStatus, fast := post(t, e.gql.URL+"/t/"+tenant+"/graphql", tt.token, tt.body)
			local1, engine1 := e.h.Served()
			wantLocal, wantEngine := int64(0), int64(1)
			if tt.local {
				wantLocal, wantEngine = 1, 0
			}
			if local1-local0 != wantLocal || engine1-engine0 != wantEngine {
				t.Errorf("the gateway served it %d times on the fast path and %d on the engine, want %d and %d",
					local1-local0, engine1-engine0, wantLocal, wantEngine)
			}
			if asked := len(w.requests()) > asked0; asked != tt.wards {
				t.Errorf("the wards subgraph asked: %v, want %v", asked, tt.wards)
			}
			engineStatus, viaEngine := post(t, engine.URL, tt.token, tt.body)
			if fastStatus != engineStatus {
				t.Errorf("HTTP status %d, the engine's %d", fastStatus, engineStatus)
			}
			if d := cmp.Diff(viaEngine, fast); d != "" {
				t.Errorf("response (-engine +gateway):\n%s", d)
			}
			if fast["data"] == nil && fast["errors"] == nil {
				t.Errorf("neither data nor errors: %v", fast)
			}
			if tt.code != "" {
				errs, _ := fast["errors"].([]any)
				first, _ := append(errs, nil)[0].(map[string]any)
				ext, _ := first["extensions"].(map[string]any)
				if ext["code"] != tt.code {
					t.Errorf("errors %v, want the first with code %s", errs, tt.code)
				}
			}
		})
	}
}

// With the embedded supergraph (our subgraph alone) the query of issue 6
// takes the fast path.
func TestFastPathEmbeddedSupergraph(t *testing.T) {
	e := newEnv(t)
	e.put(t, patientJSON("p1", "Doe", "Jane", "female", "1980-01-02"))
	var got struct{ Patient struct{ ID, Gender string } }
	e.gateway(t, e.sys, `{ patient(id: "p1") { id gender } }`, nil).decode(t, &got)
	if got.Patient.ID != "p1" || got.Patient.Gender != "female" {
		t.Errorf("patient = %+v", got.Patient)
	}
	if local, engine := e.h.Served(); local != 1 || engine != 0 {
		t.Errorf("served %d on the fast path and %d on the engine, want 1 and 0", local, engine)
	}
}

// failingAuthorizer cannot make any Policy (server/authz unavailable).
type failingAuthorizer struct{}

func (failingAuthorizer) Policy(context.Context, string, *smart.Grant) (graph.Policy, error) {
	return nil, errors.New("the decision cache is unavailable")
}

// A request whose Policy cannot be made is answered the same way on both
// paths: an internal error with a correlation id, the data null.
func TestFastPathPolicyFailure(t *testing.T) {
	h, err := graph.New(graph.Config{Store: newMemStore(), Registry: search.NewRegistry(), Auth: graph.Open{},
		Authorizer: failingAuthorizer{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	type answer struct {
		Status int
		Data   json.RawMessage
		Codes  []string
	}
	serve := func(f func(http.ResponseWriter, *http.Request, string)) answer {
		req := httptest.NewRequest(http.MethodPost, "/t/"+tenant+"/graphql", strings.NewReader(`{"query":"{ patient(id: \"bp1\") { id } }"}`))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		f(w, req, tenant)
		var r gqlResponse
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			t.Fatalf("not a GraphQL response: %s", w.Body)
		}
		return answer{w.Code, r.Data, r.codes()}
	}
	gateway, engine := serve(h.ServeGateway), serve(h.ServeEngine)
	if d := cmp.Diff(engine, gateway); d != "" {
		t.Errorf("(-engine +gateway):\n%s", d)
	}
	if d := cmp.Diff([]string{"INTERNAL_SERVER_ERROR"}, gateway.Codes); d != "" {
		t.Errorf("codes (-want +got):\n%s", d)
	}
}
