package adt

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.fhir.json golden files")

var testConfig = &Config{Authorities: map[string]string{"GENHOSP": "urn:oid:1.2.3.4.5", "USSSA": "http://hl7.org/fhir/sid/us-ssn"}}

func parse(t *testing.T, raw []byte) *hl7v2.Message {
	t.Helper()
	m, _, err := hl7v2.Parse(raw)
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	return m
}

// TestGolden translates each testdata/<event>.hl7 and compares the result
// with testdata/<event>.fhir.json.
func TestGolden(t *testing.T) {
	tests := []struct {
		event     string
		types     []string // upsert types in order
		encStatus string
	}{
		{"a01", []string{"Location", "Patient", "Encounter"}, "in-progress"},
		{"a03", []string{"Location", "Patient", "Encounter"}, "finished"},
		{"a04", []string{"Location", "Patient", "Encounter"}, "arrived"},
		{"a08", []string{"Patient"}, ""},
		{"a11", []string{"Location", "Patient", "Encounter"}, "cancelled"},
		{"a13", []string{"Location", "Patient", "Encounter"}, "in-progress"},
		{"a40", []string{"Patient"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			m := parse(t, mustRead(t, filepath.Join("testdata", tt.event+".hl7")))
			res, err := Translate(m, testConfig)
			if err != nil {
				t.Fatal(err)
			}
			if res.Event != strings.ToUpper(tt.event) || res.ControlID != m.ControlID() {
				t.Errorf("event, control id = %s, %s", res.Event, res.ControlID)
			}
			var types []string
			for _, u := range res.Upserts {
				types = append(types, u.Type)
				var body struct {
					ResourceType string       `json:"resourceType"`
					Identifier   []Identifier `json:"identifier"`
					Status       string       `json:"status"`
				}
				if err := json.Unmarshal(u.Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.ResourceType != u.Type {
					t.Errorf("upsert %s has resourceType %s", u.Type, body.ResourceType)
				}
				if !containsID(body.Identifier, u.Key) {
					t.Errorf("%s key %v is not among its identifiers", u.Type, u.Key)
				}
				if u.Type == "Encounter" && body.Status != tt.encStatus {
					t.Errorf("Encounter.status = %q, want %q", body.Status, tt.encStatus)
				}
			}
			if diff := cmp.Diff(tt.types, types); diff != "" {
				t.Errorf("upsert types (-want +got):\n%s", diff)
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(indentBodies(t, got), '\n')
			golden := filepath.Join("testdata", tt.event+".fhir.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(string(mustRead(t, golden)), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got), rerun with -update if intended:\n%s", golden, diff)
			}
		})
	}
}

// indentBodies re-indents the whole document so the raw bodies read well.
func indentBodies(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func containsID(ids []Identifier, k Identifier) bool {
	for _, id := range ids {
		if id == k {
			return true
		}
	}
	return false
}

func TestMerge(t *testing.T) {
	res, err := Translate(parse(t, mustRead(t, "testdata/a40.hl7")), testConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := &Merge{
		Survivor: Identifier{"urn:oid:1.2.3.4.5", "MRN0012345"},
		Retired:  []Identifier{{"urn:oid:1.2.3.4.5", "MRN0099999"}},
	}
	if diff := cmp.Diff(want, res.Merge); diff != "" {
		t.Errorf("merge (-want +got):\n%s", diff)
	}
	var p struct {
		Link []struct {
			Other struct{ Reference string } `json:"other"`
			Type  string                     `json:"type"`
		} `json:"link"`
	}
	if err := json.Unmarshal(res.Upserts[0].Body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Link) != 1 || p.Link[0].Type != "replaces" || p.Link[0].Other.Reference != "Patient?identifier=urn%3Aoid%3A1.2.3.4.5%7CMRN0099999" {
		t.Errorf("survivor links = %+v", p.Link)
	}
}

func TestErrors(t *testing.T) {
	const msh = "MSH|^~\\&|SRC|FAC|PW|PWF|20250314080000||"
	tests := []struct {
		name   string
		msg    string
		kind   fhir.Kind
		ack    hl7v2.AckCode
		issues []hl7v2.Issue // Msg not compared
	}{
		{"not ADT", msh + "ORU^R01^ORU_R01|C1|P|2.6\r", fhir.KindNotSupported, hl7v2.AckReject,
			[]hl7v2.Issue{{Segment: "MSH", Index: 1, Occurrence: 1, Field: 9, Code: hl7v2.ErrUnsupportedMessageType}}},
		{"unsupported event", msh + "ADT^A31^ADT_A05|C1|P|2.6\rPID|1||X^^^GENHOSP\r", fhir.KindNotSupported, hl7v2.AckReject,
			[]hl7v2.Issue{{Segment: "MSH", Index: 1, Occurrence: 1, Field: 9, Code: hl7v2.ErrUnsupportedEventCode}}},
		{"no PID-3", msh + "ADT^A08^ADT_A01|C1|P|2.6\rEVN|A08\rPID|1||||X\r", fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PID", Index: 3, Occurrence: 1, Field: 3, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"no assigning authority", msh + "ADT^A08^ADT_A01|C1|P|2.6\rPID|1||MRN1\r", fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PID", Index: 2, Occurrence: 1, Field: 3, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"no PID", msh + "ADT^A01^ADT_A01|C1|P|2.6\r" + pv1("I", "V1^^^GENHOSP"), fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PID", Code: hl7v2.ErrSegmentSequence}}},
		{"A01 without visit number", msh + "ADT^A01^ADT_A01|C1|P|2.6\rPID|1||M1^^^GENHOSP\rPV1|1|I\r", fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PV1", Index: 3, Occurrence: 1, Field: 19, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"A01 without patient class", msh + "ADT^A01^ADT_A01|C1|P|2.6\rPID|1||M1^^^GENHOSP\r" + pv1("", "V1^^^GENHOSP"), fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PV1", Index: 3, Occurrence: 1, Field: 2, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"A03 without discharge time", msh + "ADT^A03^ADT_A03|C1|P|2.6\rPID|1||M1^^^GENHOSP\r" + pv1("I", "V1^^^GENHOSP"), fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PV1", Index: 3, Occurrence: 1, Field: 45, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"A40 without MRG-1", msh + "ADT^A40^ADT_A39|C1|P|2.6\rPID|1||M1^^^GENHOSP\rMRG|\r", fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "MRG", Index: 3, Occurrence: 1, Field: 1, Code: hl7v2.ErrRequiredFieldMissing}}},
		{"bad birth date", msh + "ADT^A08^ADT_A01|C1|P|2.6\rPID|1||M1^^^GENHOSP||X||19701399\r", fhir.KindUnprocessable, hl7v2.AckError,
			[]hl7v2.Issue{{Segment: "PID", Index: 2, Occurrence: 1, Field: 7, Code: hl7v2.ErrDataType}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Translate(parse(t, []byte(tt.msg)), testConfig)
			if !fhir.IsKind(err, tt.kind) {
				t.Fatalf("got %v, want kind %v", err, tt.kind)
			}
			code, issues, ok := AckFor(err)
			if !ok || code != tt.ack {
				t.Errorf("AckFor = %s, %v; want %s", code, ok, tt.ack)
			}
			for i := range issues {
				if issues[i].Msg == "" {
					t.Errorf("issue %d has no message", i)
				}
				issues[i].Msg = ""
			}
			if diff := cmp.Diff(tt.issues, issues); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
			// The ACK the listener would send carries one ERR per issue.
			ack, err := hl7v2.NewACK(parse(t, []byte(tt.msg)), hl7v2.AckOptions{Code: code, ControlID: func() string { return "A1" }, Issues: issues})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ack.All("ERR")); got != len(tt.issues) {
				t.Errorf("ACK has %d ERR segments, want %d", got, len(tt.issues))
			}
		})
	}
	if _, _, ok := AckFor(errors.New("boom")); ok {
		t.Error("AckFor reported issues for a plain error")
	}
}

func TestDateTime(t *testing.T) {
	tr := translator{cfg: &Config{}}
	tests := []struct{ in, want string }{
		{"20250314080000", "2025-03-14T08:00:00Z"},
		{"20250314080000+0100", "2025-03-14T08:00:00+01:00"},
		{"202503140800", "2025-03-14T08:00:00Z"},
		{"20250314080000.25-0500", "2025-03-14T08:00:00.25-05:00"},
		{"20250314", "2025-03-14"},
		{"202503", "2025-03"},
		{"2025", "2025"},
	}
	for _, tt := range tests {
		got, err := tr.dateTime(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("dateTime(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"2025031", "20251399", "2025-03-14", "20250314250000", "20250314080000+01"} {
		if _, err := tr.dateTime(bad); err == nil {
			t.Errorf("dateTime(%q) accepted", bad)
		}
	}
}

// pv1 returns a PV1 segment with PV1-2 and PV1-19.
func pv1(class, visit string) string {
	return "PV1|1|" + class + strings.Repeat("|", 17) + visit + "\r"
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
