package fhirobs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// build maps the golden payload of a built-in template to its Device and
// Observation.
func build(t *testing.T, ts *device.Templates, name string) (dev, obs []byte) {
	t.Helper()
	payload, err := os.ReadFile(filepath.Join("..", "device", "testdata", name+".payload.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Evaluate(payload)
	if err != nil {
		t.Fatal(err)
	}
	var m *device.Measurement
	for i := range res.Measurements {
		if res.Measurements[i].TemplateName == name {
			m = &res.Measurements[i]
		}
	}
	if m == nil {
		t.Fatalf("template %s made no measurement: %v", name, res.Err())
	}
	devID := DeviceResourceID(m.DeviceIdentifierSystem, m.DeviceID)
	patient := m.PatientID
	if patient == "" {
		patient = "pat-0042"
	}
	if dev, err = Device(devID, m.DeviceIdentifiers, DeviceInfo{Manufacturer: "Sample Devices Inc."}); err != nil {
		t.Fatal(err)
	}
	if obs, err = Observation(m, Refs{ID: "obs-" + name, Patient: patient, Device: devID}); err != nil {
		t.Fatal(err)
	}
	return dev, obs
}

// TestGolden: testdata/<template>.fhir.json is the Device and Observation
// made from ../device/testdata/<template>.payload.json by each built-in
// template; every Observation passes CheckVitalSigns.
func TestGolden(t *testing.T) {
	ts, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ts.Names() {
		t.Run(name, func(t *testing.T) {
			dev, obs := build(t, ts, name)
			for _, p := range CheckVitalSigns(obs) {
				t.Errorf("profile check: %v", p)
			}
			var buf bytes.Buffer
			buf.WriteString("[\n")
			for i, r := range [][]byte{dev, obs} {
				if i > 0 {
					buf.WriteString(",\n")
				}
				if err := json.Indent(&buf, r, "", "  "); err != nil {
					t.Fatal(err)
				}
			}
			buf.WriteString("\n]\n")
			path := filepath.Join("testdata", name+".fhir.json")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// edit returns obs changed by fn (on its decoded form).
func edit(t *testing.T, obs []byte, fn func(o map[string]any)) []byte {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(obs, &o); err != nil {
		t.Fatal(err)
	}
	fn(o)
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckVitalSignsCatches(t *testing.T) {
	ts, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	_, hr := build(t, ts, "heartrate")
	_, bp := build(t, ts, "bloodpressure")
	_, spo2 := build(t, ts, "spo2")
	coding := func(o map[string]any) []any { return o["code"].(map[string]any)["coding"].([]any) }
	tests := []struct {
		name string
		obs  []byte
		want []string // "path: message"
	}{
		{"no status", edit(t, hr, func(o map[string]any) { delete(o, "status") }),
			[]string{"Observation.status: status is missing or not an observation-status code"}},
		{"no category", edit(t, hr, func(o map[string]any) { delete(o, "category") }),
			[]string{"Observation.category: a category coding vital-signs (observation-category) is required"}},
		{"wrong unit", edit(t, hr, func(o map[string]any) { o["valueQuantity"].(map[string]any)["code"] = "/s" }),
			[]string{"Observation.valueQuantity.code: code must be the UCUM unit /min"}},
		{"not UCUM", edit(t, hr, func(o map[string]any) { o["valueQuantity"].(map[string]any)["system"] = "urn:x" }),
			[]string{"Observation.valueQuantity.system: system must be http://unitsofmeasure.org"}},
		{"no value", edit(t, hr, func(o map[string]any) { delete(o, "valueQuantity") }),
			[]string{"Observation.value[x]: a value, a dataAbsentReason, components or members are required (vs-2)",
				"Observation.valueQuantity: heart-rate needs valueQuantity or dataAbsentReason"}},
		{"MDC first", edit(t, hr, func(o map[string]any) { c := coding(o); c[0], c[1] = c[1], c[0] }),
			[]string{"Observation.code.coding: the LOINC coding must come first"}},
		{"no MDC", edit(t, hr, func(o map[string]any) { o["code"].(map[string]any)["coding"] = coding(o)[:1] }),
			[]string{"Observation.code.coding: heart-rate requires the MDC code 147842 (MDC_ECG_HEART_RATE)"}},
		{"spo2 without 2708-6", edit(t, spo2, func(o map[string]any) { o["code"].(map[string]any)["coding"] = coding(o)[1:] }),
			[]string{"Observation.code.coding: spo2 requires the LOINC code 2708-6"}},
		{"no profile", edit(t, hr, func(o map[string]any) { delete(o, "meta") }),
			[]string{"Observation.meta.profile: meta.profile must name http://hl7.org/fhir/StructureDefinition/heartrate"}},
		{"no subject", edit(t, hr, func(o map[string]any) { o["subject"] = map[string]any{"reference": "Group/1"} }),
			[]string{"Observation.subject: subject must reference a Patient"}},
		{"effective to the month", edit(t, hr, func(o map[string]any) { o["effectiveDateTime"] = "2026-03" }),
			[]string{"Observation.effectiveDateTime: effectiveDateTime must be a dateTime to at least the day"}},
		{"unknown code", edit(t, hr, func(o map[string]any) {
			o["code"] = map[string]any{"coding": []any{map[string]any{"system": vocab.SystemLOINC, "code": "0000-0"}}}
		}), []string{"Observation.code: code has no LOINC or MDC coding of a known vital"}},
		{"bp without diastolic", edit(t, bp, func(o map[string]any) {
			o["component"] = o["component"].([]any)[:1]
		}), []string{"Observation.component: the bp profile requires a component bp-diastolic (LOINC 8462-4)"}},
		{"bp component in kPa", edit(t, bp, func(o map[string]any) {
			o["component"].([]any)[0].(map[string]any)["valueQuantity"].(map[string]any)["code"] = "kPa"
		}), []string{"Observation.component[0].valueQuantity.code: code must be the UCUM unit mm[Hg]"}},
		{"not an Observation", []byte(`{"resourceType":"Patient"}`), []string{"Observation.resourceType: resourceType must be Observation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			for _, e := range CheckVitalSigns(tt.obs) {
				if e.Kind != fhir.KindUnprocessable || len(e.Expression) != 1 {
					t.Errorf("problem %v: want KindUnprocessable with one path", e)
				}
				got = append(got, strings.Join(e.Expression, ",")+": "+e.Msg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestObservationErrors(t *testing.T) {
	ts, err := device.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Evaluate([]byte(`{"deviceId":"d","time":"2026-03-01T10:00:00Z","heartRate":70}`))
	if err != nil || len(res.Measurements) != 1 {
		t.Fatal(err, res.Err())
	}
	m := &res.Measurements[0]
	noValue := *m
	noValue.Value = nil
	tests := []struct {
		name string
		m    *device.Measurement
		refs Refs
		kind fhir.Kind
		path string
	}{
		{"no patient", m, Refs{}, fhir.KindUnprocessable, "Observation.subject"},
		{"bad patient id", m, Refs{Patient: "a/b"}, fhir.KindInvalid, "Observation.subject"},
		{"bad device id", m, Refs{Patient: "p", Device: "x y"}, fhir.KindInvalid, "Observation.device"},
		{"bad id", m, Refs{Patient: "p", ID: "é"}, fhir.KindInvalid, "Observation.id"},
		{"no value", &noValue, Refs{Patient: "p"}, fhir.KindUnprocessable, "Observation.value[x]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Observation(tt.m, tt.refs)
			fe, ok := err.(*fhir.Error)
			if !ok || fe.Kind != tt.kind || len(fe.Expression) == 0 || fe.Expression[0] != tt.path {
				t.Errorf("Observation = %v, want kind %v at %s", err, tt.kind, tt.path)
			}
		})
	}
}

func TestDeviceAndMetric(t *testing.T) {
	ids := []device.Identifier{{System: SystemEUI64, Value: "00-1C-05-FF-FE-00-00-2A"}, {System: SystemSerial, Value: "SN-1"}}
	mdsType := vocab.Coding{System: vocab.SystemMDC, Code: "69798", Display: "MDC_DEV_ANALY_SAT_O2_MDS"}
	d, err := Device("dev-1", ids, DeviceInfo{Manufacturer: "M", ModelName: "X1", Type: &mdsType, Patient: "pat-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Device","id":"dev-1","identifier":[{"system":"urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680","value":"00-1C-05-FF-FE-00-00-2A"},{"system":"urn:pulsewire:device-serial","value":"SN-1"}],"status":"active","manufacturer":"M","serialNumber":"SN-1","deviceName":[{"name":"X1","type":"model-name"}],"type":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"69798","display":"MDC_DEV_ANALY_SAT_O2_MDS"}]},"patient":{"reference":"Patient/pat-1"}}`
	if diff := cmp.Diff(want, string(d)); diff != "" {
		t.Errorf("Device (-want +got):\n%s", diff)
	}
	if _, err := Device("", nil, DeviceInfo{}); !fhir.IsKind(err, fhir.KindUnprocessable) {
		t.Errorf("Device without identifiers = %v", err)
	}
	spo2, _ := vocab.ByKey(vocab.SpO2)
	dm, err := DeviceMetric("dev-1-spo2", "dev-1", "spo2-1", spo2)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"resourceType":"DeviceMetric","id":"dev-1-spo2","identifier":[{"system":"urn:pulsewire:device-channel","value":"dev-1/spo2-1"}],"type":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"150456","display":"MDC_PULS_OXIM_SAT_O2"}],"text":"Oxygen saturation in Arterial blood by Pulse oximetry"},"unit":{"coding":[{"system":"http://unitsofmeasure.org","code":"%","display":"%"},{"system":"urn:iso:std:iso:11073:10101","code":"262688","display":"MDC_DIM_PERCENT"}]},"source":{"reference":"Device/dev-1"},"category":"measurement"}`
	if diff := cmp.Diff(want, string(dm)); diff != "" {
		t.Errorf("DeviceMetric (-want +got):\n%s", diff)
	}
	if _, err := DeviceMetric("", "", "", spo2); !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("DeviceMetric without device = %v", err)
	}
	a, b := DeviceResourceID(SystemEUI64, "x"), DeviceResourceID(SystemSerial, "x")
	if a == b || !fhir.ValidID(a) || a != DeviceResourceID(SystemEUI64, "x") || strings.Contains(a, "x") && len(a) != 24 {
		t.Errorf("DeviceResourceID: %q %q", a, b)
	}
}
