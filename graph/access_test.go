package graph_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Consent and scopes through GraphQL: the same decisions as REST, denied
// data absent, and the errors saying so with stable codes.

// accessData: patients p1, p2 (whose Consent denies everything) and p3,
// each with a vital sign and a lab result.
func accessData(t *testing.T, e *env) {
	t.Helper()
	for _, p := range [][]string{{"p1", "Doe"}, {"p2", "Roe"}, {"p3", "Poe"}} {
		e.put(t, patientJSON(p[0], p[1], "A", "female", "1980-01-01"))
		e.put(t, obsJSON(p[0]+"-vital", p[0], vitalCat, heartCd, "2024-03-01T10:00:00Z", "", 70))
		e.put(t, obsJSON(p[0]+"-lab", p[0], labCat, glucose, "2024-03-02T10:00:00Z", "", 5))
	}
	e.put(t, denyConsent("c2", "p2"))
}

type errWant struct {
	Code         string
	Path         []any
	ResourceType string
	Reason       string
	Withheld     float64
}

func errsOf(r *gqlResponse) []errWant {
	var out []errWant
	for _, e := range r.Errors {
		w := errWant{Path: e.Path}
		w.Code, _ = e.Extensions["code"].(string)
		w.ResourceType, _ = e.Extensions["resourceType"].(string)
		w.Reason, _ = e.Extensions["reason"].(string)
		w.Withheld, _ = e.Extensions["withheld"].(float64)
		out = append(out, w)
	}
	return out
}

func TestConsentAndScopes(t *testing.T) {
	e := newEnv(t)
	accessData(t, e)
	user := e.srv.UserToken(t, tenant, "Practitioner/dr1", "user/*.rs")
	launchP1 := e.srv.LaunchToken(t, tenant, "p1", "patient/*.rs")
	patientsOnly := e.srv.BackendToken(t, tenant, "system/Patient.rs")
	vitalsOnly := e.srv.BackendToken(t, tenant, "system/Patient.rs", "system/Observation.rs?category="+catSys+"|"+vitalCat)

	tests := []struct {
		name     string
		token    string
		query    string
		wantData string
		wantErrs []errWant
		// rest, when set, is the REST search whose matches must be the ids
		// the GraphQL list returns (restType?restQuery).
		restType, restQuery string
	}{
		{
			name:     "denied patient inside a list",
			token:    user,
			query:    `{ patients { nodes { id } } }`,
			wantData: `{"patients":{"nodes":[{"id":"p1"},{"id":"p3"}]}}`,
			wantErrs: []errWant{{Code: "CONSENT_DENIED", Path: []any{"patients"}, ResourceType: "Patient", Reason: "consent-deny", Withheld: 1}},
			restType: "Patient",
		},
		{
			name:     "denied patient by id",
			token:    user,
			query:    `{ patient(id: "p2") { id } }`,
			wantData: `{"patient":null}`,
			wantErrs: []errWant{{Code: "CONSENT_DENIED", Path: []any{"patient"}, ResourceType: "Patient", Reason: "consent-deny"}},
		},
		{
			name:  "denied patient's latest values, beside a permitted one",
			token: user,
			query: `{ p1: patientByIdentifier(identifier: "urn:mrn|mrn-p1") { lastN(max: 5) { id } }
				p2: patientByIdentifier(identifier: "urn:mrn|mrn-p2") { id } }`,
			wantData: `{"p1":{"lastN":[{"id":"p1-lab"},{"id":"p1-vital"}]},"p2":null}`,
			wantErrs: []errWant{{Code: "CONSENT_DENIED", Path: []any{"p2"}, ResourceType: "Patient", Reason: "consent-deny", Withheld: 1}},
		},
		{
			name:     "patient launch: another patient",
			token:    launchP1,
			query:    `{ patient(id: "p3") { id } }`,
			wantData: `{"patient":null}`,
			wantErrs: []errWant{{Code: "FORBIDDEN", Path: []any{"patient"}, ResourceType: "Patient", Reason: "patient-not-in-context"}},
		},
		{
			name:     "patient launch: the list is narrowed to the patient",
			token:    launchP1,
			query:    `{ patients { nodes { id } } }`,
			wantData: `{"patients":{"nodes":[{"id":"p1"}]}}`,
			restType: "Patient",
		},
		{
			name:     "no scope for observations",
			token:    patientsOnly,
			query:    `{ patient(id: "p1") { id observations { nodes { id } } } }`,
			wantData: `{"patient":{"id":"p1","observations":null}}`,
			wantErrs: []errWant{{Code: "FORBIDDEN", Path: []any{"patient", "observations"}, ResourceType: "Observation", Reason: "scope-missing"}},
		},
		{
			name:      "granular scope: vital signs only",
			token:     vitalsOnly,
			query:     `{ patient(id: "p1") { observations { nodes { id } } } }`,
			wantData:  `{"patient":{"observations":{"nodes":[{"id":"p1-vital"}]}}}`,
			restType:  "Observation",
			restQuery: queryString("subject", "Patient/p1", "_sort", "-date"),
		},
		{
			name:     "consent-denied patient's observations by search",
			token:    user,
			query:    `{ observation(id: "p2-vital") { id } p1: observation(id: "p1-vital") { id } }`,
			wantData: `{"observation":null,"p1":{"id":"p1-vital"}}`,
			wantErrs: []errWant{{Code: "CONSENT_DENIED", Path: []any{"observation"}, ResourceType: "Observation", Reason: "consent-deny"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, via := range []struct {
				name string
				call func(t testing.TB, token, q string, vars map[string]any) *gqlResponse
			}{{"subgraph", e.subgraph}, {"gateway", e.gateway}} {
				r := via.call(t, tt.token, tt.query, nil)
				if d := cmp.Diff(tt.wantData, compact(t, r.Data)); d != "" {
					t.Errorf("%s: data (-want +got):\n%s", via.name, d)
				}
				if d := cmp.Diff(tt.wantErrs, errsOf(r)); d != "" {
					t.Errorf("%s: errors (-want +got):\n%s", via.name, d)
				}
			}
			if tt.restType == "" {
				return
			}
			// The REST search with the same token returns the same resources.
			if d := cmp.Diff(e.restIDs(t, tt.token, tt.restType, tt.restQuery), idsIn(t, tt.wantData)); d != "" {
				t.Errorf("REST %s?%s (-rest +graphql):\n%s", tt.restType, tt.restQuery, d)
			}
		})
	}
}

// compact re-encodes JSON compactly (for comparing with literals).
func compact(t testing.TB, b json.RawMessage) string {
	t.Helper()
	if len(b) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// idsIn collects the values of every "id" member in a JSON document, in
// document order.
func idsIn(t testing.TB, doc string) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if k == "id" {
					if s, ok := v[k].(string); ok {
						ids = append(ids, s)
					}
					continue
				}
				walk(v[k])
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return ids
}
