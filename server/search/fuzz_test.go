package search

import (
	"errors"
	"net/url"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// FuzzParse checks Parse never panics, fails only with a *fhir.Error with a
// bounded message, and returns queries that keep their invariants.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"code=http://loinc.org|8867-4&subject=Patient/p1&_sort=-date&_count=10",
		"date=ge2024-03-10T14:30:15.123+02:00,lt2025&date=ne2024-02",
		`identifier=urn:sys\|x|a\,b\$c\\d,|x,sys|`,
		"value-quantity=ap5.4|http://unitsofmeasure.org|mg,1e2,-0.5||mmHg",
		"name:exact=Zoë&family:contains=mil&given:missing=true",
		"_include=Observation:subject:Patient&_revinclude:iterate=Device:patient&_summary=count&_total=accurate",
		"subject.name=x&_has:Observation:patient:code=1&_elements=id,name&_offset=3",
		"code:text=blood&status:not=final&subject:Patient=p1&patient=http://x/fhir/Patient/1/_history/2",
		"_count=-1&_sort=,&_include=*",
		"value-quantity=1e99999&date=0001-01-01T00:00-14:00",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	r := NewRegistry()
	types := append(r.Types(), "Medication")
	f.Fuzz(func(t *testing.T, typIdx uint8, raw string) {
		typ := types[int(typIdx)%len(types)]
		v, err := url.ParseQuery(raw)
		if err != nil {
			v = url.Values{"code": {raw}, "date": {raw}, "value-quantity": {raw}, "subject": {raw}}
		}
		for _, strict := range []bool{false, true} {
			q, _, err := r.Parse(typ, v, ParseOptions{Strict: strict, MaxCount: 100})
			if err != nil {
				var fe *fhir.Error
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is %T, not *fhir.Error", err, err)
				}
				if len(fe.Msg) > 512 {
					t.Fatalf("error message is %d bytes", len(fe.Msg))
				}
				continue
			}
			if q.Count < 0 || q.Count > 100 || q.Offset < 0 {
				t.Fatalf("count %d offset %d out of range", q.Count, q.Offset)
			}
			for _, p := range q.Params {
				if p.Modifier == "missing" {
					if p.Missing == nil {
						t.Fatalf("%s:missing without a value", p.Name)
					}
					continue
				}
				if len(p.Values) == 0 {
					t.Fatalf("%s has no values", p.Name)
				}
				for _, val := range p.Values {
					switch p.Type {
					case fhir.ParamDate:
						if !val.Lo.Before(val.Hi) || val.Lo.Before(fhir.MinTime) || val.Hi.After(fhir.MaxTime) {
							t.Fatalf("%s: bad range [%v, %v)", p.Name, val.Lo, val.Hi)
						}
					case fhir.ParamQuantity, fhir.ParamNumber:
						if !(val.NumLo <= val.Num && val.Num <= val.NumHi) {
							t.Fatalf("%s: %v outside [%v, %v)", p.Name, val.Num, val.NumLo, val.NumHi)
						}
					}
				}
			}
		}
	})
}

// FuzzExtract checks Extract never panics on arbitrary JSON and fails only
// with a *fhir.Error.
func FuzzExtract(f *testing.F) {
	f.Add(uint8(6), []byte(bpObservation))
	f.Add(uint8(8), []byte(`{"resourceType":"Patient","name":[{"family":"Ada","given":["A",null,3]}],"birthDate":"1815"}`))
	f.Add(uint8(4), []byte(`{"resourceType":"Encounter","period":{"start":"2024","end":"2023"},"subject":{"reference":"Patient/"}}`))
	f.Add(uint8(6), []byte(`{"resourceType":"Observation","valueQuantity":{"value":1e400},"component":[{"code":[]}],"effectiveTiming":{"event":["2024",5]}}`))
	f.Add(uint8(0), []byte(`{"resourceType":"AuditEvent","agent":[{"who":{"reference":"#x"}},null,{"who":"Patient/p1"}]}`))
	f.Add(uint8(1), []byte(`not json`))
	r := NewRegistry()
	types := r.Types()
	f.Fuzz(func(t *testing.T, typIdx uint8, body []byte) {
		typ := types[int(typIdx)%len(types)]
		entries, err := r.Extract(typ, body)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, not *fhir.Error", err, err)
			}
			return
		}
		for _, e := range entries {
			if e.Param == "" || e.Type == "" {
				t.Fatalf("entry without param or type: %+v", e)
			}
			if e.Type == fhir.ParamDate && e.Hi.Before(e.Lo) {
				t.Fatalf("%s: bad range [%v, %v)", e.Param, e.Lo, e.Hi)
			}
		}
	})
}

// BenchmarkExtract measures index extraction for a blood-pressure
// Observation with two components (the ingest hot path).
func BenchmarkExtract(b *testing.B) {
	r := NewRegistry()
	body := []byte(bpObservation)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract("Observation", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse measures parsing the "latest vitals" query.
func BenchmarkParse(b *testing.B) {
	r := NewRegistry()
	v := url.Values{"subject": {"Patient/p1"}, "code": {"http://loinc.org|8867-4"}, "_sort": {"-date"}, "_count": {"10"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Parse("Observation", v, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
