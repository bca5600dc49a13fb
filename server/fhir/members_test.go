package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// membersRef is the straightforward Members (a token decoder): the fast
// scanner must agree with it on every input.
func membersRef(b []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	ms := []Member{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		ms = append(ms, Member{key, raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(b, " \t\r\n"))) {
		return nil, errNotObject // trailing data
	}
	return ms, nil
}

var errNotObject = json.Unmarshal([]byte("x"), new(any))

var membersSeeds = []string{
	`{}`,
	` { "a" : 1 , "b":[1, {"c":"}"}], "d\"e": "x\\\"y", "\u00e9":{"f":[]}, "g":null,"h":true,"i":-1.50e3 } `,
	`{"resourceType":"Observation","valueQuantity":{"value":72.0},"note":[{"text":"a,b]}"}]}`,
	`[1,2]`, `"s"`, `{"a":1,}`, `{"a" 1}`, `{"a":1}{}`, ``, `{"a":"\ud800"}`,
}

func TestMembersMatchesDecoder(t *testing.T) {
	for _, s := range membersSeeds {
		checkMembers(t, []byte(s))
	}
}

func FuzzMembers(f *testing.F) {
	for _, s := range membersSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkMembers)
}

func checkMembers(t *testing.T, b []byte) {
	want, werr := membersRef(b)
	got, gerr := Members(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("Members(%q): error %v, decoder error %v", b, gerr, werr)
	}
	if werr != nil {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Members(%q) (-decoder +fast):\n%s", b, diff)
	}
}

func BenchmarkStampMeta(b *testing.B) {
	body := []byte(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},{"system":"urn:iso:std:iso:11073:10101","code":"147842"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-01T10:00:00Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"device":{"reference":"Device/d1"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := StampMeta(body, "o1", 1, time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncodeMembersQuotesKeysAsJSON(t *testing.T) {
	for _, k := range []string{"resourceType", "a<b", "é", "q\"", "back\\slash", "tab\t", "_x1"} {
		got := EncodeMembers([]Member{{k, json.RawMessage(`1`)}})
		want, _ := json.Marshal(map[string]int{k: 1})
		if string(got) != string(want) {
			t.Errorf("EncodeMembers key %q = %s, want %s", k, got, want)
		}
	}
}
