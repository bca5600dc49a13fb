package graph_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/graph"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// One error presenter: every error reaches the client with a stable code,
// a message without internal text, and the HTTP status of a request
// refused before execution.

// failingStore fails every search of one resource type with an internal
// error whose text must never reach the client, and every search of
// Consents as a database out of locks or connections does.
type failingStore struct {
	graph.Store
	typ string
}

const secret = "connection to 10.1.2.3 refused"

func (f failingStore) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	switch q.Type {
	case f.typ:
		return nil, fhir.Errorf(fhir.KindInternal, "searching").Wrap(errors.New(secret))
	case "Consent":
		return nil, fhir.Errorf(fhir.KindUnavailable, "the database is busy; try again shortly").Wrap(errors.New(secret))
	}
	return f.Store.Search(ctx, tenant, q)
}

func TestErrors(t *testing.T) {
	e := newEnv(t, withStore(func(s graph.Store) graph.Store { return failingStore{Store: s, typ: "Encounter"} }))
	e.put(t, patientJSON("p1", "Doe", "Jane", "female", "1980-01-02"))
	e.put(t, patientJSON("twin", "Doe", "Jane", "female", "1980-01-02"))
	// twin shares p1's identifier
	e.put(t, strings.Replace(patientJSON("twin2", "Doe", "J", "female", "1980-01-02"), "mrn-twin2", "mrn-p1", 1))

	tests := []struct {
		name       string
		path       string // "" for the tenant's gateway
		token      string
		header     map[string]string
		query      string
		wantStatus int
		wantCodes  []string
	}{
		{name: "no token", token: "-", query: `{ patient(id: "p1") { id } }`, wantStatus: 401, wantCodes: []string{"UNAUTHENTICATED"}},
		{name: "bad token", token: "not-a-jwt", query: `{ patient(id: "p1") { id } }`, wantStatus: 401, wantCodes: []string{"UNAUTHENTICATED"}},
		{name: "unknown tenant", path: "/t/nobody/graphql", query: `{ patient(id: "p1") { id } }`, wantStatus: 404, wantCodes: []string{"NOT_FOUND"}},
		{name: "/graphql without a tenant", path: "/graphql", query: `{ patient(id: "p1") { id } }`, wantStatus: 400, wantCodes: []string{"TENANT_REQUIRED"}},
		{name: "/graphql with the tenant header", path: "/graphql", header: map[string]string{"X-Pulsewire-Tenant": tenant},
			query: `{ patient(id: "p1") { id } }`, wantStatus: 200},
		{name: "not found", query: `{ patient(id: "nobody") { id } }`, wantStatus: 200, wantCodes: []string{"NOT_FOUND"}},
		{name: "invalid id", query: `{ patient(id: "a/b") { id } }`, wantStatus: 200, wantCodes: []string{"BAD_USER_INPUT"}},
		{name: "unknown search parameter", query: `{ patients(fhirQuery: "colour=red") { nodes { id } } }`, wantStatus: 200, wantCodes: []string{"BAD_USER_INPUT"}},
		{name: "paging in fhirQuery", query: `{ patients(fhirQuery: "_count=5") { nodes { id } } }`, wantStatus: 200, wantCodes: []string{"BAD_USER_INPUT"}},
		{name: "bad date", query: `{ patient(id: "p1") { observations(date: {from: "yesterday"}) { nodes { id } } } }`, wantStatus: 200, wantCodes: []string{"BAD_USER_INPUT"}},
		{name: "bad cursor", query: `{ patients(after: "garbage") { nodes { id } } }`, wantStatus: 200, wantCodes: []string{"BAD_USER_INPUT"}},
		{name: "several matches", query: `{ patientByIdentifier(identifier: "urn:mrn|mrn-p1") { id } }`, wantStatus: 200, wantCodes: []string{"MULTIPLE_MATCHES"}},
		{name: "not in the schema", query: `{ patient(id: "p1") { colour } }`, wantStatus: 200, wantCodes: []string{"GRAPHQL_VALIDATION_FAILED"}},
		{name: "internal error", query: `{ patient(id: "p1") { id encounters { nodes { id } } } }`, wantStatus: 200, wantCodes: []string{"INTERNAL_SERVER_ERROR"}},
		{name: "database busy", query: `{ patient(id: "p1") { id consents { id } } }`, wantStatus: 200, wantCodes: []string{"SERVICE_UNAVAILABLE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/t/" + tenant + "/graphql"
			}
			token := e.sys
			switch tt.token {
			case "-":
				token = ""
			case "":
			default:
				token = tt.token
			}
			r := e.queryWith(t, path, token, tt.header, tt.query)
			if r.Status != tt.wantStatus {
				t.Errorf("HTTP %d, want %d", r.Status, tt.wantStatus)
			}
			if d := cmp.Diff(tt.wantCodes, r.codes()); d != "" {
				t.Errorf("codes (-want +got):\n%s\nerrors: %+v", d, r.Errors)
			}
			for _, er := range r.Errors {
				if strings.Contains(er.Message, secret) {
					t.Errorf("an internal error's cause reached the client: %q", er.Message)
				}
				if er.Extensions["code"] == "INTERNAL_SERVER_ERROR" {
					id, _ := er.Extensions["correlationId"].(string)
					if id == "" || !strings.Contains(er.Message, id) || !strings.Contains(e.logs.String(), id) {
						t.Errorf("internal error %q: correlation id %q not in the message and the log", er.Message, id)
					}
					if !strings.Contains(e.logs.String(), secret) {
						t.Error("the internal error's cause is not logged")
					}
				}
			}
		})
	}
}

func TestHTTPSemantics(t *testing.T) {
	e := newEnv(t)
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, err := http.Get(e.gql.URL + "/t/" + tenant + "/graphql?query=%7Bpatient(id:%22p1%22)%7Bid%7D%7D")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("GET: %d, Allow %q; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("401 names the scheme", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.gql.URL+"/t/"+tenant+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("no token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.gql.URL+"/t/"+tenant+"/graphql", strings.NewReader(`query=x`))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+e.sys)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("a form: %d, want 415", resp.StatusCode)
		}
	})
}

func TestOpen(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.open = true })
	e.put(t, patientJSON("p1", "Doe", "Jane", "female", "1980-01-02"))
	var got struct{ Patient struct{ ID string } }
	e.gateway(t, "", `{ patient(id: "p1") { id } }`, nil).decode(t, &got)
	if got.Patient.ID != "p1" {
		t.Errorf("patient %q, want p1 without a token", got.Patient.ID)
	}
}
