package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// observation returns a ~1 KB Observation write with the ~10 index entries
// search.Extract gives a vital sign.
func observation(id string, patient, code int, at time.Time) *fhir.Write {
	body := fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"code-%d","display":"Vital sign %d"}],"text":"Vital sign %d"},`+
		`"subject":{"reference":"Patient/p%d"},"device":{"reference":"Device/d%d"},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},`+
		`"note":[{"text":"Benchmark observation padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding"}]}`,
		code, code, code, patient, patient, at.Format(time.RFC3339), 60+code)
	sec := func(t time.Time) (time.Time, time.Time) { return t, t.Add(time.Second) }
	lo, hi := sec(at)
	return &fhir.Write{Type: "Observation", ID: id, Body: []byte(body), Index: []fhir.IndexEntry{
		{Param: "status", Type: fhir.ParamToken, Code: "final"},
		{Param: "category", Type: fhir.ParamToken, System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs", Text: "vital signs"},
		{Param: "code", Type: fhir.ParamToken, System: "http://loinc.org", Code: fmt.Sprintf("code-%d", code), Text: "vital sign"},
		{Param: "combo-code", Type: fhir.ParamToken, System: "http://loinc.org", Code: fmt.Sprintf("code-%d", code)},
		{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: fmt.Sprintf("p%d", patient)},
		{Param: "patient", Type: fhir.ParamReference, RefType: "Patient", RefID: fmt.Sprintf("p%d", patient)},
		{Param: "device", Type: fhir.ParamReference, RefType: "Device", RefID: fmt.Sprintf("d%d", patient)},
		{Param: "date", Type: fhir.ParamDate, Lo: lo, Hi: hi},
		{Param: "value-quantity", Type: fhir.ParamQuantity, Num: float64(60 + code), NumLo: float64(60+code) - 0.5, NumHi: float64(60+code) + 0.5, System: "http://unitsofmeasure.org", Code: "/min"},
		{Param: "_profile", Type: fhir.ParamURI, String: "http://hl7.org/fhir/StructureDefinition/vitalsigns"},
	}}
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s := openTemp(b, filepath.Join(b.TempDir(), "bench.db"))
	if err := s.EnsureTenant(context.Background(), "acme"); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPut measures one create (one transaction, ~10 index rows) per op.
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	at := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; b.Loop(); i++ {
		w := observation(fmt.Sprintf("o%d", i), i%100, i%5, at.Add(time.Duration(i)*time.Second))
		err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, w)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchLatest measures the "latest vitals" search
// (subject + code + _sort=-date + _count=10) over 20,000 Observations of
// 100 patients with 5 codes each.
func BenchmarkSearchLatest(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	const patients, codes, perTx, total = 100, 5, 1000, 20000
	at := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < total; start += perTx {
		err := s.Tx(ctx, "acme", func(tx fhir.Tx) error {
			for i := start; i < start+perTx; i++ {
				w := observation(fmt.Sprintf("o%d", i), i%patients, (i/patients)%codes, at.Add(time.Duration(i)*time.Minute))
				if _, _, err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		q := &fhir.Query{Type: "Observation", Count: 10,
			Params: []fhir.Param{
				{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: fmt.Sprintf("p%d", i%patients)}}},
				{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "http://loinc.org", HasSystem: true, Code: fmt.Sprintf("code-%d", i%codes)}}},
			},
			Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}},
		}
		res, err := s.Search(ctx, "acme", q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Resources) != 10 {
			b.Fatalf("got %d results, want 10", len(res.Resources))
		}
	}
}
