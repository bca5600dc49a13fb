package model

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// The decoders give what encoding/json gives, for every valid JSON value
// and every type they decode.

var decoderSeeds = []string{
	`{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},{"system":"urn:iso:std:iso:11073:10101","code":"147842"}],"text":"Heart rate"}`,
	`{"coding":[null,{"code":null}],"text":null}`,
	`{"coding":[],"text":"x"}`,
	` { "Coding" : [ { "CODE" : "a" , "code" : "b" } ] , "text" : "t\u00e9\n\"q\"" } `,
	`{"code":"a","code":"b","Code":"c"}`,
	`{"\u0063ode":"escaped key","unknown":{"nested":[1,2,{"a":"}"}]},"display":"d"}`,
	`{"value":72.5,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min","comparator":"<"}`,
	`{"value":-0,"unit":1}`,
	`{"value":1e400}`,
	`{"value":"72"}`,
	`{"use":"official","family":"Doe","given":["Jane","Q"],"prefix":[],"suffix":null,"text":"Jane Doe"}`,
	`{"given":[null,"x"]}`,
	`{"given":"x"}`,
	`{"use":"usual","type":{"coding":[{"code":"MR"}]},"system":"urn:mrn","value":"42"}`,
	`{"reference":"Patient/p1","type":"Patient","display":"P"}`,
	`{"start":"2024-01-01","end":"2024-02-01"}`,
	`{"name":"Monitor","type":"user-friendly-name"}`,
	`{"code":{"coding":[{"code":"8480-6"}]},"valueQuantity":{"value":120},"valueString":"s","valueCodeableConcept":{"text":"t"}}`,
	`[{"text":"a"},null,{"coding":[{"code":"b"}]}]`,
	`true`, `false`, `42`, `-7`, `1.5`, `9223372036854775808`, `"str"`, `"bad \ud800 surrogate"`, "\"\xff\xfe\"", `null`, `[]`, `{}`,
	`[true]`, `{"text":5}`, `{"coding":{}}`,
}

func FuzzDecoders(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		// What follows a value is never part of it: the decoders get
		// values cut out of a document.
		b = trimSpace(b)
		same[Coding](t, b, coding)
		same[CodeableConcept](t, b, codeableConcept)
		same[[]*CodeableConcept](t, b, codeableConcepts)
		same[Identifier](t, b, value(identifierPtr))
		same[HumanName](t, b, value(humanNamePtr))
		same[ContactPoint](t, b, value(contactPointPtr))
		same[Quantity](t, b, value(quantityPtr))
		same[Period](t, b, value(periodPtr))
		same[Reference](t, b, value(referencePtr))
		same[DeviceName](t, b, value(deviceNamePtr))
		same[ObservationComponent](t, b, value(observationComponentPtr))
		same[[]*ObservationComponent](t, b, observationComponents)
		same[string](t, b, str)
		same[*bool](t, b, boolPtr)
		same[*int](t, b, intPtr)
		same[[]string](t, b, strList)
	})
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// same checks dec decodes b as encoding/json decodes it into a T: both
// fail, or both give the same value.
func same[T any](t *testing.T, b []byte, dec decoder[T]) {
	t.Helper()
	var want T
	wantErr := json.Unmarshal(b, &want)
	got, err := nullable(b, dec)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%T of %s: error %v, encoding/json's %v", want, b, err, wantErr)
	}
	if err != nil {
		return
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%T of %s (-encoding/json +decoder):\n%s", want, b, d)
	}
}

// A model's fields decode the stored resource's members.
func TestModelFields(t *testing.T) {
	r := &fhir.Resource{Type: "Observation", ID: "o1", Body: []byte(`{"resourceType":"Observation","id":"o1","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"effectivePeriod":{"start":"2024-03-01T10:00:00Z"},
		"valueQuantity":{"value":72,"unit":"/min"},"subject":{"reference":"Patient/p1"},"valueInteger":null}`)}
	m, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	o := m.(*Observation)
	str := func(s string) *string { return &s }
	check := func(name string, want, got any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
	status, err := o.Status()
	check("status", "final", status, err)
	code, err := o.Code()
	check("code", CodeableConcept{Coding: []*Coding{{System: str("http://loinc.org"), Code: str("8867-4")}}}, code, err)
	eff, err := o.Effective()
	check("effective (the period's start)", str("2024-03-01T10:00:00Z"), eff, err)
	v := 72.0
	q, err := o.ValueQuantity()
	check("valueQuantity", &Quantity{Value: &v, Unit: str("/min")}, q, err)
	n, err := o.ValueInteger()
	check("valueInteger (null)", (*int)(nil), n, err)
	cats, err := o.Category()
	check("category (absent)", []*CodeableConcept(nil), cats, err)

	bad := &Observation{lazy: lazy{src: &fhir.Resource{Type: "Observation", ID: "o2", Body: []byte(`{"status":7}`)}}}
	if _, err := bad.Status(); !fhir.IsKind(err, fhir.KindInternal) {
		t.Errorf("status of a number: %v, want an internal error", err)
	}
	corrupt := &Observation{lazy: lazy{src: &fhir.Resource{Type: "Observation", ID: "o3", Body: []byte(`{"status":`)}}}
	if _, err := corrupt.Status(); !fhir.IsKind(err, fhir.KindInternal) {
		t.Errorf("status of a corrupt body: %v, want an internal error", err)
	}
}

// topMembers finds the members fhir.Members finds in a JSON object, and on
// anything else (a corrupt row) fails or returns without reading out of
// bounds, as do the decoders given what it returns.
func FuzzTopMembers(f *testing.F) {
	for _, s := range decoderSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"code":"x"}]}`))
	f.Add([]byte(`{"a":}`))
	f.Add([]byte(`{"a" "b"}`))
	f.Add([]byte(`{"a":[1,2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := topMembers(b)
		got := make([]fhir.Member, 0, len(ms))
		for _, m := range ms {
			got = append(got, fhir.Member{Key: string(m.key), Value: m.val})
		}
		if want, werr := fhir.Members(b); werr == nil {
			if err != nil {
				t.Fatalf("topMembers(%s): %v; fhir.Members found %d members", b, err, len(want))
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("topMembers(%s) (-fhir.Members +topMembers):\n%s", b, d)
			}
		}
		for _, m := range ms {
			_, _ = nullable(m.val, codeableConcept)
			_, _ = nullable(m.val, humanNames)
			_, _ = nullable(m.val, quantityPtr)
			_, _ = nullable(m.val, observationComponents)
			_, _ = nullable(m.val, intPtr)
			_, _ = nullable(m.val, boolPtr)
		}
	})
}

// Keys are compared where they are written: finding a field or a stored
// resource's members makes no string of each key (which cost an allocation
// per member of every datatype a response shows), and a datatype decoded
// to a pointer is allocated once. An escaped key is still found.
func TestKeysWithoutCopies(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":72}}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = topMembers(body) }); n != 1 {
		t.Errorf("topMembers of 4 members: %v allocations, want 1 (the list)", n)
	}
	cc := []byte(`{"coding":[],"Text":null}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = codeableConceptPtr(cc) }); n != 1 {
		t.Errorf("decoding a CodeableConcept without values: %v allocations, want 1 (the CodeableConcept)", n)
	}
	got, err := codeableConcept([]byte(`{"t\u0065xt":"escaped"}`))
	if err != nil || got.Text == nil || *got.Text != "escaped" {
		t.Errorf("an escaped key: %+v, %v; want text %q", got, err, "escaped")
	}
}
