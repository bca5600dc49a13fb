package conformance_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/conformance"
	"github.com/pulsewire/pulsewire/conformance/validate"
)

func testOptions() conformance.Options {
	return conformance.Options{
		BaseURL:  "https://fhir.example.org/t/acme/fhir",
		Software: "Pulsewire",
		Version:  "0.1.0",
		Date:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Resources: []conformance.ResourceSpec{
			{
				Type: "Patient",
				SearchParams: []conformance.SearchParam{
					{Name: "_id", Type: "token", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"},
					{Name: "family", Type: "string", Definition: "http://hl7.org/fhir/SearchParameter/individual-family",
						Documentation: "A portion of the family name of the patient"},
				},
				RevIncludes: []string{"Observation:subject"},
			},
			{
				Type: "Observation",
				SearchParams: []conformance.SearchParam{
					{Name: "subject", Type: "reference", Definition: "http://hl7.org/fhir/SearchParameter/Observation-subject"},
					{Name: "date", Type: "date", Definition: "http://hl7.org/fhir/SearchParameter/clinical-date"},
					{Name: "value-quantity", Type: "quantity"},
				},
				Includes: []string{"Observation:subject", "Observation:subject:Patient"},
			},
		},
	}
}

// TestCapabilityStatementIsValidR4 checks the statement passes our own
// validator unchanged.
func TestCapabilityStatementIsValidR4(t *testing.T) {
	b, err := conformance.CapabilityStatement(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	typ, _, canonical, err := v.Validate(b)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if typ != "CapabilityStatement" {
		t.Errorf("type = %q, want CapabilityStatement", typ)
	}
	if d := diffJSON(t, b, canonical); d != "" {
		t.Errorf("validation changed the statement (-ours +canonical):\n%s", d)
	}
}

func TestCapabilityStatementContent(t *testing.T) {
	b, err := conformance.CapabilityStatement(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var cs struct {
		Status, Kind, FHIRVersion, Date string
		Format                          []string
		Software                        struct{ Name, Version string }
		Implementation                  struct{ URL string }
		Rest                            []struct {
			Mode        string
			Interaction []struct{ Code string }
			Resource    []struct {
				Type              string
				Interaction       []struct{ Code string }
				Versioning        string
				ReadHistory       bool
				UpdateCreate      bool
				ConditionalCreate bool
				ConditionalUpdate bool
				ConditionalDelete string
				ReferencePolicy   []string
				SearchInclude     []string
				SearchRevInclude  []string
				SearchParam       []struct{ Name, Type, Definition, Documentation string }
				Operation         []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	top := []string{cs.Status, cs.Kind, cs.FHIRVersion, cs.Date, cs.Software.Name, cs.Software.Version, cs.Implementation.URL}
	wantTop := []string{"active", "instance", "4.0.1", "2026-03-01T12:00:00Z", "Pulsewire", "0.1.0", "https://fhir.example.org/t/acme/fhir"}
	if d := cmp.Diff(wantTop, top); d != "" {
		t.Errorf("top-level elements (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"application/fhir+json", "json"}, cs.Format); d != "" {
		t.Errorf("format (-want +got):\n%s", d)
	}
	if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		t.Fatalf("rest = %+v, want one server entry", cs.Rest)
	}
	rest := cs.Rest[0]
	codes := func(cs []struct{ Code string }) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Code)
		}
		return out
	}
	if d := cmp.Diff([]string{"transaction", "batch", "history-system"}, codes(rest.Interaction)); d != "" {
		t.Errorf("system interactions (-want +got):\n%s", d)
	}
	var types []string
	for _, r := range rest.Resource {
		types = append(types, r.Type)
	}
	if d := cmp.Diff([]string{"Observation", "Patient"}, types); d != "" {
		t.Fatalf("resource types, sorted (-want +got):\n%s", d)
	}
	for _, r := range rest.Resource {
		t.Run(r.Type, func(t *testing.T) {
			want := []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
			if d := cmp.Diff(want, codes(r.Interaction)); d != "" {
				t.Errorf("interactions (-want +got):\n%s", d)
			}
			policy := []any{r.Versioning, r.ReadHistory, r.UpdateCreate, r.ConditionalCreate, r.ConditionalUpdate, r.ConditionalDelete, r.ReferencePolicy}
			wantPolicy := []any{"versioned-update", true, true, true, true, "not-supported", []string{"literal", "local"}}
			if d := cmp.Diff(wantPolicy, policy); d != "" {
				t.Errorf("versioning, readHistory, updateCreate, conditional*, referencePolicy (-want +got):\n%s", d)
			}
			var spec conformance.ResourceSpec
			for _, s := range testOptions().Resources {
				if s.Type == r.Type {
					spec = s
				}
			}
			var params []conformance.SearchParam
			for _, p := range r.SearchParam {
				params = append(params, conformance.SearchParam{Name: p.Name, Type: p.Type, Definition: p.Definition, Documentation: p.Documentation})
			}
			if d := cmp.Diff(spec.SearchParams, params); d != "" {
				t.Errorf("searchParam (-want +got):\n%s", d)
			}
			if d := cmp.Diff(spec.Includes, r.SearchInclude); d != "" {
				t.Errorf("searchInclude (-want +got):\n%s", d)
			}
			if d := cmp.Diff(spec.RevIncludes, r.SearchRevInclude); d != "" {
				t.Errorf("searchRevInclude (-want +got):\n%s", d)
			}
			var wantOps []struct{ Name, Definition string }
			if r.Type == "Observation" {
				wantOps = []struct{ Name, Definition string }{{"lastn", "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}}
			}
			if d := cmp.Diff(wantOps, r.Operation); d != "" {
				t.Errorf("operation (-want +got):\n%s", d)
			}
		})
	}
}

func TestCapabilityStatementRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*conformance.Options)
		wantErr string
	}{
		{"no base URL", func(o *conformance.Options) { o.BaseURL = "" }, "BaseURL is required"},
		{"relative base URL", func(o *conformance.Options) { o.BaseURL = "/t/acme/fhir" }, "absolute URL"},
		{"no date", func(o *conformance.Options) { o.Date = time.Time{} }, "Date is required"},
		{"duplicate type", func(o *conformance.Options) {
			o.Resources = append(o.Resources, conformance.ResourceSpec{Type: "Patient"})
		}, "listed twice"},
		{"unknown param type", func(o *conformance.Options) {
			o.Resources[0].SearchParams = []conformance.SearchParam{{Name: "x", Type: "fuzzy"}}
		}, `unknown type "fuzzy"`},
		{"param without name", func(o *conformance.Options) {
			o.Resources[0].SearchParams = []conformance.SearchParam{{Type: "token"}}
		}, "has no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.change(&o)
			_, err := conformance.CapabilityStatement(o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCapabilityStatementMinimal checks the statement without software or
// resources is still valid R4.
func TestCapabilityStatementMinimal(t *testing.T) {
	b, err := conformance.CapabilityStatement(conformance.Options{
		BaseURL: "http://localhost:8080/t/acme/fhir",
		Date:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)),
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v.Validate(b); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !strings.Contains(string(b), `"date":"2026-01-02T02:04:05Z"`) {
		t.Errorf("date not written in UTC: %s", b)
	}
	if strings.Contains(string(b), `"software"`) {
		t.Errorf("software written without a name: %s", b)
	}
}

func diffJSON(t *testing.T, a, b []byte) string {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return cmp.Diff(va, vb)
}

// TestCapabilityStatementSMARTSecurity: with OAuth URIs the statement
// declares the SMART-on-FHIR service and the oauth-uris extension, and is
// still valid R4.
func TestCapabilityStatementSMARTSecurity(t *testing.T) {
	o := testOptions()
	auth := "https://fhir.example.org/t/acme/auth/"
	o.OAuth = &conformance.OAuthURIs{Authorize: auth + "authorize", Token: auth + "token", Revoke: auth + "revoke", Introspect: auth + "introspect"}
	b, err := conformance.CapabilityStatement(o)
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v.Validate(b); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var cs struct {
		Rest []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
				Service []struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"service"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	sec := cs.Rest[0].Security
	if len(sec.Service) != 1 || sec.Service[0].Coding[0].Code != "SMART-on-FHIR" ||
		sec.Service[0].Coding[0].System != "http://terminology.hl7.org/CodeSystem/restful-security-service" {
		t.Errorf("security.service = %+v", sec.Service)
	}
	got := map[string]string{}
	for _, e := range sec.Extension {
		if e.URL != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			t.Errorf("unexpected security extension %s", e.URL)
		}
		for _, x := range e.Extension {
			got[x.URL] = x.ValueURI
		}
	}
	want := map[string]string{"authorize": auth + "authorize", "token": auth + "token", "revoke": auth + "revoke", "introspect": auth + "introspect"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("oauth-uris (-want +got):\n%s", diff)
	}

	o.OAuth = &conformance.OAuthURIs{Authorize: auth + "authorize"}
	if _, err := conformance.CapabilityStatement(o); err == nil {
		t.Error("OAuth without a token URL was accepted")
	}
	plain, err := conformance.CapabilityStatement(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "security") {
		t.Error("a statement without OAuth declares security")
	}
}
