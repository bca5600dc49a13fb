package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// vitals are the (LOINC) codes the synthetic Observations use.
var vitals = []string{"8867-4", "8480-6", "8462-4", "59408-5", "8310-5", "9279-1"}

var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// syntheticObservation is a ~1 KB vital-sign Observation of patient p with
// the ~10 index entries search.Extract gives such a resource.
func syntheticObservation(id string, patient, n int) *fhir.Write {
	code := vitals[n%len(vitals)]
	at := benchBase.Add(time.Duration(n) * time.Minute)
	pid := fmt.Sprintf("p%d", patient)
	body := fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"%s","display":"Vital sign %s"},{"system":"urn:iso:std:iso:11073:10101","code":"147842"}],"text":"vital"},`+
		`"subject":{"reference":"Patient/%s"},"device":{"reference":"Device/d%d"},`+
		`"effectiveDateTime":"%s","issued":"%s",`+
		`"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},`+
		`"note":[{"text":"%s"}]}`,
		code, code, pid, patient, at.Format(time.RFC3339), at.Format(time.RFC3339), 60+n%40, strings.Repeat("x", 300))
	return &fhir.Write{Type: "Observation", ID: id, Body: []byte(body), Index: []fhir.IndexEntry{
		{Param: "status", Type: fhir.ParamToken, Code: "final"},
		{Param: "category", Type: fhir.ParamToken, System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs", Text: "vital signs"},
		{Param: "code", Type: fhir.ParamToken, System: "http://loinc.org", Code: code, Text: "vital sign"},
		{Param: "code", Type: fhir.ParamToken, System: "urn:iso:std:iso:11073:10101", Code: "147842"},
		{Param: "combo-code", Type: fhir.ParamToken, System: "http://loinc.org", Code: code},
		{Param: "subject", Type: fhir.ParamReference, RefType: "Patient", RefID: pid},
		{Param: "patient", Type: fhir.ParamReference, RefType: "Patient", RefID: pid},
		{Param: "device", Type: fhir.ParamReference, RefType: "Device", RefID: fmt.Sprintf("d%d", patient)},
		{Param: "date", Type: fhir.ParamDate, Lo: at, Hi: at.Add(time.Second)},
		{Param: "value-quantity", Type: fhir.ParamQuantity, Num: float64(60 + n%40), NumLo: float64(60+n%40) - 0.5, NumHi: float64(60+n%40) + 0.5, System: "http://unitsofmeasure.org", Code: "/min"},
	}}
}

// BenchmarkPut: POST of a ~1 KB Observation with 10 index rows, one
// transaction (durable commit) per Put, 32 concurrent clients on 2 cores.
func BenchmarkPut(b *testing.B) {
	s, _ := openTestStoreConns(b, 32)
	ctx := context.Background()
	mustTenant(b, s, "bench")
	var seq atomic.Int64
	b.SetParallelism(max(1, 32/runtimeProcs()))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(seq.Add(1))
			w := syntheticObservation(fmt.Sprintf("b%d", i), i%1000, i/1000)
			if err := s.Tx(ctx, "bench", func(tx fhir.Tx) error {
				_, _, err := tx.Put(ctx, w)
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkSearchLatest: the "latest vitals" search, subject + code +
// _sort=-date + _count=10, over 20k Observations of 100 patients (bulk
// loaded with seedSQL), 8 clients.
func BenchmarkSearchLatest(b *testing.B) {
	s, schema := openTestStoreConns(b, 8)
	ctx := context.Background()
	const n, patients = 20000, 100
	bulkSeed(b, schema, n, patients)
	// The work is a sub-benchmark so that the load above runs once, not
	// once per b.N calibration round.
	b.Run("subject+code+sort", func(b *testing.B) {
		var seq atomic.Int64
		b.SetParallelism(max(1, 8/runtimeProcs()))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(seq.Add(1))
				q := latestVitals(fmt.Sprintf("p%d", i%patients), vitals[i%len(vitals)])
				res, err := s.Search(ctx, "bench", q)
				if err != nil {
					b.Error(err)
					return
				}
				if len(res.Resources) != 10 {
					b.Errorf("%d results, want 10", len(res.Resources))
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
	})
}

// latestVitals is Observation?subject=Patient/p&code=http://loinc.org|code&_sort=-date&_count=10.
func latestVitals(patient, code string) *fhir.Query {
	return &fhir.Query{
		Type:  "Observation",
		Count: 10,
		Params: []fhir.Param{
			{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: patient}}},
			{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "http://loinc.org", HasSystem: true, Code: code}}},
		},
		Sort: []fhir.SortKey{{Param: "date", Type: fhir.ParamDate, Desc: true}},
	}
}

// BenchmarkCreateFootprint: the bytes a create of a ~1 KB Observation adds
// to resources and resource_versions, their indexes included (index
// tables aside), from the tables' sizes after b.N creates of server-made
// ids (POST: blind writes). Figures only: sizes are in pages, and the
// first creates of an empty table pay for whole pages.
func BenchmarkCreateFootprint(b *testing.B) {
	s, schema := openTestStoreConns(b, 8)
	ctx := context.Background()
	mustTenant(b, s, "bench")
	b.ResetTimer()
	for i := range b.N {
		w := syntheticObservation(fmt.Sprintf("f%d", i), i%1000, i/1000)
		w.Fresh = true
		if err := s.Tx(ctx, "bench", func(tx fhir.Tx) error {
			_, _, err := tx.Put(ctx, w)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	admin := pgtest.AdminConn(b)
	var bytes int64
	if err := admin.QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass) + pg_total_relation_size($2::regclass)",
		schema+".resources", schema+".resource_versions").Scan(&bytes); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "table-B/create")
}
