package search

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func tokE(param, sys, code, text string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamToken, System: sys, Code: code, Text: text}
}

func strE(param, normalized, original string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamString, String: normalized, Text: original}
}

func dateE(param string, lo, hi time.Time) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamDate, Lo: lo, Hi: hi}
}

func refE(param, typ, id string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamReference, RefType: typ, RefID: id}
}

func qtyE(param string, num, lo, hi float64, sys, code string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.ParamQuantity, Num: num, NumLo: lo, NumHi: hi, System: sys, Code: code}
}

var approxFloat = cmp.Comparer(func(a, b float64) bool {
	d := a - b
	return d < 1e-9 && d > -1e-9
})

const bpObservation = `{
  "resourceType": "Observation",
  "id": "bp-1",
  "meta": {"versionId": "1", "lastUpdated": "2024-03-10T14:31:00.000000Z"},
  "identifier": [{"system": "urn:pulsewire:reading", "value": "dev-42/1710081000"}],
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
  "code": {
    "coding": [
      {"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel with all children optional"},
      {"system": "urn:iso:std:iso:11073:10101", "code": "150020", "display": "MDC_PRESS_BLD_NONINV"}
    ],
    "text": "Blood pressure"
  },
  "subject": {"reference": "Patient/p1", "display": "Ada"},
  "encounter": {"reference": "Encounter/e1"},
  "effectiveDateTime": "2024-03-10T15:30:00+01:00",
  "performer": [{"reference": "https://ehr.example.org/fhir/Practitioner/dr-7/_history/2"}, {"reference": "#contained-1"}],
  "device": {"reference": "DeviceMetric/dm-1"},
  "basedOn": [{"reference": "ServiceRequest/sr1"}],
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
     "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}]},
     "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
  ]
}`

func TestExtract(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name string
		typ  string
		body string
		want []fhir.IndexEntry
	}{
		{"blood pressure observation with components", "Observation", bpObservation, []fhir.IndexEntry{
			refE("based-on", "ServiceRequest", "sr1"),
			tokE("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "vital signs"),
			tokE("code", "http://loinc.org", "85354-9", "blood pressure panel with all children optional"),
			tokE("code", "urn:iso:std:iso:11073:10101", "150020", "mdc_press_bld_noninv"),
			tokE("component-code", "http://loinc.org", "8480-6", "systolic blood pressure"),
			tokE("component-code", "http://loinc.org", "8462-4", "diastolic blood pressure"),
			dateE("date", utc(2024, 3, 10, 14, 30, 0, 0), utc(2024, 3, 10, 14, 30, 1, 0)),
			refE("device", "DeviceMetric", "dm-1"),
			refE("encounter", "Encounter", "e1"),
			tokE("identifier", "urn:pulsewire:reading", "dev-42/1710081000", ""),
			refE("performer", "Practitioner", "dr-7"),
			tokE("status", "", "final", ""),
			refE("subject", "Patient", "p1"),
		}},
		{"observation value quantity, period, device subject", "Observation", `{
		  "resourceType": "Observation", "status": "preliminary",
		  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
		  "subject": {"reference": "Device/d1"},
		  "effectivePeriod": {"start": "2024-03-10T10:00:00Z", "end": "2024-03-10"},
		  "valueQuantity": {"value": 72.50, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
		}`, []fhir.IndexEntry{
			tokE("code", "http://loinc.org", "8867-4", "heart rate"),
			dateE("date", utc(2024, 3, 10, 10, 0, 0, 0), utc(2024, 3, 11, 0, 0, 0, 0)),
			tokE("status", "", "preliminary", ""),
			refE("subject", "Device", "d1"),
			qtyE("value-quantity", 72.5, 72.495, 72.505, "http://unitsofmeasure.org", "/min"),
			qtyE("value-quantity", 72.5, 72.495, 72.505, "", "beats/minute"),
		}},
		{"observation timing: one range over its outer limits", "Observation", `{
		  "resourceType": "Observation", "status": "final",
		  "effectiveTiming": {"event": ["2024-03-12T08:00:00Z", "2024-03-10", "2024-03-11T20:00:00Z", 7],
		    "repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}
		}`, []fhir.IndexEntry{
			dateE("date", utc(2024, 3, 10, 0, 0, 0, 0), utc(2024, 3, 12, 8, 0, 1, 0)),
			tokE("status", "", "final", ""),
		}},
		{"observation value concept, open period, instant", "Observation", `{
		  "resourceType": "Observation", "status": "final",
		  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "365853002"}]},
		  "effectivePeriod": {"start": "2024"},
		  "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]}
		}`, []fhir.IndexEntry{
			tokE("code", "http://snomed.info/sct", "365853002", ""),
			dateE("date", utc(2024, 1, 1, 0, 0, 0, 0), fhir.MaxTime),
			tokE("status", "", "final", ""),
			tokE("value-concept", "http://snomed.info/sct", "260385009", "negative"),
		}},
		{"patient with names, identifiers, telecom, address", "Patient", `{
		  "resourceType": "Patient", "id": "p1", "active": true,
		  "identifier": [
		    {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical Record Number"},
		     "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"},
		    {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345", "type": {"text": "Medical record number"}},
		    {"system": "http://hl7.org/fhir/sid/us-ssn"}
		  ],
		  "name": [
		    {"use": "official", "family": "Lovelace", "given": ["Ada", "Augusta"], "prefix": ["Countess"], "suffix": ["FRS"]},
		    {"use": "maiden", "family": "Byron", "given": ["Ada"], "text": "Ada  Byron"},
		    {"use": "nickname", "given": ["Zoë"]}
		  ],
		  "telecom": [{"system": "phone", "value": "+44 20 7946 0000", "use": "home"}, {"system": "email"}],
		  "gender": "female",
		  "birthDate": "1815-12-10",
		  "address": [{"line": ["12 St James's Square"], "city": "London", "postalCode": "SW1Y 4JH"}],
		  "generalPractitioner": [{"reference": "Practitioner/dr-7"}, {"display": "no reference"}],
		  "managingOrganization": {"reference": "Organization/o1"}
		}`, []fhir.IndexEntry{
			tokE("active", "", "true", ""),
			strE("address-postalcode", "sw1y 4jh", "SW1Y 4JH"),
			dateE("birthdate", utc(1815, 12, 10, 0, 0, 0, 0), utc(1815, 12, 11, 0, 0, 0, 0)),
			strE("family", "lovelace", "Lovelace"),
			strE("family", "byron", "Byron"),
			tokE("gender", "", "female", ""),
			refE("general-practitioner", "Practitioner", "dr-7"),
			strE("given", "ada", "Ada"),
			strE("given", "augusta", "Augusta"),
			strE("given", "zoe", "Zoë"),
			tokE("identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345", "medical record number"),
			tokE("identifier", "http://hl7.org/fhir/sid/us-ssn", "", ""),
			strE("name", "lovelace", "Lovelace"),
			strE("name", "ada", "Ada"),
			strE("name", "augusta", "Augusta"),
			strE("name", "countess", "Countess"),
			strE("name", "frs", "FRS"),
			strE("name", "byron", "Byron"),
			strE("name", "ada byron", "Ada  Byron"),
			strE("name", "zoe", "Zoë"),
			refE("organization", "Organization", "o1"),
			tokE("telecom", "", "+44 20 7946 0000", ""),
		}},
		{"device with patient", "Device", `{
		  "resourceType": "Device", "id": "d1",
		  "identifier": [{"system": "urn:ieee:eui64", "value": "00-1B-63-84-45-E6-00-01"}],
		  "status": "active", "manufacturer": "Acme Médical", "modelNumber": "BP-200",
		  "type": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "528391", "display": "MDC_DEV_SYS_PT_BP"}]},
		  "patient": {"reference": "Patient/p1"},
		  "owner": {"reference": "Organization/o1"},
		  "location": {"reference": "Location/ward-3"}
		}`, []fhir.IndexEntry{
			tokE("identifier", "urn:ieee:eui64", "00-1B-63-84-45-E6-00-01", ""),
			refE("location", "Location", "ward-3"),
			strE("manufacturer", "acme medical", "Acme Médical"),
			strE("model", "bp-200", "BP-200"),
			refE("organization", "Organization", "o1"),
			refE("patient", "Patient", "p1"),
			tokE("status", "", "active", ""),
			tokE("type", "urn:iso:std:iso:11073:10101", "528391", "mdc_dev_sys_pt_bp"),
		}},
		{"device metric", "DeviceMetric", `{
		  "resourceType": "DeviceMetric",
		  "identifier": [{"system": "urn:x", "value": "m1"}],
		  "type": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "150020"}]},
		  "source": {"reference": "Device/d1"}, "parent": {"reference": "Device/d0"},
		  "operationalStatus": "on", "category": "measurement"
		}`, []fhir.IndexEntry{
			tokE("category", "", "measurement", ""),
			tokE("identifier", "urn:x", "m1", ""),
			refE("parent", "Device", "d0"),
			refE("source", "Device", "d1"),
			tokE("type", "urn:iso:std:iso:11073:10101", "150020", ""),
		}},
		{"encounter with period", "Encounter", `{
		  "resourceType": "Encounter", "status": "finished",
		  "identifier": [{"system": "urn:visits", "value": "v-9"}],
		  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"},
		  "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "183807002"}], "text": "Inpatient stay"}],
		  "subject": {"reference": "Group/g1"},
		  "period": {"start": "2024-03-01T08:00:00-05:00", "end": "2024-03-04T12:15:00-05:00"},
		  "location": [{"location": {"reference": "Location/ward-3"}}, {"location": {"reference": "Location/icu"}}],
		  "serviceProvider": {"reference": "Organization/o1"}
		}`, []fhir.IndexEntry{
			tokE("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP", "inpatient encounter"),
			dateE("date", utc(2024, 3, 1, 13, 0, 0, 0), utc(2024, 3, 4, 17, 15, 1, 0)),
			tokE("identifier", "urn:visits", "v-9", ""),
			refE("location", "Location", "ward-3"),
			refE("location", "Location", "icu"),
			refE("service-provider", "Organization", "o1"),
			tokE("status", "", "finished", ""),
			refE("subject", "Group", "g1"),
			tokE("type", "http://snomed.info/sct", "183807002", "inpatient stay"),
		}},
		{"location", "Location", `{
		  "resourceType": "Location", "status": "active", "name": "Ward 3", "alias": ["Cardiology"],
		  "identifier": [{"value": "W3"}],
		  "address": {"line": ["1 Hospital Rd"], "city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US"},
		  "managingOrganization": {"reference": "Organization/o1"}, "partOf": {"reference": "Location/bldg-1"}
		}`, []fhir.IndexEntry{
			strE("address", "1 hospital rd", "1 Hospital Rd"),
			strE("address", "springfield", "Springfield"),
			strE("address", "il", "IL"),
			strE("address", "us", "US"),
			strE("address", "62701", "62701"),
			tokE("identifier", "", "W3", ""),
			strE("name", "ward 3", "Ward 3"),
			strE("name", "cardiology", "Cardiology"),
			refE("organization", "Organization", "o1"),
			refE("partof", "Location", "bldg-1"),
			tokE("status", "", "active", ""),
		}},
		{"organization", "Organization", `{
		  "resourceType": "Organization", "active": false, "name": "Général Hospital",
		  "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
		  "partOf": {"reference": "http://other.example/fhir/Organization/parent"}
		}`, []fhir.IndexEntry{
			tokE("active", "", "false", ""),
			tokE("identifier", "http://hl7.org/fhir/sid/us-npi", "1234567893", ""),
			strE("name", "general hospital", "Général Hospital"),
			refE("partof", "Organization", "parent"),
		}},
		{"practitioner", "Practitioner", `{
		  "resourceType": "Practitioner", "active": true,
		  "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9941339108"}],
		  "name": [{"family": "Østergaard", "given": ["Søren"], "prefix": ["Dr."]}]
		}`, []fhir.IndexEntry{
			tokE("active", "", "true", ""),
			strE("family", "ostergaard", "Østergaard"),
			strE("given", "soren", "Søren"),
			tokE("identifier", "http://hl7.org/fhir/sid/us-npi", "9941339108", ""),
			strE("name", "ostergaard", "Østergaard"),
			strE("name", "soren", "Søren"),
			strE("name", "dr.", "Dr."),
		}},
		{"consent", "Consent", `{
		  "resourceType": "Consent", "status": "active",
		  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
		  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
		  "patient": {"reference": "Patient/p1"},
		  "dateTime": "2024-01-15T09:00:00Z",
		  "identifier": [{"system": "urn:consents", "value": "c-1"}],
		  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
		  "provision": {
		    "type": "permit",
		    "actor": [{"role": {"coding": [{"code": "PRCP"}]}, "reference": {"reference": "Organization/o1"}}],
		    "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
		    "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT", "display": "treatment"}],
		    "provision": [{"type": "deny", "action": [{"coding": [{"code": "nested-not-indexed"}]}]}]
		  }
		}`, []fhir.IndexEntry{
			tokE("action", "http://terminology.hl7.org/CodeSystem/consentaction", "access", ""),
			refE("actor", "Organization", "o1"),
			tokE("category", "http://loinc.org", "59284-0", "patient consent"),
			dateE("date", utc(2024, 1, 15, 9, 0, 0, 0), utc(2024, 1, 15, 9, 0, 1, 0)),
			tokE("identifier", "urn:consents", "c-1", ""),
			refE("patient", "Patient", "p1"),
			tokE("purpose", "http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT", "treatment"),
			tokE("scope", "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", ""),
			tokE("status", "", "active", ""),
		}},
		{"audit event", "AuditEvent", `{
		  "resourceType": "AuditEvent",
		  "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
		  "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
		  "action": "R", "outcome": "0",
		  "recorded": "2024-03-10T14:31:00.123456Z",
		  "agent": [
		    {"who": {"reference": "Practitioner/dr-7"}, "requestor": true},
		    {"who": {"reference": "Patient/p1"}, "requestor": false}
		  ],
		  "source": {"observer": {"reference": "Device/pulsewire"}},
		  "entity": [{"what": {"reference": "Observation/bp-1/_history/1"}}, {"what": {"reference": "Patient/p1"}}]
		}`, []fhir.IndexEntry{
			tokE("action", "", "R", ""),
			refE("agent", "Practitioner", "dr-7"),
			refE("agent", "Patient", "p1"),
			dateE("date", utc(2024, 3, 10, 14, 31, 0, 123456000), utc(2024, 3, 10, 14, 31, 0, 123457000)),
			refE("entity", "Observation", "bp-1"),
			refE("entity", "Patient", "p1"),
			tokE("outcome", "", "0", ""),
			// patient: derived from agent and entity, not indexed.
			refE("source", "Device", "pulsewire"),
			tokE("subtype", "http://hl7.org/fhir/restful-interaction", "read", ""),
			tokE("type", "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "restful operation"),
		}},
		{"unresolvable references kept whole", "Observation", `{
		  "resourceType": "Observation", "status": "final", "code": {"text": "note"},
		  "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
		  "performer": [{"reference": "https://example.org/people/42"}, {"identifier": {"value": "x"}}]
		}`, []fhir.IndexEntry{
			tokE("code", "", "", "note"),
			refE("performer", "", "https://example.org/people/42"),
			tokE("status", "", "final", ""),
			refE("subject", "", "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"),
		}},
		{"unexpected shapes are skipped", "Patient", `{
		  "resourceType": "Patient", "active": "yes", "gender": 3, "birthDate": "not a date",
		  "name": "Ada", "identifier": {"value": "x"}, "telecom": [null, 5]
		}`, []fhir.IndexEntry{
			tokE("identifier", "", "x", ""),
			strE("name", "ada", "Ada"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Extract(tt.typ, []byte(tt.body))
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, approxFloat); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name string
		typ  string
		body string
		kind fhir.Kind
	}{
		{"unsupported type", "Medication", `{"resourceType":"Medication"}`, fhir.KindNotSupported},
		{"not JSON", "Patient", `{"resourceType":`, fhir.KindInvalid},
		{"not an object", "Patient", `["Patient"]`, fhir.KindInvalid},
		{"type mismatch", "Patient", `{"resourceType":"Observation"}`, fhir.KindInvalid},
		{"trailing data", "Patient", `{"resourceType":"Patient"} {}`, fhir.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Extract(tt.typ, []byte(tt.body))
			checkErr(t, err, tt.kind)
		})
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	wantTypes := []string{"AuditEvent", "Consent", "Device", "DeviceMetric", "DeviceUseStatement", "Encounter", "Location",
		"Observation", "Organization", "Patient", "Practitioner"}
	if diff := cmp.Diff(wantTypes, r.Types()); diff != "" {
		t.Errorf("Types (-want +got):\n%s", diff)
	}
	if r.Supports("Medication") || !r.Supports("Observation") {
		t.Errorf("Supports is wrong")
	}
	if r.Params("Medication") != nil {
		t.Errorf("Params of an unsupported type is not nil")
	}
	for _, typ := range r.Types() {
		ps := r.Params(typ)
		for i, p := range ps {
			if i > 0 && ps[i-1].Code >= p.Code {
				t.Errorf("%s params not sorted: %s before %s", typ, ps[i-1].Code, p.Code)
			}
			if p.Description == "" || p.Expression == "" || p.Definition == "" {
				t.Errorf("%s.%s lacks description, expression or definition", typ, p.Code)
			}
			if p.Type == fhir.ParamReference && len(p.Targets) == 0 && !(typ == "AuditEvent" && p.Code == "entity") {
				t.Errorf("%s.%s is a reference without targets", typ, p.Code)
			}
		}
		for _, code := range []string{"_id", "_lastUpdated"} {
			if _, ok := r.Lookup(typ, code); !ok {
				t.Errorf("%s lacks %s", typ, code)
			}
		}
	}
	got, ok := r.Lookup("Observation", "patient")
	want := ParamDef{Code: "patient", Type: fhir.ParamReference,
		Description: "The subject that the observation is about (if patient)",
		Expression:  "Observation.subject.where(resolve() is Patient)",
		Targets:     []string{"Patient"},
		Definition:  "http://hl7.org/fhir/SearchParameter/clinical-patient",
		StoredAs:    []string{"subject"}}
	if !ok {
		t.Fatal("Observation.patient not registered")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	// Callers get copies: changing one does not change the registry.
	got.Targets[0] = "Group"
	if again, _ := r.Lookup("Observation", "patient"); again.Targets[0] != "Patient" {
		t.Errorf("Lookup returned shared Targets")
	}
	if _, ok := r.Lookup("Observation", "gender"); ok {
		t.Errorf("Observation.gender should not exist")
	}
	// The parameters the issue requires.
	required := map[string][]string{
		"Patient":     {"identifier", "name", "family", "given", "birthdate", "gender"},
		"Device":      {"identifier", "patient", "type", "status"},
		"Observation": {"subject", "patient", "code", "category", "date", "device", "status", "value-quantity", "combo-code"},
		"Encounter":   {"patient", "date", "status", "identifier"},
		"Consent":     {"patient", "status"},
	}
	for typ, codes := range required {
		for _, c := range codes {
			if _, ok := r.Lookup(typ, c); !ok {
				t.Errorf("%s.%s missing", typ, c)
			}
		}
	}
}

func TestCompilePath(t *testing.T) {
	tests := []struct {
		in   string
		want path
		bad  bool
	}{
		{in: "code:CodeableConcept", want: path{segs: []string{"code"}, dtype: "CodeableConcept"}},
		{in: "component.code:CodeableConcept", want: path{segs: []string{"component", "code"}, dtype: "CodeableConcept"}},
		{in: "value[x]:Quantity|CodeableConcept", want: path{segs: []string{"value"}, choice: []string{"Quantity", "CodeableConcept"}}},
		{in: "subject:Reference(Patient)", want: path{segs: []string{"subject"}, dtype: "Reference", restrict: "Patient"}},
		{in: "code", bad: true},
		{in: "a..b:string", bad: true},
		{in: "a:Nope", bad: true},
		{in: "a[x]:Nope", bad: true},
		{in: "a:Reference(", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := compilePath(tt.in)
			if tt.bad {
				if err == nil {
					t.Errorf("compilePath(%q) succeeded, want error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(path{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct {
		in      string
		typ, id string
		indexed bool
	}{
		{"Patient/p1", "Patient", "p1", true},
		{"Patient/p1/_history/3", "Patient", "p1", true},
		{"http://x.org/fhir/Patient/p1", "Patient", "p1", true},
		{"https://x.org/fhir/Patient/p1/_history/3", "Patient", "p1", true},
		{"#c1", "", "", false},
		{"", "", "", false},
		{"urn:uuid:abc", "", "urn:uuid:abc", true},
		{"http://x.org/people/42", "", "http://x.org/people/42", true},
		{"p1", "", "p1", true},
		{"fhir/Patient/p1", "", "fhir/Patient/p1", true},
		{"patient/p1", "", "patient/p1", true},
		{"Patient/bad id", "", "Patient/bad id", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			typ, id, ok := parseReference(tt.in)
			if typ != tt.typ || id != tt.id || ok != tt.indexed {
				t.Errorf("parseReference(%q) = %q, %q, %v; want %q, %q, %v", tt.in, typ, id, ok, tt.typ, tt.id, tt.indexed)
			}
		})
	}
}
