package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/kv"
	"github.com/pulsewire/pulsewire/server/kv/memkv"
)

const (
	tenant     = "acme"
	loinc      = "http://loinc.org"
	obsCat     = "http://terminology.hl7.org/CodeSystem/observation-category"
	purposeSys = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
)

// observation builds an Observation of patient (a Device subject when
// patient starts with "Device/").
func observation(id, patient, category, code, effective string) *fhir.Resource {
	subject := "Patient/" + patient
	if strings.HasPrefix(patient, "Device/") {
		subject = patient
	}
	eff := ""
	if effective != "" {
		eff = fmt.Sprintf(`,"effectiveDateTime":%q`, effective)
	}
	body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",
		"category":[{"coding":[{"system":%q,"code":%q}]}],
		"code":{"coding":[{"system":%q,"code":%q}]},
		"subject":{"reference":%q}%s}`, id, obsCat, category, loinc, code, subject, eff)
	return &fhir.Resource{Type: "Observation", ID: id, VersionID: 1, Body: []byte(body)}
}

func patientRes(id string) *fhir.Resource {
	return &fhir.Resource{Type: "Patient", ID: id, VersionID: 1,
		Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q}`, id)}
}

func organization(id string) *fhir.Resource {
	return &fhir.Resource{Type: "Organization", ID: id, VersionID: 1,
		Body: fmt.Appendf(nil, `{"resourceType":"Organization","id":%q,"name":"Clinic"}`, id)}
}

// Observations used across the tests: patient p1 has a vital sign (2024),
// a glucose lab (2019), an HIV test (2023) and one without a date; p2 a
// vital sign.
var (
	obsVital   = observation("vital", "p1", "vital-signs", "8867-4", "2024-03-01T10:00:00Z")
	obsGlucose = observation("glucose", "p1", "laboratory", "2345-7", "2019-06-01")
	obsHIV     = observation("hiv", "p1", "laboratory", "75622-1", "2023-01-01")
	obsUndated = observation("undated", "p1", "vital-signs", "8310-5", "")
	obsP2      = observation("p2vital", "p2", "vital-signs", "8867-4", "2024-03-01")
	obsDevice  = observation("devobs", "Device/d1", "vital-signs", "8867-4", "2024-03-01")
)

// consent builds a Consent of patient with the given provision JSON ("" for
// none) and extra top-level members.
func consent(id, patient, provision string, extra ...string) *fhir.Resource {
	body := fmt.Sprintf(`{"resourceType":"Consent","id":%q,"status":"active",
		"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
		"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
		"patient":{"reference":"Patient/%s"}`, id, patient)
	if provision != "" {
		body += `,"provision":` + provision
	}
	for _, e := range extra {
		body += "," + e
	}
	body += "}"
	return &fhir.Resource{Type: "Consent", ID: id, VersionID: 1, Body: []byte(body)}
}

// memConsents is a ConsentSource over a map, counting loads.
type memConsents struct {
	mu    sync.Mutex
	by    map[string][]*fhir.Resource // patient -> consents
	loads atomic.Int64
	fail  error
}

func newMemConsents(cs ...*fhir.Resource) *memConsents {
	m := &memConsents{by: map[string][]*fhir.Resource{}}
	for _, c := range cs {
		m.add(c)
	}
	return m
}

func (m *memConsents) add(c *fhir.Resource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var doc jsonConsent
	if err := json.Unmarshal(c.Body, &doc); err != nil {
		panic(err)
	}
	p := strings.TrimPrefix(doc.Patient.Reference, "Patient/")
	m.by[p] = append(m.by[p], c)
}

func (m *memConsents) set(patient string, cs ...*fhir.Resource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.by[patient] = cs
}

func (m *memConsents) ActiveConsents(_ context.Context, _ string, patient string) ([]*fhir.Resource, error) {
	m.loads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	return append([]*fhir.Resource(nil), m.by[patient]...), nil
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testNow is when the tests' decisions are made.
var testNow = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

// newAuthz returns an Authorizer on src with store (memkv when nil),
// closed when the test ends.
func newAuthz(t testing.TB, src ConsentSource, pol Policy, store kv.Store, mod ...func(*Config)) *Authorizer {
	t.Helper()
	if store == nil {
		store = memkv.New()
	}
	cfg := Config{Consents: src, Policies: StaticPolicies{Default: pol}, KV: store, Now: func() time.Time { return testNow }}
	for _, m := range mod {
		m(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}
