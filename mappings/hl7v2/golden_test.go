package hl7v2

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// TestGolden parses each synthetic message in testdata, checks it field by
// field, re-encodes it strictly and compares with testdata/<name>.golden.
func TestGolden(t *testing.T) {
	tests := []struct {
		file      string
		wantStats Stats
		want      map[string]string // HL7 position -> value
		segments  []string
	}{
		{
			file:      "oru_r01_pcd01.hl7",
			wantStats: Stats{Segments: 10},
			segments:  []string{"MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX"},
			want: map[string]string{
				"MSH-1": "|", "MSH-2": `^~\&`,
				"MSH-3": "PULSEWIRE", "MSH-3.2": "0A1B2C3D4E5F6071", "MSH-3.3": "EUI-64",
				"MSH-5": "EPIC_IE", "MSH-6": "GENERAL_HOSP",
				"MSH-9": "ORU", "MSH-9.2": "R01", "MSH-9.3": "ORU_R01",
				"MSH-10": "PW000000000123", "MSH-12": "2.6", "MSH-15": "AL", "MSH-16": "NE",
				"MSH-18": "UNICODE UTF-8",
				"MSH-21": "IHE_PCD_001", "MSH-21.3": "1.3.6.1.4.1.19376.1.6.1.1.1", "MSH-21.4": "ISO",
				"PID-3": "MRN0012345", "PID-3.4": "GENHOSP", "PID-3.5": "MR",
				"PID-5": "SYNTHETIC", "PID-5.2": "PATIENT", "PID-5.7": "L",
				"PV1-3": "ICU", "PV1-3.2": "0101", "PV1-3.3": "1", "PV1-19": "VN000987",
				"OBR-2": "PW000000000123", "OBR-3": "PW000000000123", "OBR-3.4": "EUI-64", "OBR-4.2": "monitoring of patient",
				"OBX(1)-3": "147842", "OBX(1)-3.2": "MDC_ECG_HEART_RATE", "OBX(1)-3(2)": "8867-4",
				"OBX(1)-3(2).3": "LN", "OBX(1)-4": "1.1.1.1", "OBX(1)-5": "72",
				"OBX(1)-6": "264864", "OBX(1)-6(2)": "/min", "OBX(1)-11": "F",
				"OBX(1)-14": "20250314101500+0000", "OBX(1)-17.2": "auto-measurement", "OBX(2)-17": "",
				"OBX(1)-18": "0A1B2C3D4E5F6071", "OBX(1)-18.2": "EUI-64",
				"OBX(2)-3": "150456", "OBX(2)-5": "97", "OBX(2)-6(2)": "%",
				"OBX(3)-2": "", "OBX(3)-3.2": "MDC_PRESS_BLD_NONINV", "OBX(3)-4": "1.1.2.0", "OBX(3)-5": "",
				"OBX(4)-3.2": "MDC_PRESS_BLD_NONINV_SYS", "OBX(4)-5": "120", "OBX(4)-6(2)": "mm[Hg]",
				"OBX(5)-3.2": "MDC_PRESS_BLD_NONINV_DIA", "OBX(5)-5": "80",
				"OBX(6)-3.2": "MDC_PRESS_BLD_NONINV_MEAN", "OBX(6)-5": "93", "OBX(6)-4": "1.1.2.3",
				"OBX(7)-5": "",
			},
		},
		{
			file:      "adt_a01.hl7",
			wantStats: Stats{Segments: 4},
			segments:  []string{"MSH", "EVN", "PID", "PV1"},
			want: map[string]string{
				"MSH-9": "ADT", "MSH-9.2": "A01", "MSH-10": "ADT0000001", "MSH-12": "2.5.1",
				"EVN-1": "A01", "PID-3": "MRN0012345", "PID-3(2)": "999000111", "PID-3(2).4": "USSSA",
				"PID-7": "19700101", "PID-8": "F", "PID-11": "1 TEST STREET", "PID-11.3": "SPRINGFIELD",
				"PV1-2": "I", "PV1-3": "ICU", "PV1-7.2": "DOCTOR", "PV1-10": "MED", "PV1-19": "VN000987",
				"PV1-44": "20250314080000",
			},
		},
		{
			file:      "adt_a40_merge.hl7",
			wantStats: Stats{Segments: 4},
			segments:  []string{"MSH", "EVN", "PID", "MRG"},
			want: map[string]string{
				"MSH-9": "ADT", "MSH-9.2": "A40", "MSH-9.3": "ADT_A39",
				"PID-3": "MRN0012345", "MRG-1": "MRN0099999", "MRG-1.4": "GENHOSP", "MRG-1.5": "MR",
			},
		},
		{
			file:      "adt_a08_lf.hl7",
			wantStats: Stats{Segments: 4, LFTerminators: 4},
			segments:  []string{"MSH", "EVN", "PID", "PV1"},
			want: map[string]string{
				"MSH-9.2": "A08", "MSH-10": "ADT0000003", "PID-5.3": "B", "PV1-3.2": "0102",
			},
		},
		{
			file:      "escapes_reps.hl7",
			wantStats: Stats{Segments: 5, FormattingDropped: 2},
			segments:  []string{"MSH", "PID", "OBR", "OBX", "NTE"},
			want: map[string]string{
				"PID-3": "MRN1", "PID-3(2)": "MRN2", "PID-3(2).4": "OTHER", "PID-3(3)": "MRN3", "PID-3(4)": "",
				"PID-5": "ÉLODIE", "PID-5.2": "SYNTHÈSE",
				"PID-13": "(555)555-0100", "PID-13(2)": "(555)555-0199",
				"OBX-2": "FT",
				"OBX-5": "Pipe | caret ^ amp & tilde ~ backslash \\.br:\nnext line Abold end",
				"NTE-3": "A", "NTE-3.1.2": "B sub", "NTE-3(2)": "second rep", "NTE-3(2).2": "comp2",
			},
		},
		{
			file:      "z_segment.hl7",
			wantStats: Stats{Segments: 5},
			segments:  []string{"MSH", "EVN", "PID", "PV1", "ZPD"},
			want: map[string]string{
				"MSH-9.2": "A04", "PV1-2": "O", "ZPD-1": "1", "ZPD-2": "BED-LINK", "ZPD-2.2": "ON",
				"ZPD-3": "0A1B2C3D4E5F6071", "ZPD-3.2": "EUI-64",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := readFile(t, filepath.Join("testdata", tt.file))
			m, st, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.wantStats, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.segments, segmentNames(m)); diff != "" {
				t.Errorf("segments (-want +got):\n%s", diff)
			}
			for path, want := range tt.want {
				got, err := m.Get(path)
				if err != nil {
					t.Fatalf("Get(%q): %v", path, err)
				}
				if got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			out, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			golden := filepath.Join("testdata", tt.file[:len(tt.file)-len(".hl7")]+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(string(readFile(t, golden)), string(out)); diff != "" {
				t.Errorf("encoded message differs from %s (-want +got):\n%s", golden, diff)
			}
			// The strict output parses with no leniency, to the same values,
			// and encodes to the same bytes.
			m2, st2, err := Parse(out)
			if err != nil {
				t.Fatalf("re-Parse: %v", err)
			}
			if st2.Counts()["lf_terminator"] != 0 || len(st2.Counts()) != 0 {
				t.Errorf("strict output needed leniency: %v", st2.Counts())
			}
			for path, want := range tt.want {
				if got, _ := m2.Get(path); got != want {
					t.Errorf("after round trip %s = %q, want %q", path, got, want)
				}
			}
			out2, err := Encode(m2)
			if err != nil {
				t.Fatalf("re-Encode: %v", err)
			}
			if !bytes.Equal(out, out2) {
				t.Errorf("Encode is not stable:\n%q\n%q", out, out2)
			}
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func segmentNames(m *Message) []string {
	var out []string
	for _, s := range m.Segments {
		out = append(out, s.Name)
	}
	return out
}
