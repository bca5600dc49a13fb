package validate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/conformance/validate"
)

// TestBuiltResourcesAreValidR4 runs every resource Pulsewire builds itself
// from device readings (the mappings/fhirobs golden files: Device and
// Observation per built-in template) through the R4 validator: ingestion
// stores them without a client in between, so they must be valid as built.
func TestBuiltResourcesAreValidR4(t *testing.T) {
	files, err := filepath.Glob("../../mappings/fhirobs/testdata/*.fhir.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fhirobs golden files found (%v)", err)
	}
	v, err := validate.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var resources []json.RawMessage
		if err := json.Unmarshal(b, &resources); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, r := range resources {
			if _, _, _, err := v.Validate(r); err != nil {
				t.Errorf("%s resource %d: %v", filepath.Base(f), i, err)
			}
			n++
		}
	}
	if n < 2*len(files) {
		t.Errorf("validated %d resources from %d files, want a Device and an Observation each", n, len(files))
	}
}
