package examples_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/conformance/examples"
)

func TestSemanticDiff(t *testing.T) {
	tests := []struct {
		name     string
		a, b     string
		wantSame bool
	}{
		{"whitespace and order", `{"a":1,"b":[1,2]}`, "{\n \"b\": [1, 2],\n \"a\": 1\n}", true},
		{"decimal precision", `{"v":1.50}`, `{"v":1.5}`, false},
		{"array order", `{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{"missing member", `{"a":1,"b":2}`, `{"a":1}`, false},
		{"string vs number", `{"a":"1"}`, `{"a":1}`, false},
		{"invalid JSON", `{"a":`, `{"a":1}`, false},
		{"trailing data", `{"a":1} {}`, `{"a":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := examples.SemanticDiff([]byte(tt.a), []byte(tt.b))
			if (d == "") != tt.wantSame {
				t.Errorf("SemanticDiff = %q, want same=%v", d, tt.wantSame)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"Patient-a.json":      `{"resourceType":"Patient","id":"a"}`,
		"Observation-b.json":  `{"id":"b","meta":{"x":[1,{"y":2}]},"resourceType":"Observation"}`,
		"Account-c.json":      `{"resourceType":"Account"}`,
		"package.json":        `{"name":"x"}`,
		"not-an-object.json":  `[1]`,
		"broken.json":         `{"resourceType":`,
		"Patient-d.xml":       `<Patient/>`,
		"misnamed-patient.js": `{"resourceType":"Patient"}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := examples.Load(dir, []string{"Patient", "Observation"})
	if err != nil {
		t.Fatal(err)
	}
	want := []examples.Example{
		{Name: "Observation-b.json", Type: "Observation", Body: []byte(files["Observation-b.json"])},
		{Name: "Patient-a.json", Type: "Patient", Body: []byte(files["Patient-a.json"])},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	if _, err := examples.Load(filepath.Join(dir, "missing"), examples.Types); err == nil {
		t.Error("Load of a missing directory succeeded")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(examples.EnvDir, "/some/where")
	if got := examples.DefaultDir(); got != "/some/where" {
		t.Errorf("DefaultDir with $%s = %q", examples.EnvDir, got)
	}
	t.Setenv(examples.EnvDir, "")
	if got := examples.DefaultDir(); !strings.HasSuffix(got, filepath.Join(".cache", "fhir-examples")) {
		t.Errorf("DefaultDir = %q, want <module root>/.cache/fhir-examples", got)
	}
}
