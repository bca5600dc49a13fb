package fhir

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sampleObservation = `{
  "resourceType": "Observation", "id": "bp-1", "status": "final",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">120/80 mm[Hg] \u2014 caf\u00e9</div>"},
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
  "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-10T14:30:00+01:00",
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 80.50, "unit": "mm[Hg]"}}
  ]
}`

// decodeCases are inputs where a hand-written JSON reader typically
// departs from encoding/json: escapes, surrogates, invalid UTF-8, number
// grammar, literals, nesting, trailing data, duplicate keys.
var decodeCases = []string{
	sampleObservation,
	`{}`, ` {"resourceType" : "Patient" } `, `{"a":1}x`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[]`, `"x"`, ``, `{`,
	`{"resourceType":"Observation","resourceType":5}`, `{"resourceType":null}`, `{"a":1,"a":{"b":2}}`,
	`{"s":"\u00e9\n\t\"\\\/\b\f\r"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\ud83d"}`, `{"s":"\ud83dx"}`,
	`{"s":"\ude00\ud83d"}`, `{"s":"\ud83d\u0041"}`, `{"s":"\ud83d\uzzzz"}`, `{"s":"\u12"}`, `{"s":"\x"}`,
	"{\"s\":\"a\x01b\"}", "{\"s\":\"caf\xc3\xa9\"}", "{\"s\":\"bad\xff\xfe\"}", "{\"s\":\"cut\xe2\x82\"}",
	"{\"k\xff\":1}", `{"\u0061":1}`,
	`{"n":[0,-0,1.5,-1.5e10,1E+2,1e-2,12345678901234567890123]}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`,
	`{"n":-}`, `{"n":+1}`, `{"n":1e}`, `{"n":NaN}`, `{"n":Infinity}`, `{"n":0x10}`,
	`{"l":[true,false,null]}`, `{"l":tru}`, `{"l":nul}`, `{"l":True}`,
	`{"a":[[[[{"b":[]}]]]]}`, `{"a":[1 2]}`, `{"a":[1,]}`, "{\"a\":\n[\r1\t]\n}",
	`{"a":"` + strings.Repeat("x", 300) + `"}`,
	`{"deep":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
	`{"deep":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"deep":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}`,
}

// checkDecode holds DecodeMembers to encoding/json on b: it accepts b
// exactly when json.Valid does and b is an object, and then decodes the
// members keep selects, and resourceType, as json.Decoder with UseNumber
// does.
func checkDecode(t *testing.T, b []byte, keep func(string) bool) {
	t.Helper()
	if got, want := ValidJSON(b), json.Valid(b); got != want {
		t.Fatalf("ValidJSON(%.80q) = %v, json.Valid %v", b, got, want)
	}
	root, rt, err := DecodeMembers(b, keep)
	var want map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	valid := json.Valid(b) && dec.Decode(&want) == nil && want != nil
	if !valid {
		if err == nil {
			t.Fatalf("decodeMembers accepted %.80q, which encoding/json refuses as an object", b)
		}
		return
	}
	if err != nil {
		t.Fatalf("decodeMembers refused %.80q: %v", b, err)
	}
	wantRT, _ := want["resourceType"].(string)
	if rt != wantRT {
		t.Errorf("resourceType of %.80q = %q; want %q", b, rt, wantRT)
	}
	for k := range want {
		if k == "resourceType" || !keep(k) {
			delete(want, k)
		}
	}
	if !reflect.DeepEqual(root, want) {
		t.Errorf("DecodeMembers(%.80q) =\n%#v\nwant\n%#v", b, root, want)
	}
}

func keepAll(string) bool { return true }

func TestDecodeMembersMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		checkDecode(t, []byte(c), keepAll)
	}
	// Selected members only: the others are validated, not decoded.
	onlyCode := func(k string) bool { return k == "code" }
	checkDecode(t, []byte(sampleObservation), onlyCode)
	checkDecode(t, []byte(`{"code":1,"text":{"div":"<div>\u00e9</div>"}}`), onlyCode)
	checkDecode(t, []byte(`{"code":1,"text":{"div":"\x"}}`), onlyCode)

	// And every JSON file of the repository's fixtures and mappings.
	n := 0
	for _, dir := range []string{"../../fixtures", "../../mappings"} {
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || filepath.Ext(path) != ".json" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n++
			checkDecode(t, b, keepAll)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 10 {
		t.Errorf("found %d JSON files under fixtures and mappings; the corpus is missing", n)
	}
}

func FuzzDecodeMembers(f *testing.F) {
	for _, c := range decodeCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b, keepAll)
		checkDecode(t, b, func(k string) bool { return len(k)%2 == 0 })
	})
}
