package validate_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/conformance/examples"
	"github.com/pulsewire/pulsewire/conformance/validate"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func newValidator(t testing.TB) *validate.Validator {
	t.Helper()
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// observation1K is a ~1 KB vital-signs Observation (the benchmark input).
const observation1K = `{
  "resourceType": "Observation",
  "id": "bp-1",
  "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}], "text": "Blood pressure"},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2026-03-01T10:30:00+01:00",
  "device": {"reference": "Device/monitor-7"},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
     "valueQuantity": {"value": 120.0, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}]},
     "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
  ]
}`

// TestRoundTrip checks that what a client sends comes back with the same
// meaning, including the parts lossy FHIR libraries drop.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, body, wantType, wantID string
	}{
		{"observation", observation1K, "Observation", "bp-1"},
		{"no id", `{"resourceType":"Patient","active":true}`, "Patient", ""},
		{"decimal precision", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":1.50,"unit":"mmol/L"},"referenceRange":[{"low":{"value":0.0010},"high":{"value":100}}]}`,
			"Observation", ""},
		{"large and exponent decimals", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":12345678901234567890.1234567890}}`, "Observation", ""},
		{"extensions", `{"resourceType":"Patient","id":"p1",
			"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Lyon"}},
				{"url":"http://example.org/nested","extension":[{"url":"a","valueString":"b"},{"url":"c","valueDecimal":2.50}]}],
			"modifierExtension":[{"url":"http://example.org/mod","valueBoolean":false}],
			"name":[{"family":"Doe","extension":[{"url":"http://example.org/n","valueCode":"x"}]}]}`,
			"Patient", "p1"},
		{"primitive extension with value", `{"resourceType":"Patient","birthDate":"1970-03-30",
			"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-30T14:35:45-05:00"}]}}`,
			"Patient", ""},
		{"primitive extension without value", `{"resourceType":"Patient",
			"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
			"Patient", ""},
		{"primitive extensions in arrays", `{"resourceType":"Patient","name":[{"given":["Ann","Bo"],
			"_given":[{"id":"g1"},{"extension":[{"url":"http://example.org/x","valueString":"y"}]}]}]}`,
			"Patient", ""},
		{"contained", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},
			"contained":[{"resourceType":"Device","id":"d1","serialNumber":"SN-1"},{"resourceType":"Patient","id":"p","active":true}],
			"device":{"reference":"#d1"},"subject":{"reference":"#p"}}`,
			"Observation", "o1"},
		{"partial dates and instants", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"effectivePeriod":{"start":"2026","end":"2026-03"},"issued":"2026-03-01T10:30:00.123456+05:30"}`,
			"Observation", ""},
		{"absolute and logical references", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"subject":{"reference":"https://other.example/fhir/Patient/9"},
			"performer":[{"identifier":{"system":"urn:oid:1.2.3","value":"42"}},{"display":"Dr X"}]}`,
			"Observation", ""},
		{"unicode and escapes", `{"resourceType":"Patient","name":[{"family":"Ølsen \u00e9\"<&>","given":["李"]}]}`, "Patient", ""},
	}
	v := newValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, id, canonical, err := v.Validate([]byte(tt.body))
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if typ != tt.wantType || id != tt.wantID {
				t.Errorf("type, id = %q, %q; want %q, %q", typ, id, tt.wantType, tt.wantID)
			}
			if d := examples.SemanticDiff([]byte(tt.body), canonical); d != "" {
				t.Errorf("canonical JSON differs (-sent +canonical):\n%s", d)
			}
			// Canonical means a fixed point: validating it again changes nothing.
			_, _, again, err := v.Validate(canonical)
			if err != nil {
				t.Fatalf("Validate(canonical): %v", err)
			}
			if d := cmp.Diff(string(canonical), string(again)); d != "" {
				t.Errorf("canonical JSON is not a fixed point (-first +second):\n%s", d)
			}
		})
	}
}

func TestDecimalPrecisionIsKeptVerbatim(t *testing.T) {
	v := newValidator(t)
	_, _, canonical, err := v.Validate([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(canonical), `"value":1.50`) {
		t.Errorf("canonical = %s, want it to hold \"value\":1.50", canonical)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantKind fhir.Kind
		wantCode fhir.IssueType
		wantExpr []string
	}{
		{"empty", ``, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"not JSON", `{"resourceType":`, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"trailing data", `{"resourceType":"Patient"} {}`, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"array", `[{"resourceType":"Patient"}]`, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"string", `"Patient"`, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"null", `null`, fhir.KindInvalid, fhir.IssueStructure, nil},
		{"no resourceType", `{"id":"x"}`, fhir.KindInvalid, fhir.IssueStructure, []string{"resourceType"}},
		{"resourceType in the wrong case", `{"resourcetype":"Patient"}`, fhir.KindInvalid, fhir.IssueStructure, []string{"resourceType"}},
		{"resourceType not a string", `{"resourceType":7}`, fhir.KindInvalid, fhir.IssueStructure, []string{"resourceType"}},
		{"resourceType null", `{"resourceType":null}`, fhir.KindInvalid, fhir.IssueStructure, []string{"resourceType"}},
		{"unknown resourceType", `{"resourceType":"SecretDiagnosis"}`, fhir.KindNotSupported, fhir.IssueNotSupported, []string{"resourceType"}},
		{"R5-only resourceType", `{"resourceType":"DeviceUsage"}`, fhir.KindNotSupported, fhir.IssueNotSupported, []string{"resourceType"}},
		{"missing required element", `{"resourceType":"Observation","code":{"text":"x"}}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.status"}},
		{"missing required elements", `{"resourceType":"Observation"}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.code", "Observation.status"}},
		{"missing nested required element", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"valueString":"1"}]}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.component[0].code"}},
		{"bad code", `{"resourceType":"Observation","status":"Jane-Doe-final","code":{"text":"x"}}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.status"}},
		{"bad date", `{"resourceType":"Patient","birthDate":"1970-13-45"}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.birthDate"}},
		{"bad boolean", `{"resourceType":"Patient","active":"yes-Jane-Doe"}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.active"}},
		{"bad id", `{"resourceType":"Patient","id":"Jane Doe!"}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.id"}},
		{"bad decimal", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"Jane-Doe"}}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.valueQuantity.value"}},
		{"unknown element", `{"resourceType":"Patient","favouriteColour":"Jane-Doe-blue"}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Patient.favouriteColour"}},
		{"unknown element with odd name", `{"resourceType":"Patient","Jane Doe, 1970":"x"}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Patient"}},
		{"upper-case element name", `{"resourceType":"Observation","status":"final","Code":{"text":"x"}}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.Code"}},
		{"duplicate member", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"status":"amended"}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.status"}},
		{"duplicate member with escapes", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"st\u0061tus":"amended"}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.status"}},
		{"empty string", `{"resourceType":"Observation","status":"","code":{"text":"x"}}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.status"}},
		{"empty string in array", `{"resourceType":"Patient","name":[{"given":["Jane",""]}]}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.name[0].given[1]"}},
		{"empty object", `{"resourceType":"Observation","status":"final","code":{}}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.code"}},
		{"empty array", `{"resourceType":"Patient","name":[]}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Patient.name"}},
		{"null member", `{"resourceType":"Patient","active":null}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Patient.active"}},
		{"lint problems in contained", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Patient","gender":""}]}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.contained[0].gender"}},
		{"array expected", `{"resourceType":"Patient","name":{"family":"Doe"}}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Patient.name"}},
		// Which of the two google/fhir reports depends on map order.
		{"two choice types", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueString2":"b","valueBoolean":true}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.valueBoolean|Observation.valueString", "Observation.valueString2"}},
		{"wrong reference type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/Jane-Doe"}}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.subject"}},
		{"unknown contained type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"JaneDoe.secret"}]}`,
			fhir.KindUnprocessable, fhir.IssueStructure, []string{"Observation.contained[0]"}},
		{"invalid contained resource", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Observation","id":"c"}]}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.contained[0].code", "Observation.contained[0].status"}},
		{"contained resource with bad reference type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"contained":[{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/Jane-Doe"}}]}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.contained[0].subject"}},
		{"resourceType empty", `{"resourceType":""}`, fhir.KindInvalid, fhir.IssueStructure, []string{"resourceType"}},
		// Known limitation of google/fhir v0.7.4: R4 JSON allows null
		// placeholders to align a repeating primitive with its _element
		// array (https://hl7.org/fhir/R4/json.html#primitive), but
		// google/fhir rejects them. Such a resource is refused, not
		// altered.
		{"null placeholder in primitive array", `{"resourceType":"Patient","name":[{"given":["Ann",null],
			"_given":[null,{"extension":[{"url":"http://example.org/x","valueString":"y"}]}]}]}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.name[0]._given[0]", "Patient.name[0].given[1]"}},
		{"control character in a choice element", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"Jane\u0001"}`,
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Observation.valueString"}},
		{"missing element inside a choice element", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRatio":{"numerator":{"extension":[{"valueString":"Jane"}]}}}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.valueRatio.numerator.extension[0].url"}},
		{"choice element in contained", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"contained":[{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveTiming":{"event":["2020-01-01"],"repeat":{"boundsPeriod":{"extension":[{"valueString":"Jane"}]}}}}]}`,
			fhir.KindUnprocessable, fhir.IssueRequired, []string{"Observation.contained[0].effectiveTiming.repeat.boundsPeriod.extension[0].url"}},
		{"control character", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Doe\\u0001\"}]}",
			fhir.KindUnprocessable, fhir.IssueValue, []string{"Patient.name[0].family"}},
	}
	v := newValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, id, canonical, err := v.Validate([]byte(tt.body))
			if err == nil {
				t.Fatalf("Validate succeeded (%s %s %s), want an error", typ, id, canonical)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *fhir.Error: %v", err, err)
			}
			got := struct {
				Kind fhir.Kind
				Code fhir.IssueType
				Expr []string
			}{fe.Kind, fe.Issue(), alternatives(tt.wantExpr, fe.Expression)}
			want := struct {
				Kind fhir.Kind
				Code fhir.IssueType
				Expr []string
			}{tt.wantKind, tt.wantCode, tt.wantExpr}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("error %q (-want +got):\n%s", fe.Msg, d)
			}
			if fe.Msg == "" {
				t.Error("empty message")
			}
			// The bodies above carry "Jane"/"Doe"/"secret" as stand-ins for
			// patient data: no part of the error may repeat them.
			for _, s := range []string{"Jane", "Doe", "secret", "SecretDiagnosis", "1970", "yes-"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks %q", err.Error(), s)
				}
			}
			if typ != "" || id != "" || canonical != nil {
				t.Errorf("got results with an error: %q %q %s", typ, id, canonical)
			}
		})
	}
}

// alternatives returns got with each element that matches one of the
// "|"-separated alternatives of the same element of want replaced by that
// want element, so cmp.Diff accepts any of them.
func alternatives(want, got []string) []string {
	out := append([]string(nil), got...)
	for i := range out {
		if i < len(want) && slices.Contains(strings.Split(want[i], "|"), out[i]) {
			out[i] = want[i]
		}
	}
	return out
}

func TestErrorMessageListsProblems(t *testing.T) {
	v := newValidator(t)
	_, _, _, err := v.Validate([]byte(`{"resourceType":"Observation"}`))
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want *fhir.Error", err)
	}
	want := `invalid resource: Observation.code: missing required field "code"; Observation.status: missing required field "status"`
	if fe.Msg != want {
		t.Errorf("Msg = %q, want %q", fe.Msg, want)
	}
}

func TestErrorMessageIsBounded(t *testing.T) {
	var members []string
	for i := range 30 {
		members = append(members, fmt.Sprintf(`"unknown%d":1`, i))
	}
	body := `{"resourceType":"Patient",` + strings.Join(members, ",") + `}`
	_, _, _, err := newValidator(t).Validate([]byte(body))
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want *fhir.Error", err)
	}
	if len(fe.Expression) != 30 {
		t.Errorf("%d expressions, want 30", len(fe.Expression))
	}
	if !strings.HasSuffix(fe.Msg, "; and 20 more") {
		t.Errorf("Msg = %q, want it to end with \"; and 20 more\"", fe.Msg)
	}
}

func TestDeepNestingIsRejected(t *testing.T) {
	body := `{"resourceType":"Patient","extension":[` +
		strings.Repeat(`{"url":"http://x","extension":[`, 100) +
		strings.Repeat(`]}`, 100) + `]}`
	_, _, _, err := newValidator(t).Validate([]byte(body))
	if !fhir.IsKind(err, fhir.KindUnprocessable) {
		t.Errorf("err = %v, want KindUnprocessable", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	v := newValidator(t)
	_, _, want, err := v.Validate([]byte(observation1K))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				body := observation1K
				if (g+i)%3 == 0 {
					body = `{"resourceType":"Observation","code":{"text":"x"}}`
				}
				_, _, got, err := v.Validate([]byte(body))
				switch {
				case body == observation1K && err != nil:
					errs <- fmt.Errorf("valid body: %w", err)
					return
				case body == observation1K && string(got) != string(want):
					errs <- fmt.Errorf("canonical differs under concurrency: %s", got)
					return
				case body != observation1K && !fhir.IsKind(err, fhir.KindUnprocessable):
					errs <- fmt.Errorf("invalid body: err = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkValidateObservation1K(b *testing.B) {
	v := newValidator(b)
	body := []byte(observation1K)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := v.Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}
