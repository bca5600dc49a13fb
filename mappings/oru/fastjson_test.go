package oru

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkSame decodes b with the fast decoder and with encoding/json: when
// the fast decoder accepts b, encoding/json must accept it too and mean the
// same. It returns whether the fast path accepted.
func checkSame[T any](t testing.TB, b []byte, dec func(*scanner, *T) bool) bool {
	t.Helper()
	var fast, std T
	ok := fastDecode(b, &fast, dec)
	err := json.Unmarshal(b, &std)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, b)
	}
	if diff := cmp.Diff(std, fast); diff != "" {
		t.Fatalf("fast path differs from encoding/json (-std +fast) for %q:\n%s", b, diff)
	}
	return true
}

func fhirobsFixtures(t testing.TB) (obs, devs [][]byte) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "fhirobs", "testdata", "*.fhir.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pair []json.RawMessage
		if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
			t.Fatalf("fixture %s: %v", f, err)
		}
		devs, obs = append(devs, pair[0]), append(obs, pair[1])
	}
	return obs, devs
}

func TestFastDecodeFixtures(t *testing.T) {
	obs, devs := fhirobsFixtures(t)
	for i := range obs {
		if !checkSame(t, obs[i], decObservation) || !checkSame(t, devs[i], decDevice) {
			t.Errorf("fixture %d: fast path not taken for stored FHIR JSON", i)
		}
	}
	for _, tt := range []struct {
		file string
		ok   func([]byte) bool
	}{
		{"patient.json", func(b []byte) bool { return checkSame(t, b, decPatient) }},
		{"encounter.json", func(b []byte) bool { return checkSame(t, b, decEncounter) }},
		{"location.json", func(b []byte) bool { return checkSame(t, b, decLocation) }},
		{"device_mds.json", func(b []byte) bool { return checkSame(t, b, decDevice) }},
	} {
		t.Run(tt.file, func(t *testing.T) {
			if !tt.ok(readFile(t, filepath.Join("testdata", tt.file))) {
				t.Error("fast path not taken for stored FHIR JSON")
			}
		})
	}
}

func TestFastDecodeEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		in   string
		fast bool // whether the fast path should take it
	}{
		{"minimal", `{"resourceType":"Observation","id":"a"}`, true},
		{"whitespace", " \t\r\n{ \"id\" : \"a\" , \"status\":\"final\" }\n", true},
		{"empty object", `{}`, true},
		{"nulls", `{"id":null,"code":null,"valueQuantity":null,"component":null,"valueString":null}`, true},
		{"null elements", `{"component":[null,{"code":{"coding":[null]}}]}`, true},
		{"empty arrays", `{"component":[],"code":{"coding":[]}}`, true},
		{"numbers", `{"valueQuantity":{"value":-1.5e+3},"valueSampledData":{"origin":{"value":0},"factor":0.25,"period":10,"data":"1 2"}}`, true},
		{"unknown members of every type", `{"meta":{"a":[1,true,false,null,{"b":"\u00e9\n"}]},"x":-0.0e1,"code":{"y":{}}}`, true},
		{"non-ASCII value", `{"id":"é漢字"}`, true},
		{"escape in a known string", `{"id":"a\"b"}`, false},
		{"duplicate member", `{"id":"a","id":"b"}`, false},
		{"case variant member", `{"ID":"a"}`, false},
		{"case variant of a known member", `{"id":"a","Id":"b"}`, false},
		{"kelvin sign member", "{\"\u212aind\":\"x\",\"id\":\"a\"}", false},
		{"number as string", `{"valueQuantity":{"value":"12"}}`, false},
		{"string as number", `{"id":12}`, false},
		{"object for a string", `{"id":{}}`, false},
		{"top-level null", `null`, false},
		{"top-level array", `[]`, false},
		{"trailing garbage", `{"id":"a"} x`, false},
		{"truncated", `{"id":"a"`, false},
		{"trailing comma", `{"id":"a",}`, false},
		{"leading zero", `{"valueQuantity":{"value":01}}`, false},
		{"bare point", `{"valueQuantity":{"value":1.}}`, false},
		{"control character", "{\"id\":\"a\tb\"}", false},
		{"invalid UTF-8", "{\"id\":\"\xff\"}", false},
		{"bad escape in skipped value", `{"x":"\q"}`, false},
		{"deep nesting", `{"x":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkSame(t, []byte(tt.in), decObservation); got != tt.fast {
				t.Errorf("fast path taken = %v, want %v", got, tt.fast)
			}
		})
	}
}

// FuzzFastDecode holds the fast decoder to encoding/json's meaning on any
// input it accepts.
func FuzzFastDecode(f *testing.F) {
	obs, devs := fhirobsFixtures(f)
	for _, b := range append(obs, devs...) {
		f.Add(b)
	}
	for _, name := range []string{"patient.json", "encounter.json", "location.json", "device_mds.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSame(t, b, decObservation)
		checkSame(t, b, decPatient)
		checkSame(t, b, decDevice)
		checkSame(t, b, decEncounter)
		checkSame(t, b, decLocation)
	})
}
