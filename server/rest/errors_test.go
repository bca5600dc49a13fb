package rest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// TestErrorOutcomes checks each class of bad input gets its status and an
// OperationOutcome with one error issue of the right code, and that nothing
// is written.
func TestErrorOutcomes(t *testing.T) {
	s := newServer(t, func(o *serverOpts) { o.maxBody = 64 << 10 })
	base := s.base("acme")
	existing := create(t, base, "Patient", patientJSON("e"))
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 70<<10) + `"}]}`

	tests := []struct {
		name     string
		method   string
		url      string
		body     string
		headers  []string
		status   int
		code     string
		wantExpr string // an expected expression, "" for none required
	}{
		{"malformed JSON", "POST", "/Patient", `{"resourceType":"Patient",`, nil, 400, "structure", ""},
		{"not an object", "POST", "/Patient", `[1,2]`, nil, 400, "structure", ""},
		{"wrong resourceType for URL", "POST", "/Patient", observationJSON("Patient/x", "8867-4", "2024-01-01"), nil, 400, "invalid", "resourceType"},
		{"update id mismatch", "PUT", "/Patient/" + existing, strings.Replace(patientJSON("e"), `"Patient",`, `"Patient","id":"other",`, 1), nil, 400, "invalid", "Patient.id"},
		{"update without id", "PUT", "/Patient/" + existing, patientJSON("e"), nil, 400, "invalid", "Patient.id"},
		{"invalid value", "POST", "/Patient", `{"resourceType":"Patient","birthDate":"not-a-date"}`, nil, 422, "", ""},
		{"unknown element", "POST", "/Patient", `{"resourceType":"Patient","colour":"blue"}`, nil, 422, "", ""},
		{"missing required element", "POST", "/Observation", `{"resourceType":"Observation","status":"final"}`, nil, 422, "", ""},
		{"unknown resourceType in body", "POST", "/Patient", `{"resourceType":"Spaceship"}`, nil, 400, "not-supported", "resourceType"},
		{"unknown type in URL", "GET", "/Spaceship/1", "", nil, 404, "not-supported", ""},
		{"unsupported R4 type in URL", "POST", "/Medication", `{"resourceType":"Medication"}`, nil, 404, "not-supported", ""},
		{"oversized body", "POST", "/Patient", big, nil, 413, "too-long", ""},
		{"bad search syntax", "GET", "/Patient?birthdate=notadate", "", nil, 400, "", ""},
		{"bad _count", "GET", "/Patient?_count=abc", "", nil, 400, "", ""},
		{"strict unknown parameter", "GET", "/Patient?colour=blue", "", []string{"Prefer", "handling=strict"}, 400, "", ""},
		{"bad If-Match", "PUT", "/Patient/" + existing, strings.Replace(patientJSON("e"), `"Patient",`, `"Patient","id":"`+existing+`",`, 1), []string{"If-Match", "banana"}, 400, "invalid", ""},
		{"unknown tenant", "GET", "", "", nil, 404, "not-found", ""}, // URL set below
		{"unknown route", "GET", "/Patient/" + existing + "/nothing/here", "", nil, 404, "not-found", ""},
		{"method not allowed", "PATCH", "/Patient/" + existing, `{}`, nil, 405, "not-supported", ""},
		{"unsupported content type", "POST", "/Patient", `<Patient/>`, []string{"Content-Type", "application/fhir+xml"}, 415, "not-supported", ""},
		{"empty body", "POST", "/Patient", " ", nil, 400, "invalid", ""},
		{"not a Bundle at base", "POST", "", patientJSON("b"), nil, 400, "invalid", "resourceType"},
		{"Bundle of wrong type", "POST", "", `{"resourceType":"Bundle","type":"collection"}`, nil, 400, "invalid", "Bundle.type"},
		{"Bundle entry without request", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientJSON("b") + `}]}`, nil, 400, "invalid", "Bundle.entry[0].request"},
		{"conditional update without condition", "PUT", "/Patient", patientJSON("c"), nil, 400, "invalid", ""},
		{"bad $lastn max", "GET", "/Observation/$lastn?max=0", "", nil, 400, "invalid", "max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := base + tt.url
			if tt.name == "unknown tenant" {
				url = s.URL + "/t/nobody/fhir/Patient"
			}
			r := do(t, tt.method, url, tt.body, tt.headers...)
			mustStatus(t, r, tt.status)
			if ct := r.header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			oo := r.json(t)
			if str(oo, "resourceType") != "OperationOutcome" {
				t.Fatalf("body is not an OperationOutcome: %s", r.body)
			}
			issues, _ := oo["issue"].([]any)
			if len(issues) != 1 {
				t.Fatalf("issues = %d, want 1: %s", len(issues), r.body)
			}
			if sev := str(issues[0], "severity"); sev != "error" {
				t.Errorf("severity = %q", sev)
			}
			if tt.code != "" && str(issues[0], "code") != tt.code {
				t.Errorf("code = %q, want %q", str(issues[0], "code"), tt.code)
			}
			if str(issues[0], "diagnostics") == "" {
				t.Errorf("no diagnostics: %s", r.body)
			}
			if tt.wantExpr != "" {
				found := false
				for _, e := range path(issues[0], "expression").([]any) {
					found = found || e == tt.wantExpr
				}
				if !found {
					t.Errorf("expression %v lacks %q", path(issues[0], "expression"), tt.wantExpr)
				}
			}
		})
	}
	// Nothing was written by the failing requests: still one Patient.
	r := do(t, http.MethodGet, base+"/Patient?_summary=count", "")
	mustStatus(t, r, http.StatusOK)
	if got := path(r.json(t), "total"); got != float64(1) {
		t.Errorf("Patient total after bad requests = %v, want 1", got)
	}
}

// failingStore fails or panics on Read with an internal error whose text
// must not reach the client.
type failingStore struct {
	fhir.Store
	panic bool
}

func (f failingStore) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	if f.panic {
		panic("secret panic detail")
	}
	return nil, fhir.Errorf(fhir.KindInternal, "reading").Wrap(errors.New("secret database detail"))
}

func (f failingStore) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	return nil, errors.New("secret untyped detail")
}

func TestInternalErrorHidesText(t *testing.T) {
	for _, tt := range []struct {
		name   string
		panic  bool
		url    string
		secret string
	}{
		{"typed internal error", false, "/Patient/abc", "secret database detail"},
		{"untyped error", false, "/Patient?name=x", "secret untyped detail"},
		{"panic", true, "/Patient/abc", "secret panic detail"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(o *serverOpts) {
				o.wrap = func(st fhir.Store) fhir.Store { return failingStore{Store: st, panic: tt.panic} }
			})
			r := do(t, http.MethodGet, s.base("acme")+tt.url, "")
			mustStatus(t, r, http.StatusInternalServerError)
			id := r.header.Get("X-Request-Id")
			if id == "" || r.header.Get("X-Correlation-Id") != id {
				t.Fatalf("correlation headers: %v", r.header)
			}
			oo := r.json(t)
			if got, want := str(oo, "issue", 0, "code"), "exception"; got != want {
				t.Errorf("code = %q, want %q", got, want)
			}
			if got, want := str(oo, "issue", 0, "diagnostics"), "internal error; correlation id "+id; got != want {
				t.Errorf("diagnostics = %q, want %q", got, want)
			}
			if strings.Contains(string(r.body), "secret") {
				t.Errorf("internal text leaked: %s", r.body)
			}
			logs := s.logs.String()
			for _, want := range []string{id, tt.secret, `"tenant":"acme"`, `"status":500`, `"route":"/t/:tenant/fhir/`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q: %s", want, logs)
				}
			}
		})
	}
}

// busyStore fails reads as a database out of locks or connections does.
type busyStore struct{ fhir.Store }

func (busyStore) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	return nil, fhir.Errorf(fhir.KindUnavailable, "the database is busy; try again shortly").Wrap(errors.New("out of shared memory"))
}

// TestUnavailableIsRetryable: a store whose resources are exhausted for now
// makes a 503 with Retry-After and a transient issue, which clients and
// device gateways retry, not a 500.
func TestUnavailableIsRetryable(t *testing.T) {
	s := newServer(t, func(o *serverOpts) {
		o.wrap = func(st fhir.Store) fhir.Store { return busyStore{Store: st} }
	})
	r := do(t, http.MethodGet, s.base("acme")+"/Patient/abc", "")
	mustStatus(t, r, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	oo := r.json(t)
	if got := str(oo, "issue", 0, "code"); got != "transient" {
		t.Errorf("issue code = %q, want transient", got)
	}
	if got := str(oo, "issue", 0, "diagnostics"); !strings.Contains(got, "try again") {
		t.Errorf("diagnostics = %q, want the retry advice", got)
	}
}

func TestClientRequestIDIsEchoed(t *testing.T) {
	s := newServer(t)
	r := do(t, http.MethodGet, s.base("acme")+"/Patient/none", "", "X-Request-Id", "abc-123")
	mustStatus(t, r, http.StatusNotFound)
	if r.header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id = %q", r.header.Get("X-Request-Id"))
	}
}

// TestOversizedChunkedBody: the limit holds without a Content-Length.
func TestOversizedChunkedBody(t *testing.T) {
	s := newServer(t, func(o *serverOpts) { o.maxBody = 1 << 10 })
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 4<<10) + `"}]}`
	req, err := http.NewRequest(http.MethodPost, s.base("acme")+"/Patient", io.MultiReader(strings.NewReader(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"too-long"`) {
		t.Errorf("status %d body %s", res.StatusCode, b)
	}
}
