package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pulsewire/pulsewire/server/servertest"
)

// TestGraphQLThroughTheServer: the server serves the GraphQL gateway per
// tenant with the same tokens as REST; a request without one is refused;
// each request leaves an AuditEvent (operation graphql).
func TestGraphQLThroughTheServer(t *testing.T) {
	srv := servertest.Start(t, servertest.WithAuth())
	admin := srv.BackendToken(t, "acme", "system/*.cruds")
	put := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, srv.FHIRBase("acme")+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("PUT %s: %s", path, resp.Status)
		}
	}
	put("/Patient/gq-1", `{"resourceType":"Patient","id":"gq-1","name":[{"family":"Synthetic","given":["Gale"]}],"gender":"female"}`)
	put("/Observation/gq-o1", `{"resourceType":"Observation","id":"gq-o1","status":"final",`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/gq-1"},`+
		`"effectiveDateTime":"2026-01-02T03:04:05Z","valueQuantity":{"value":61,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)

	query := func(token string) (int, map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": `{ patient(id: "gq-1") { id gender observations(first: 5) { nodes { id valueQuantity { value } } } } }`})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/t/acme/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("GraphQL response %s: %v", b, err)
		}
		return resp.StatusCode, out
	}
	reader := srv.BackendToken(t, "acme", "system/*.rs")
	status, out := query(reader)
	got, _ := json.Marshal(out["data"])
	want := `{"patient":{"gender":"female","id":"gq-1","observations":{"nodes":[{"id":"gq-o1","valueQuantity":{"value":61}}]}}}`
	if status != http.StatusOK || string(got) != want {
		t.Fatalf("GraphQL with a token: %d %s, want 200 %s (errors: %v)", status, got, want, out["errors"])
	}
	if status, out := query(""); status != http.StatusUnauthorized || out["data"] != nil {
		t.Errorf("GraphQL without a token: %d, data %v; want 401 and no data", status, out["data"])
	}

	srv.FlushAudit(t)
	req, _ := http.NewRequest(http.MethodGet, srv.FHIRBase("acme")+"/AuditEvent?_count=1000", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := strings.Count(string(b), `"graphql"`); n < 2 {
		t.Errorf("%d AuditEvents name the graphql operation, want one per request (2)", n)
	}
}
