package rest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/rest"
	"github.com/pulsewire/pulsewire/server/search"
)

// memStore is a fhir.Store answering reads and searches from memory, so
// that the benchmarks below measure the API's own cost per request (routing,
// middleware, headers, the Bundle) without a database. Only the methods the
// benchmarked routes call are implemented.
type memStore struct {
	fhir.Store
	obs  *fhir.Resource
	page []*fhir.Resource
}

func newMemStore() *memStore {
	lu := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	body := func(id string) []byte {
		return []byte(`{"resourceType":"Observation","id":"` + id + `","meta":{"versionId":"1","lastUpdated":"2026-01-02T03:04:05.000006Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},` +
			`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],` +
			`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},{"system":"urn:iso:std:iso:11073:10101","code":"147842","display":"MDC_ECG_HEART_RATE"}],"text":"Heart rate"},` +
			`"subject":{"reference":"Patient/p1"},"device":{"reference":"Device/d1"},"effectiveDateTime":"2026-01-02T03:04:05Z","issued":"2026-01-02T03:04:05Z",` +
			`"valueQuantity":{"value":74,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},` +
			`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}]}`)
	}
	s := &memStore{obs: &fhir.Resource{Type: "Observation", ID: "o1", VersionID: 1, LastUpdated: lu, Body: body("o1")}}
	for i := range 10 {
		id := fmt.Sprintf("o%d", i+1)
		s.page = append(s.page, &fhir.Resource{Type: "Observation", ID: id, VersionID: 1, LastUpdated: lu, Body: body(id)})
	}
	return s
}

func (s *memStore) TenantExists(context.Context, string) (bool, error) { return true, nil }

func (s *memStore) Read(_ context.Context, _, typ, id string) (*fhir.Resource, error) {
	if typ != s.obs.Type || id != s.obs.ID {
		return nil, fhir.Errorf(fhir.KindNotFound, "not found")
	}
	return s.obs, nil
}

func (s *memStore) Search(_ context.Context, _ string, q *fhir.Query) (*fhir.SearchResult, error) {
	return &fhir.SearchResult{Total: -1, Resources: s.page[:min(q.Count, len(s.page))], HasMore: true}, nil
}

// nopAuditor records nothing: with AuditReads off (the benchmarks' and
// make bench's setting) reads record only denials.
type nopAuditor struct{}

func (nopAuditor) Record(context.Context, audit.Event) error { return nil }

// benchAPI is the API as the server wires it for make bench: an auditor
// (writes are audited), reads not audited, authorization off.
func benchAPI(b *testing.B) http.Handler {
	b.Helper()
	api := rest.New(rest.Config{
		Store:    newMemStore(),
		Registry: search.NewRegistry(),
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Auditor:  nopAuditor{},
	})
	e := echo.New()
	api.Register(e)
	return e
}

func benchGet(b *testing.B, h http.Handler, target string, wantLen int) {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.Len() < wantLen {
			b.Fatalf("status %d, %d bytes: %s", w.Code, w.Body.Len(), w.Body.Bytes())
		}
	}
}

// BenchmarkRead is GET [base]/Observation/[id] through the API on an
// in-memory store: what the API itself costs per read.
func BenchmarkRead(b *testing.B) {
	benchGet(b, benchAPI(b), "/t/bench/fhir/Observation/o1", 900)
}

// BenchmarkSearchLatest is the "latest vitals" search through the API on an
// in-memory store answering a page of 10.
func BenchmarkSearchLatest(b *testing.B) {
	benchGet(b, benchAPI(b), "/t/bench/fhir/Observation?subject=Patient/p1&code=http://loinc.org|8867-4&_sort=-date&_count=10", 9000)
}
