package device

import (
	"bytes"
	"encoding/json"
	"flag"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func builtin(t testing.TB) *Templates {
	t.Helper()
	ts, err := Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	return ts
}

// TestBuiltinGolden evaluates testdata/<template>.payload.json with the
// built-in templates and compares the Measurements with
// testdata/<template>.measurement.json. Every built-in template has one.
func TestBuiltinGolden(t *testing.T) {
	ts := builtin(t)
	if ts.Len() < 9 {
		t.Fatalf("%d built-in templates, want one per vital (9)", ts.Len())
	}
	for _, name := range ts.Names() {
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", name+".payload.json"))
			if err != nil {
				t.Fatalf("every built-in template needs a golden payload: %v", err)
			}
			res, err := ts.Evaluate(payload)
			if err != nil {
				t.Fatal(err)
			}
			var got []Measurement
			for _, m := range res.Measurements {
				if m.TemplateName == name {
					got = append(got, m)
				}
			}
			if len(got) != 1 || len(res.Failed) > 0 {
				t.Fatalf("template %s made %d measurements, failures %v", name, len(got), res.Failed)
			}
			b, err := json.MarshalIndent(got[0], "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", name+".measurement.json"), append(b, '\n'))
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestEvaluateReasons(t *testing.T) {
	ts := builtin(t)
	const dev = `"deviceId":"SN-1","time":"2026-03-01T10:00:00Z"`
	tests := []struct {
		name      string
		payload   string
		template  string // the template whose reason is checked
		matched   bool
		reason    string
		wantCount int // measurements made overall
	}{
		{"absent", `{` + dev + `}`, "heartrate", false, "template heartrate: $.heartRate not found in payload", 0},
		{"null is absent", `{` + dev + `,"heartRate":null}`, "heartrate", false, "template heartrate: $.heartRate not found in payload", 0},
		{"no device", `{"time":"2026-03-01T10:00:00Z","heartRate":72}`, "heartrate", true,
			"template heartrate: no device identifier: $.eui64, $.deviceId not found in payload", 0},
		{"device id object", `{"deviceId":{"x":1},"time":"2026-03-01T10:00:00Z","heartRate":72}`, "heartrate", true,
			"template heartrate: $.deviceId: is an object, want a string", 0},
		{"no time", `{"deviceId":"SN-1","heartRate":72}`, "heartrate", true, "template heartrate: $.time not found in payload", 0},
		{"bad time", `{"deviceId":"SN-1","time":"01/03/2026 10:00","heartRate":72}`, "heartrate", true, "template heartrate: $.time: not an RFC 3339 time", 0},
		{"time without zone", `{"deviceId":"SN-1","time":"2026-03-01T10:00:00","heartRate":72}`, "heartrate", true, "template heartrate: $.time: not an RFC 3339 time", 0},
		{"value string", `{` + dev + `,"heartRate":"72"}`, "heartrate", true, "template heartrate: $.heartRate: is a string, want a number", 0},
		{"missing diastolic", `{` + dev + `,"systolic":120,"heartRate":70}`, "bloodpressure", true,
			"template bloodpressure: $.diastolic not found in payload (value diastolic is required)", 1},
		{"unknown unit", `{` + dev + `,"bodyTemp":37,"bodyTempUnit":"celsius"}`, "bodytemp", true,
			"template bodytemp: $.bodyTempUnit: unit of value bodyTemp is not a UCUM unit Pulsewire knows", 0},
		{"wrong dimension", `{` + dev + `,"weight":70,"weightUnit":"mm[Hg]"}`, "bodyweight", true,
			"template bodyweight: value weight: unit mm[Hg] cannot be converted to kg", 0},
		{"waveform data not array", `{` + dev + `,"ecg":{"periodMs":4,"data":"1 2 3"}}`, "ecg", true,
			"template ecg: @.data: is a string, want an array of numbers", 0},
		{"waveform sample", `{` + dev + `,"ecg":{"periodMs":4,"data":[1,"x"]}}`, "ecg", true,
			"template ecg: @.data: sample 1 is a string, want a number", 0},
		{"waveform period", `{` + dev + `,"ecg":{"periodMs":0,"data":[1]}}`, "ecg", true,
			"template ecg: @.periodMs: must be a positive number of milliseconds", 0},
		{"waveform empty", `{` + dev + `,"ecg":{"periodMs":4,"data":[]}}`, "ecg", true,
			"template ecg: @.data: has 0 samples, want 1 to 100000", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ts.Evaluate([]byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			list := res.Unmatched
			if tt.matched {
				list = res.Failed
			}
			var got []string
			for _, r := range list {
				if r.Template == tt.template {
					got = append(got, r.String())
				}
			}
			if diff := cmp.Diff([]string{tt.reason}, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if len(res.Measurements) != tt.wantCount {
				t.Errorf("%d measurements, want %d", len(res.Measurements), tt.wantCount)
			}
			err = res.Err()
			if !fhir.IsKind(err, fhir.KindUnprocessable) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Err() = %v, want KindUnprocessable containing the reason", err)
			}
			// Reasons never carry payload values.
			if strings.Contains(err.Error(), "SN-1") || strings.Contains(err.Error(), "celsius") {
				t.Errorf("Err() leaks a payload value: %v", err)
			}
		})
	}
}

func TestEvaluatePayloadErrors(t *testing.T) {
	ts := builtin(t)
	for _, p := range []string{``, `{`, `{"a":1} {"b":2}`, `nul`} {
		if _, err := ts.Evaluate([]byte(p)); !fhir.IsKind(err, fhir.KindInvalid) {
			t.Errorf("Evaluate(%q) = %v, want KindInvalid", p, err)
		}
	}
	res, err := ts.Evaluate([]byte(`[1,2]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unmatched) != ts.Len() || !strings.HasPrefix(res.Err().Error(), "no template matches the payload: template bloodpressure: $.systolic not found in payload;") {
		t.Errorf("a JSON array: %v", res.Err())
	}
	empty, _ := NewTemplates()
	res = empty.EvaluateDoc(map[string]any{})
	if got := res.Err().Error(); got != "no template matches the payload: no templates are loaded" {
		t.Errorf("no templates: %q", got)
	}
}

// A template that selects several nodes makes one measurement per node,
// and @ expressions read each node.
func TestEvaluateBatchTemplate(t *testing.T) {
	tpl := `{"name":"batch-hr","match":"$.readings[?(@.type=='hr')]",
	  "deviceIdentifiers":[{"system":"urn:x","expression":"$.gateway"}],
	  "timestamp":"@.at","patientId":"@.patient",
	  "values":[{"name":"v","expression":"@.value","required":true,"unit":"{beats}/min"}],
	  "output":{"vocab":"heart-rate","value":"v"}}`
	tm, err := ParseTemplate("batch.json", []byte(tpl))
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := NewTemplates(tm)
	res, err := ts.Evaluate([]byte(`{"gateway":"gw-1","readings":[
	  {"type":"hr","at":"2026-03-01T10:00:00Z","value":70,"patient":"p1"},
	  {"type":"spo2","at":"2026-03-01T10:00:00Z","value":97},
	  {"type":"hr","at":"2026-03-01T10:01:00Z","value":71}]}`))
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	type row struct {
		Patient, Time, Unit string
		Value               float64
	}
	var got []row
	for _, m := range res.Measurements {
		got = append(got, row{m.PatientID, m.Time.Format("15:04"), m.Value.Unit, m.Value.Value})
	}
	want := []row{{"p1", "10:00", "/min", 70}, {"", "10:01", "/min", 71}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if k0, k1 := res.Measurements[0].Key(), res.Measurements[1].Key(); k0 == k1 || !strings.HasPrefix(k0, "urn:x|gw-1|heart-rate|") {
		t.Errorf("keys %q %q", k0, k1)
	}
}

func TestParseTemplateErrors(t *testing.T) {
	valid := map[string]any{}
	if err := json.Unmarshal([]byte(`{"name":"t","match":"$.x",
	  "deviceIdentifiers":[{"system":"urn:x","expression":"$.d"}],"timestamp":"$.t",
	  "values":[{"name":"x","expression":"$.x","required":true,"unit":"/min"}],
	  "output":{"vocab":"heart-rate","value":"x"}}`), &valid); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTemplate("t.json", mustJSON(t, valid)); err != nil {
		t.Fatalf("the base template does not parse: %v", err)
	}
	tests := []struct {
		name   string
		edit   func(m map[string]any)
		errMsg string
	}{
		{"unknown member", func(m map[string]any) { m["typeName"] = "x" }, `template file t.json: not a template: json: unknown field "typeName"`},
		{"bad name", func(m map[string]any) { m["name"] = "Heart Rate" }, "template file t.json: name: want 1-64 of a-z 0-9 _ . - starting with a letter or digit"},
		{"bad match", func(m map[string]any) { m["match"] = "$..x" }, `template file t.json: match: expression "$..x": at offset 2: recursive descent (..) is not supported; write the full path`},
		{"no identifiers", func(m map[string]any) { m["deviceIdentifiers"] = []any{} }, "template file t.json: deviceIdentifiers: at least one is required"},
		{"identifier system", func(m map[string]any) {
			m["deviceIdentifiers"] = []any{map[string]any{"expression": "$.d"}}
		}, "template file t.json: deviceIdentifiers[0].system: required"},
		{"bad timestamp", func(m map[string]any) { m["timestamp"] = "t" }, "template file t.json: timestamp: expression"},
		{"value unit", func(m map[string]any) {
			m["values"] = []any{map[string]any{"name": "x", "expression": "$.x", "unit": "bpm"}}
		}, `template file t.json: values[0].unit: "bpm" is not a UCUM unit Pulsewire knows`},
		{"duplicate value", func(m map[string]any) {
			v := map[string]any{"name": "x", "expression": "$.x", "unit": "/min"}
			m["values"] = []any{v, v}
		}, `template file t.json: values[1].name: "x" is declared twice`},
		{"unknown vocab", func(m map[string]any) { m["output"] = map[string]any{"vocab": "pulse", "value": "x"} }, `template file t.json: output.vocab: "pulse" is not a vocab key`},
		{"value not declared", func(m map[string]any) { m["output"] = map[string]any{"vocab": "heart-rate", "value": "y"} }, "template file t.json: output.value: must name one of the template's values"},
		{"vocab and code", func(m map[string]any) {
			m["output"] = map[string]any{"vocab": "heart-rate", "value": "x", "code": []any{map[string]any{"system": "s", "code": "c"}}}
		}, "template file t.json: output.code: give vocab or code, not both"},
		{"panel without components", func(m map[string]any) { m["output"] = map[string]any{"vocab": "blood-pressure", "value": "x"} }, `template file t.json: output.vocab: "blood-pressure" makes a panel Observation; the output describes a quantity`},
		{"component vocab", func(m map[string]any) {
			m["output"] = map[string]any{"vocab": "blood-pressure", "components": []any{map[string]any{"vocab": "heart-rate", "value": "x"}}}
		}, `template file t.json: output.components[0].vocab: "heart-rate" is not a component vocab key`},
		{"vocab unit", func(m map[string]any) {
			m["output"] = map[string]any{"vocab": "heart-rate", "value": "x", "unit": "/s"}
		}, `template file t.json: output.unit: the vocab row "heart-rate" fixes the unit "/min"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range valid {
				m[k] = v
			}
			tt.edit(m)
			_, err := ParseTemplate("t.json", mustJSON(t, m))
			if !fhir.IsKind(err, fhir.KindInvalid) || !strings.HasPrefix(err.Error(), tt.errMsg) {
				t.Errorf("ParseTemplate = %v\nwant KindInvalid starting %q", err, tt.errMsg)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSetReload(t *testing.T) {
	base := builtin(t)
	s := NewSet(base)
	if s.Templates() != base {
		t.Fatal("a new Set serves its base")
	}
	hr, err := iofs.ReadFile(BuiltinFS(), "heartrate.json")
	if err != nil {
		t.Fatal(err)
	}
	// A deployment's heartrate template replaces the built-in one, and a new
	// template is added.
	custom := bytes.Replace(hr, []byte(`"$.heartRate"`), []byte(`"$.hr"`), -1)
	extra := bytes.Replace(hr, []byte(`"name": "heartrate"`), []byte(`"name": "heartrate-2"`), 1)
	dir := fstest.MapFS{"heartrate.json": {Data: custom}, "extra.json": {Data: extra}, "README.md": {Data: []byte("ignored")}}

	var wg sync.WaitGroup
	for range 4 { // readers race with the reload (go test -race)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = s.Templates().Len()
			}
		}()
	}
	got, err := s.Reload(dir)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if s.Templates() != got || got.Len() != base.Len()+1 {
		t.Fatalf("after reload: %d templates, want %d", got.Len(), base.Len()+1)
	}
	res := got.EvaluateDoc(mustDecode(t, `{"deviceId":"d","time":"2026-03-01T10:00:00Z","hr":70}`))
	if len(res.Measurements) != 1 || res.Measurements[0].TemplateName != "heartrate" {
		t.Errorf("the replaced heartrate template reads $.hr: got %d measurements, want 1 from heartrate", len(res.Measurements))
	}

	// A broken file fails the reload and the current templates stay.
	bad := fstest.MapFS{"ok.json": {Data: custom}, "bad.json": {Data: []byte(`{"name":"bad"`)}}
	if _, err := s.Reload(bad); err == nil || !strings.Contains(err.Error(), "template file bad.json") {
		t.Errorf("Reload(bad) = %v, want an error naming bad.json", err)
	}
	if s.Templates() != got {
		t.Error("a failed reload replaced the templates")
	}
	dup := fstest.MapFS{"a.json": {Data: custom}, "b.json": {Data: custom}}
	if _, err := s.Reload(dup); err == nil || err.Error() != "template heartrate is defined twice" {
		t.Errorf("Reload(dup) = %v", err)
	}
}

func FuzzEvaluate(f *testing.F) {
	ts, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.payload.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	f.Add([]byte(`{"deviceId":7,"time":"2026-03-01T10:00:00Z","systolic":1e400,"ecg":{"periodMs":-1,"data":[[1]]}}`), uint8(3))
	f.Add([]byte(`{"deviceId":"d","time":"2026-03-01T10:00:00Z","weight":1,"weightUnit":"[degF]"}`), uint8(5))
	names := ts.Names()
	f.Fuzz(func(t *testing.T, payload []byte, pick uint8) {
		res, err := ts.Evaluate(payload)
		if err != nil {
			if !fhir.IsKind(err, fhir.KindInvalid) {
				t.Fatalf("Evaluate error of kind %v: %v", fhir.ErrorKind(err), err)
			}
			return
		}
		if n := len(res.Failed) + len(res.Unmatched); n > ts.Len() {
			t.Fatalf("%d reasons for %d templates", n, ts.Len())
		}
		for _, m := range res.Measurements {
			set := 0
			if m.Value != nil {
				set++
			}
			if len(m.Components) > 0 {
				set++
			}
			if m.Waveform != nil {
				set++
			}
			if set != 1 || m.DeviceID == "" || m.Time.IsZero() {
				t.Fatalf("malformed measurement %+v", m)
			}
		}
		// One template alone, as `mapping test --template` runs it.
		tpl, _ := ts.Template(names[int(pick)%len(names)])
		doc, err := DecodePayload(payload)
		if err == nil {
			tpl.Evaluate(doc)
		}
	})
}
