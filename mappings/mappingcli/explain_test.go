package mappingcli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestExplain: testdata/<case>.payload.json explained with the built-in
// templates gives testdata/<case>.out (the report, the error and the
// resources, as `pulsewire mapping test` prints them).
func TestExplain(t *testing.T) {
	set, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.payload.json"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least 3 cases in testdata, got %d (%v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".payload.json")
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			resources, report, err := Explain(set, payload)
			var out bytes.Buffer
			out.WriteString(report)
			out.WriteString("error: ")
			if err != nil {
				out.WriteString(err.Error())
			} else {
				out.WriteString("none")
			}
			out.WriteString("\n")
			for _, r := range resources {
				out.Write(r)
				out.WriteString("\n")
				if bytes.Contains(r, []byte(`"resourceType": "Observation"`)) && bytes.Contains(r, []byte(`"profile"`)) {
					for _, p := range fhirobs.CheckVitalSigns(r) {
						t.Errorf("profile check: %v", p)
					}
				}
			}
			golden := filepath.Join("testdata", name+".out")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	set, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		kind    fhir.Kind
		report  string // a line the report must have
	}{
		{"not JSON", `{"heartRate":`, fhir.KindInvalid, "payload: payload is not valid JSON: unexpected EOF"},
		{"nothing matches", `{"deviceId":"d","time":"2026-03-01T10:00:00Z","pulse":70}`, fhir.KindUnprocessable,
			"no match  template heartrate: $.heartRate not found in payload"},
		{"one fails", `{"deviceId":"d","time":"2026-03-01T10:00:00Z","heartRate":70,"spo2":"97%"}`, fhir.KindUnprocessable,
			"FAILED    template spo2: $.spo2: is a string, want a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, report, err := Explain(set, []byte(tt.payload))
			if !fhir.IsKind(err, tt.kind) {
				t.Errorf("err = %v, want kind %v", err, tt.kind)
			}
			if !strings.Contains(report, tt.report+"\n") {
				t.Errorf("report lacks %q:\n%s", tt.report, report)
			}
		})
	}
}
