package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/fixtures/sample"
	"github.com/pulsewire/pulsewire/server/servertest"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestHealthReadyMetrics(t *testing.T) {
	s := servertest.Start(t)
	if code, _ := get(t, s.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, s.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	get(t, s.FHIRBase("acme")+"/Patient/some-id-123")
	code, body := get(t, s.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	m := string(body)
	if !strings.Contains(m, `pulsewire_http_requests_total{code="404",method="GET",route="/t/:tenant/fhir/:type/:id"}`) {
		t.Errorf("metrics lack the request counter by route pattern:\n%s", grep(m, "pulsewire_http"))
	}
	if strings.Contains(m, "some-id-123") {
		t.Error("metrics carry a resource id")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetadataListsSupportedTypes(t *testing.T) {
	s := servertest.Start(t)
	code, body := get(t, s.FHIRBase("acme")+"/metadata")
	if code != http.StatusOK {
		t.Fatalf("/metadata: %d %s", code, body)
	}
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Rest         []struct {
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || len(cs.Rest) != 1 {
		t.Fatalf("not an R4 CapabilityStatement: %s", body[:min(len(body), 300)])
	}
	params := map[string]bool{}
	for _, r := range cs.Rest[0].Resource {
		for _, p := range r.SearchParam {
			params[r.Type+"."+p.Name] = true
		}
	}
	for _, want := range []string{"Patient.identifier", "Device.patient", "Observation.code", "Observation.date",
		"Observation.combo-code", "Encounter.patient", "Consent.patient", "AuditEvent.date"} {
		if !params[want] {
			t.Errorf("CapabilityStatement lacks search parameter %s", want)
		}
	}
}

// TestSampleDataAndTenantIsolation loads the sample data set into one tenant
// through the API and checks it is searchable there and invisible in the other.
func TestSampleDataAndTenantIsolation(t *testing.T) {
	for _, b := range servertest.Backends {
		t.Run(b.Name, func(t *testing.T) { testSampleDataAndTenantIsolation(t, b.Option(t)) })
	}
}

func testSampleDataAndTenantIsolation(t *testing.T, backend servertest.Option) {
	var logs syncBuffer
	s := servertest.Start(t, backend, servertest.WithLogger(&logs))
	ctx := context.Background()
	opts := sample.Options{Tenant: "acme", Patients: 2, Hours: 2}
	n, err := sample.Load(ctx, s.FHIRBase("acme"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(sample.Generate(opts)); n != want {
		t.Fatalf("loaded %d, want %d", n, want)
	}
	// Loading again is idempotent (PUT with fixed ids): still two patients.
	if _, err := sample.Load(ctx, s.FHIRBase("acme"), opts); err != nil {
		t.Fatal(err)
	}
	total := func(url string) int {
		t.Helper()
		code, body := get(t, url)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, code, body)
		}
		var b struct {
			Total *int `json:"total"`
		}
		json.Unmarshal(body, &b)
		if b.Total == nil {
			t.Fatalf("GET %s: no total", url)
		}
		return *b.Total
	}
	if got := total(s.FHIRBase("acme") + "/Patient?_summary=count"); got != 2 {
		t.Errorf("acme patients: %d, want 2", got)
	}
	if got := total(s.FHIRBase("acme") + "/Observation?patient=acme-pat-001&code=http://loinc.org|8867-4&_summary=count"); got != 8 {
		t.Errorf("acme heart rates of patient 1 over 2 h: %d, want 8", got)
	}
	if got := total(s.FHIRBase("globex") + "/Patient?_summary=count"); got != 0 {
		t.Errorf("globex sees %d of acme's patients", got)
	}
	if code, _ := get(t, s.FHIRBase("globex")+"/Patient/acme-pat-001"); code != http.StatusNotFound {
		t.Errorf("globex read of acme's patient: %d, want 404", code)
	}
	if code, _ := get(t, s.FHIRBase("nosuch")+"/Patient"); code != http.StatusNotFound {
		t.Errorf("unknown tenant: %d, want 404", code)
	}
	// No patient data in the logs: the sample family names and MRNs never appear.
	time.Sleep(10 * time.Millisecond)
	for _, phi := range []string{"Testperson", "MRN-acme", "acme-pat-001"} {
		if strings.Contains(logs.String(), phi) {
			t.Errorf("server log contains %q", phi)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	s := servertest.Start(t, servertest.WithMaxBody(1024))
	body := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 2048) + `"}]}`
	resp, err := http.Post(s.FHIRBase("acme")+"/Patient", "application/fhir+json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "OperationOutcome") {
		t.Errorf("oversized body: %d %s, want 413 OperationOutcome", resp.StatusCode, b)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
