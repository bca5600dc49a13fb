package search

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

func boolp(b bool) *bool { return &b }

// parseQuery parses a raw query string for typ.
func parseQuery(t *testing.T, r *Registry, typ, raw string, opts ParseOptions) (*fhir.Query, []string, error) {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("bad test query %q: %v", raw, err)
	}
	return r.Parse(typ, v, opts)
}

func TestParseParams(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name string
		typ  string
		raw  string
		want []fhir.Param
	}{
		{"token code only", "Observation", "code=8867-4",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "8867-4"}}}}},
		{"token system and code", "Observation", "code=http://loinc.org|8867-4",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "http://loinc.org", HasSystem: true, Code: "8867-4"}}}}},
		{"token no system", "Observation", "code=|8867-4",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{HasSystem: true, Code: "8867-4"}}}}},
		{"token system only", "Observation", "code=http://loinc.org|",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "http://loinc.org", HasSystem: true}}}}},
		{"comma is OR", "Observation", "status=final,amended",
			[]fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}, {Code: "amended"}}}}},
		{"repeated is AND", "Observation", "category=vital-signs&category=laboratory",
			[]fhir.Param{
				{Name: "category", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "vital-signs"}}},
				{Name: "category", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "laboratory"}}},
			}},
		{"escaped pipe comma dollar backslash", "Patient", `identifier=urn:sys\|x|a\,b\$c\\d`,
			[]fhir.Param{{Name: "identifier", Type: fhir.ParamToken, Values: []fhir.Value{{System: "urn:sys|x", HasSystem: true, Code: `a,b$c\d`}}}}},
		{"escaped comma does not split", "Patient", `given=a\,b,c`,
			[]fhir.Param{{Name: "given", Type: fhir.ParamString, Values: []fhir.Value{{String: "a,b"}, {String: "c"}}}}},
		{"empty OR members skipped", "Observation", "status=final,,",
			[]fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}}}},
		{"empty value ignored", "Observation", "status=&code=x",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "x"}}}}},
		{"token :not", "Observation", "status:not=cancelled",
			[]fhir.Param{{Name: "status", Type: fhir.ParamToken, Modifier: "not", Values: []fhir.Value{{Code: "cancelled"}}}}},
		{"token :text normalized", "Observation", "code:text=Blood%20%20Pr%C3%A9ssure",
			[]fhir.Param{{Name: "code", Type: fhir.ParamToken, Modifier: "text", Values: []fhir.Value{{String: "blood pressure"}}}}},
		{"missing true", "Observation", "device:missing=true",
			[]fhir.Param{{Name: "device", Type: fhir.ParamReference, Modifier: "missing", Missing: boolp(true)}}},
		{"missing false", "Patient", "birthdate:missing=false",
			[]fhir.Param{{Name: "birthdate", Type: fhir.ParamDate, Modifier: "missing", Missing: boolp(false)}}},
		{"string default normalized", "Patient", "name=%C3%89MILE%20Zola",
			[]fhir.Param{{Name: "name", Type: fhir.ParamString, Values: []fhir.Value{{String: "emile zola"}}}}},
		{"string exact keeps original", "Patient", "family:exact=%C3%89mile",
			[]fhir.Param{{Name: "family", Type: fhir.ParamString, Modifier: "exact", Values: []fhir.Value{{String: "Émile"}}}}},
		{"string contains", "Patient", "family:contains=MIL",
			[]fhir.Param{{Name: "family", Type: fhir.ParamString, Modifier: "contains", Values: []fhir.Value{{String: "mil"}}}}},
		{"reference type/id", "Observation", "subject=Patient/p1",
			[]fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}}},
		{"reference bare id", "Observation", "subject=p1",
			[]fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "p1"}}}}},
		{"reference :Type modifier", "Observation", "subject:Patient=p1",
			[]fhir.Param{{Name: "subject", Type: fhir.ParamReference, Targets: []string{"Patient"}, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}}},
		{"reference absolute URL with Type/id", "Observation", "subject=https://ehr.example.org/fhir/Patient/p1/_history/3",
			[]fhir.Param{{Name: "subject", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}}}}},
		{"reference other absolute URL kept", "AuditEvent", "entity=urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
			[]fhir.Param{{Name: "entity", Type: fhir.ParamReference, Values: []fhir.Value{{RefID: "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}}}}},
		{"patient restricted param", "Observation", "patient=Patient/p1,p2",
			[]fhir.Param{{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: "p1"}, {RefID: "p2"}}}}},
		{"_id", "Patient", "_id=a,b",
			[]fhir.Param{{Name: "_id", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "a"}, {Code: "b"}}}}},
		{"_lastUpdated with prefix", "Patient", "_lastUpdated=gt2024-03-01",
			[]fhir.Param{{Name: "_lastUpdated", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: fhir.PrefixGt, Lo: utc(2024, 3, 1, 0, 0, 0, 0), Hi: utc(2024, 3, 2, 0, 0, 0, 0)}}}}},
		{"combo-code is a token", "Observation", "combo-code=http://loinc.org|8480-6",
			[]fhir.Param{{Name: "combo-code", Type: fhir.ParamToken, Values: []fhir.Value{{System: "http://loinc.org", HasSystem: true, Code: "8480-6"}}}}},
		{"boolean token", "Patient", "active=true",
			[]fhir.Param{{Name: "active", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "true"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ignored, err := parseQuery(t, r, tt.typ, tt.raw, ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(ignored) > 0 {
				t.Errorf("ignored = %v, want none", ignored)
			}
			if diff := cmp.Diff(tt.want, q.Params); diff != "" {
				t.Errorf("Params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDates(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		raw    string
		prefix fhir.Prefix
		lo, hi time.Time
	}{
		{"2024", fhir.PrefixEq, utc(2024, 1, 1, 0, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0, 0)},
		{"2024-02", fhir.PrefixEq, utc(2024, 2, 1, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0)},
		{"2024-02-29", fhir.PrefixEq, utc(2024, 2, 29, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0)},
		{"2024-12-31", fhir.PrefixEq, utc(2024, 12, 31, 0, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0, 0)},
		{"2024-03-10T14:30", fhir.PrefixEq, utc(2024, 3, 10, 14, 30, 0, 0), utc(2024, 3, 10, 14, 31, 0, 0)},
		{"2024-03-10T14:30Z", fhir.PrefixEq, utc(2024, 3, 10, 14, 30, 0, 0), utc(2024, 3, 10, 14, 31, 0, 0)},
		{"2024-03-10T14:30:15", fhir.PrefixEq, utc(2024, 3, 10, 14, 30, 15, 0), utc(2024, 3, 10, 14, 30, 16, 0)},
		{"2024-03-10T14:30:15.5Z", fhir.PrefixEq, utc(2024, 3, 10, 14, 30, 15, 500000000), utc(2024, 3, 10, 14, 30, 15, 600000000)},
		{"2024-03-10T14:30:15.123Z", fhir.PrefixEq, utc(2024, 3, 10, 14, 30, 15, 123000000), utc(2024, 3, 10, 14, 30, 15, 124000000)},
		{"2024-03-10T14:30:15+02:00", fhir.PrefixEq, utc(2024, 3, 10, 12, 30, 15, 0), utc(2024, 3, 10, 12, 30, 16, 0)},
		{"2024-03-10T00:30-05:30", fhir.PrefixEq, utc(2024, 3, 10, 6, 0, 0, 0), utc(2024, 3, 10, 6, 1, 0, 0)},
		{"eq2024", fhir.PrefixEq, utc(2024, 1, 1, 0, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0, 0)},
		{"ne2024", fhir.PrefixNe, utc(2024, 1, 1, 0, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0, 0)},
		{"gt2024-03", fhir.PrefixGt, utc(2024, 3, 1, 0, 0, 0, 0), utc(2024, 4, 1, 0, 0, 0, 0)},
		{"lt2024-03", fhir.PrefixLt, utc(2024, 3, 1, 0, 0, 0, 0), utc(2024, 4, 1, 0, 0, 0, 0)},
		{"ge2024-03-10", fhir.PrefixGe, utc(2024, 3, 10, 0, 0, 0, 0), utc(2024, 3, 11, 0, 0, 0, 0)},
		{"le2024-03-10", fhir.PrefixLe, utc(2024, 3, 10, 0, 0, 0, 0), utc(2024, 3, 11, 0, 0, 0, 0)},
		{"sa2024-03-10T10:00Z", fhir.PrefixSa, utc(2024, 3, 10, 10, 0, 0, 0), utc(2024, 3, 10, 10, 1, 0, 0)},
		{"eb2024-03-10T10:00Z", fhir.PrefixEb, utc(2024, 3, 10, 10, 0, 0, 0), utc(2024, 3, 10, 10, 1, 0, 0)},
		{"ap2024-03-10", fhir.PrefixAp, utc(2024, 3, 10, 0, 0, 0, 0), utc(2024, 3, 11, 0, 0, 0, 0)},
		{"9999", fhir.PrefixEq, utc(9999, 1, 1, 0, 0, 0, 0), fhir.MaxTime},
		{"0001", fhir.PrefixEq, fhir.MinTime, utc(2, 1, 1, 0, 0, 0, 0)},
		{"0001-01-01T01:30+01:00", fhir.PrefixEq, utc(1, 1, 1, 0, 30, 0, 0), utc(1, 1, 1, 0, 31, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			q, _, err := parseQuery(t, r, "Observation", "date="+url.QueryEscape(tt.raw), ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := []fhir.Param{{Name: "date", Type: fhir.ParamDate, Values: []fhir.Value{{Prefix: tt.prefix, Lo: tt.lo, Hi: tt.hi}}}}
			if diff := cmp.Diff(want, q.Params); diff != "" {
				t.Errorf("Params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseQuantity(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		raw  string
		want fhir.Value
	}{
		{"100", fhir.Value{Prefix: fhir.PrefixEq, Num: 100, NumLo: 99.5, NumHi: 100.5}},
		{"1.50", fhir.Value{Prefix: fhir.PrefixEq, Num: 1.5, NumLo: 1.495, NumHi: 1.505}},
		{"-0.5", fhir.Value{Prefix: fhir.PrefixEq, Num: -0.5, NumLo: -0.55, NumHi: -0.45}},
		{"1e2", fhir.Value{Prefix: fhir.PrefixEq, Num: 100, NumLo: 50, NumHi: 150}},
		{"1.0E-2", fhir.Value{Prefix: fhir.PrefixEq, Num: 0.01, NumLo: 0.0095, NumHi: 0.0105}},
		{"gt5.4", fhir.Value{Prefix: fhir.PrefixGt, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"lt5.4", fhir.Value{Prefix: fhir.PrefixLt, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"ge5.4", fhir.Value{Prefix: fhir.PrefixGe, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"le5.4", fhir.Value{Prefix: fhir.PrefixLe, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"ne5.4", fhir.Value{Prefix: fhir.PrefixNe, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"sa5.4", fhir.Value{Prefix: fhir.PrefixSa, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"eb5.4", fhir.Value{Prefix: fhir.PrefixEb, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"ap5.4", fhir.Value{Prefix: fhir.PrefixAp, Num: 5.4, NumLo: 5.35, NumHi: 5.45}},
		{"5.4|http://unitsofmeasure.org|mg", fhir.Value{Prefix: fhir.PrefixEq, Num: 5.4, NumLo: 5.35, NumHi: 5.45,
			System: "http://unitsofmeasure.org", HasSystem: true, Code: "mg"}},
		{"5.4||mg", fhir.Value{Prefix: fhir.PrefixEq, Num: 5.4, NumLo: 5.35, NumHi: 5.45, Code: "mg"}},
		{"le120|http://unitsofmeasure.org|mm[Hg]", fhir.Value{Prefix: fhir.PrefixLe, Num: 120, NumLo: 119.5, NumHi: 120.5,
			System: "http://unitsofmeasure.org", HasSystem: true, Code: "mm[Hg]"}},
	}
	approx := cmp.Comparer(func(a, b float64) bool {
		d := a - b
		return d < 1e-12 && d > -1e-12
	})
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			q, _, err := parseQuery(t, r, "Observation", "value-quantity="+url.QueryEscape(tt.raw), ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := []fhir.Param{{Name: "value-quantity", Type: fhir.ParamQuantity, Values: []fhir.Value{tt.want}}}
			if diff := cmp.Diff(want, q.Params, approx); diff != "" {
				t.Errorf("Params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseResultControl(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name string
		typ  string
		raw  string
		opts ParseOptions
		want *fhir.Query
	}{
		{"defaults", "Observation", "", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50}},
		{"custom default", "Observation", "", ParseOptions{DefaultCount: 20, MaxCount: 100},
			&fhir.Query{Type: "Observation", Count: 20}},
		{"default above max is capped", "Observation", "", ParseOptions{DefaultCount: 500, MaxCount: 100},
			&fhir.Query{Type: "Observation", Count: 100}},
		{"_count", "Observation", "_count=10&_offset=20", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 10, Offset: 20}},
		{"_count zero", "Observation", "_count=0", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 0}},
		{"_count capped", "Observation", "_count=5000", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 1000}},
		{"_count capped custom", "Observation", "_count=5000", ParseOptions{MaxCount: 200},
			&fhir.Query{Type: "Observation", Count: 200}},
		{"_sort", "Observation", "_sort=-date,_id,code,-_lastUpdated", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Sort: []fhir.SortKey{
				{Param: "date", Type: fhir.ParamDate, Desc: true},
				{Param: "_id", Type: fhir.ParamToken},
				{Param: "code", Type: fhir.ParamToken},
				{Param: "_lastUpdated", Type: fhir.ParamDate, Desc: true},
			}}},
		{"_sort string and quantity", "Patient", "_sort=family,birthdate", ParseOptions{},
			&fhir.Query{Type: "Patient", Count: 50, Sort: []fhir.SortKey{
				{Param: "family", Type: fhir.ParamString},
				{Param: "birthdate", Type: fhir.ParamDate},
			}}},
		{"_total accurate", "Observation", "_total=accurate", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Total: true}},
		{"_total estimate", "Observation", "_total=estimate", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Total: true}},
		{"_total none", "Observation", "_total=none", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50}},
		{"_summary count", "Observation", "_summary=count", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Total: true, CountOnly: true}},
		{"_summary true", "Observation", "_summary=true", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Summary: "true"}},
		{"_summary data", "Observation", "_summary=data", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Summary: "data"}},
		{"_elements", "Patient", "_elements=identifier,%20name,,Patient.birthDate", ParseOptions{},
			&fhir.Query{Type: "Patient", Count: 50, Elements: []string{"identifier", "name", "Patient.birthDate"}}},
		{"_format and _pretty ignored", "Patient", "_format=json&_pretty=true", ParseOptions{Strict: true},
			&fhir.Query{Type: "Patient", Count: 50}},
		{"_include", "Observation", "_include=Observation:subject&_include=Observation:device:Device", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Include: []fhir.Include{
				{Source: "Observation", Param: "subject"},
				{Source: "Observation", Param: "device", Target: "Device"},
			}}},
		{"_include:iterate", "Observation", "_include:iterate=Device:patient", ParseOptions{},
			&fhir.Query{Type: "Observation", Count: 50, Include: []fhir.Include{
				{Source: "Device", Param: "patient", Iterate: true},
			}}},
		{"_revinclude", "Patient", "_revinclude=Device:patient&_revinclude=Observation:subject:Patient", ParseOptions{},
			&fhir.Query{Type: "Patient", Count: 50, RevInclude: []fhir.Include{
				{Source: "Device", Param: "patient"},
				{Source: "Observation", Param: "subject", Target: "Patient"},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ignored, err := parseQuery(t, r, tt.typ, tt.raw, tt.opts)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(ignored) > 0 {
				t.Errorf("ignored = %v, want none", ignored)
			}
			if diff := cmp.Diff(tt.want, q); diff != "" {
				t.Errorf("Query (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLenientAndStrict(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name        string
		raw         string
		wantIgnored []string
		strictKind  fhir.Kind
	}{
		{"unknown parameter", "foo=bar&status=final", []string{"foo"}, fhir.KindInvalid},
		{"unknown parameter with empty value", "foo=&status=final", []string{"foo"}, fhir.KindInvalid},
		{"unknown underscore parameter", "_tag=x&status=final", []string{"_tag"}, fhir.KindInvalid},
		{"chained parameter", "subject.name=peter&status=final", []string{"subject.name"}, fhir.KindNotSupported},
		{"chained with type", "subject:Patient.name=peter&status=final", []string{"subject:Patient.name"}, fhir.KindNotSupported},
		{"_has", "_has:Observation:patient:code=1234&status=final", []string{"_has:Observation:patient:code"}, fhir.KindNotSupported},
		{"parameter of another type", "gender=male&status=final", []string{"gender"}, fhir.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ignored, err := parseQuery(t, r, "Observation", tt.raw, ParseOptions{})
			if err != nil {
				t.Fatalf("lenient Parse: %v", err)
			}
			if diff := cmp.Diff(tt.wantIgnored, ignored); diff != "" {
				t.Errorf("ignored (-want +got):\n%s", diff)
			}
			wantParams := []fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "final"}}}}
			if diff := cmp.Diff(wantParams, q.Params); diff != "" {
				t.Errorf("lenient Params (-want +got):\n%s", diff)
			}
			_, _, err = parseQuery(t, r, "Observation", tt.raw, ParseOptions{Strict: true})
			checkErr(t, err, tt.strictKind)
		})
	}
}

// checkErr asserts err is a *fhir.Error of kind k with a bounded message.
func checkErr(t *testing.T, err error, k fhir.Kind) {
	t.Helper()
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *fhir.Error kind %d", err, err, k)
	}
	if fe.Kind != k {
		t.Errorf("kind = %d, want %d (%v)", fe.Kind, k, err)
	}
	if len(fe.Msg) > 300 {
		t.Errorf("message is %d bytes long: %q", len(fe.Msg), fe.Msg)
	}
}

func TestParseErrors(t *testing.T) {
	r := NewRegistry()
	long := strings.Repeat("x", 500)
	tests := []struct {
		name     string
		typ      string
		raw      string
		kind     fhir.Kind
		mentions string // the message names this (the parameter)
	}{
		{"unsupported type", "Medication", "code=x", fhir.KindNotSupported, ""},
		{"bad date", "Observation", "date=2024-13", fhir.KindInvalid, "date"},
		{"bad day", "Observation", "date=2023-02-29", fhir.KindInvalid, "date"},
		{"bad hour", "Observation", "date=2024-01-01T25:00", fhir.KindInvalid, "date"},
		{"hour only", "Observation", "date=2024-01-01T10", fhir.KindInvalid, "date"},
		{"compact date", "Observation", "date=20240101", fhir.KindInvalid, "date"},
		{"bad zone", "Observation", "date=2024-01-01T10:00%2B15:00", fhir.KindInvalid, "date"},
		{"zone on date", "Observation", "date=2024-01-01Z", fhir.KindInvalid, "date"},
		{"bad prefix", "Observation", "date=xx2024", fhir.KindInvalid, "date"},
		{"year zero", "Observation", "date=0000", fhir.KindInvalid, "date"},
		{"bad number", "Observation", "value-quantity=abc", fhir.KindInvalid, "value-quantity"},
		{"bad number dot", "Observation", "value-quantity=1.", fhir.KindInvalid, "value-quantity"},
		{"huge exponent", "Observation", "value-quantity=1e99999", fhir.KindInvalid, "value-quantity"},
		{"overflow", "Observation", "value-quantity=1e400", fhir.KindInvalid, "value-quantity"},
		{"quantity two parts", "Observation", "value-quantity=5.4|mg", fhir.KindInvalid, "value-quantity"},
		{"quantity four parts", "Observation", "value-quantity=5.4|a|b|c", fhir.KindInvalid, "value-quantity"},
		{"missing not boolean", "Observation", "code:missing=maybe", fhir.KindInvalid, "code"},
		{"unknown modifier", "Observation", "code:foo=x", fhir.KindInvalid, "code"},
		{"string modifier on token", "Observation", "code:exact=x", fhir.KindInvalid, "code"},
		{"token modifier on string", "Patient", "name:not=x", fhir.KindInvalid, "name"},
		{"modifier on date", "Observation", "date:exact=2024", fhir.KindInvalid, "date"},
		{":identifier not supported", "Observation", "subject:identifier=urn:x|1", fhir.KindNotSupported, "subject"},
		{":below not supported", "Observation", "code:below=x", fhir.KindNotSupported, "code"},
		{":in not supported", "Observation", "code:in=http://vs", fhir.KindNotSupported, "code"},
		{"_id modifier", "Observation", "_id:not=x", fhir.KindNotSupported, "_id"},
		{"bad _id", "Observation", "_id=a/b", fhir.KindInvalid, "_id"},
		{"reference wrong target", "Observation", "patient=Device/d1", fhir.KindInvalid, "patient"},
		{"reference :Type not a target", "Observation", "subject:Practitioner=x", fhir.KindInvalid, "subject"},
		{"reference :Type mismatch", "Observation", "subject:Patient=Device/d1", fhir.KindInvalid, "subject"},
		{"empty token", "Observation", "code=|", fhir.KindInvalid, "code"},
		{"_count negative", "Observation", "_count=-1", fhir.KindInvalid, "_count"},
		{"_count not a number", "Observation", "_count=ten", fhir.KindInvalid, "_count"},
		{"_count twice", "Observation", "_count=1&_count=2", fhir.KindInvalid, "_count"},
		{"_count with modifier", "Observation", "_count:x=1", fhir.KindInvalid, "_count"},
		{"_offset negative", "Observation", "_offset=-5", fhir.KindInvalid, "_offset"},
		{"_offset overflow", "Observation", "_offset=99999999999999999999999", fhir.KindInvalid, "_offset"},
		{"_sort unknown", "Observation", "_sort=foo", fhir.KindInvalid, "_sort"},
		{"_sort empty key", "Observation", "_sort=date,,code", fhir.KindInvalid, "_sort"},
		{"_sort only minus", "Observation", "_sort=-", fhir.KindInvalid, "_sort"},
		{"_sort reference", "Observation", "_sort=subject", fhir.KindInvalid, "_sort"},
		{"_sort long value capped", "Observation", "_sort=" + long, fhir.KindInvalid, "_sort"},
		{"_total bad", "Observation", "_total=all", fhir.KindInvalid, "_total"},
		{"_summary bad", "Observation", "_summary=yes", fhir.KindInvalid, "_summary"},
		{"_elements bad", "Observation", "_elements=a%20b", fhir.KindInvalid, "_elements"},
		{"_include star", "Observation", "_include=*", fhir.KindNotSupported, "_include"},
		{"_include type star", "Observation", "_include=Observation:*", fhir.KindNotSupported, "_include"},
		{"_include unknown param", "Observation", "_include=Observation:foo", fhir.KindInvalid, "_include"},
		{"_include not a reference", "Observation", "_include=Observation:code", fhir.KindInvalid, "_include"},
		{"_include unknown type", "Observation", "_include=Medication:subject", fhir.KindInvalid, "_include"},
		{"_include bad target", "Observation", "_include=Observation:subject:Practitioner", fhir.KindInvalid, "_include"},
		{"_include other source", "Observation", "_include=Device:patient", fhir.KindInvalid, "_include"},
		{"_include malformed", "Observation", "_include=Observation", fhir.KindInvalid, "_include"},
		{"_include bad modifier", "Observation", "_include:deep=Observation:subject", fhir.KindInvalid, "_include"},
		{"_revinclude not pointing here", "Observation", "_revinclude=Device:patient", fhir.KindInvalid, "_revinclude"},
		{"_revinclude long value capped", "Observation", "_revinclude=" + long, fhir.KindInvalid, "_revinclude"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, strict := range []bool{true, false} {
				_, _, err := parseQuery(t, r, tt.typ, tt.raw, ParseOptions{Strict: strict})
				checkErr(t, err, tt.kind)
				if err != nil && !strings.Contains(err.Error(), tt.mentions) {
					t.Errorf("error %q does not name %q", err, tt.mentions)
				}
				if err != nil && strings.Contains(err.Error(), long[:100]) {
					t.Errorf("error echoes a long value: %q", err)
				}
			}
		})
	}
}

func TestParseDeterministicOrder(t *testing.T) {
	r := NewRegistry()
	v := url.Values{"status": {"final"}, "code": {"a"}, "subject": {"Patient/1"}, "date": {"2024"}}
	first, _, err := r.Parse("Observation", v, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range first.Params {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"code", "date", "status", "subject"}, names); diff != "" {
		t.Errorf("param order (-want +got):\n%s", diff)
	}
	for range 20 {
		again, _, _ := r.Parse("Observation", v, ParseOptions{})
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("Parse is not deterministic (-first +again):\n%s", diff)
		}
	}
}

func TestCapString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), strings.Repeat("a", 64) + "..."},
		// A 2-byte rune straddling byte 64 is dropped whole.
		{strings.Repeat("a", 63) + "éééé", strings.Repeat("a", 63) + "..."},
		{strings.Repeat("é", 40), strings.Repeat("é", 32) + "..."},
	}
	for _, tt := range tests {
		if got := capString(tt.in); got != tt.want {
			t.Errorf("capString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
