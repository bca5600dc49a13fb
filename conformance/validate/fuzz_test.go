package validate_test

import (
	"errors"
	"testing"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// FuzzValidate checks Validate never panics, fails only with *fhir.Error,
// and that canonical JSON is a fixed point: it validates again, to itself.
//
//	go test ./conformance/validate -run '^$' -fuzz FuzzValidate -fuzztime 60s
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		observation1K,
		`{"resourceType":"Patient","id":"p1","birthDate":"1970-03-30","_birthDate":{"extension":[{"url":"http://x","valueDateTime":"1970-03-30T14:35:45-05:00"}]}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Device","id":"d"}],"device":{"reference":"#d"}}`,
		`{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"},null]}]}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient"}}]}`,
		// Found by fuzzing: google/fhir dropped the empty status and
		// accepted "Code" (now rejected by lint).
		`{"resourceType":"Observation","id":"0","meta":{"profile":["0"]},"status":"","Code":{}}`,
		`{"resourceType":"Unknown"}`,
		`{"resourceType":7}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		typ, id, canonical, err := v.Validate(body)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *fhir.Error: %v", err, err)
			}
			if fe.Msg == "" {
				t.Fatalf("error without message: %#v", fe)
			}
			return
		}
		if typ == "" {
			t.Fatalf("no type for a valid resource: %s", canonical)
		}
		typ2, id2, canonical2, err := v.Validate(canonical)
		if err != nil {
			t.Fatalf("canonical JSON does not validate: %v\ninput: %q\ncanonical: %s", err, body, canonical)
		}
		if typ2 != typ || id2 != id || string(canonical2) != string(canonical) {
			t.Fatalf("canonical JSON is not a fixed point:\ninput: %q\nfirst:  %s\nsecond: %s", body, canonical, canonical2)
		}
	})
}
