package vocab

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestLookups(t *testing.T) {
	tests := []struct {
		name string
		find func() (*Vital, bool)
		want string // key; "" for not found
	}{
		{"key", func() (*Vital, bool) { return ByKey(HeartRate) }, HeartRate},
		{"LOINC own code", func() (*Vital, bool) { return ByLOINC("8889-8") }, PulseRate},
		{"LOINC shared profile code is its owner's", func() (*Vital, bool) { return ByLOINC("8867-4") }, HeartRate},
		{"LOINC profile code", func() (*Vital, bool) { return ByLOINC("2708-6") }, SpO2},
		{"LOINC component", func() (*Vital, bool) { return ByLOINC("8462-4") }, BPDiastolic},
		{"MDC numeric", func() (*Vital, bool) { return ByMDC("150456") }, SpO2},
		{"MDC reference id", func() (*Vital, bool) { return ByMDC("MDC_TEMP_BODY") }, BodyTemp},
		{"coding prefers MDC", func() (*Vital, bool) {
			return ByCoding([]Coding{{SystemLOINC, "8867-4", ""}, {SystemMDC, "149530", ""}})
		}, PulseRate},
		{"coding LOINC only", func() (*Vital, bool) { return ByCoding([]Coding{{SystemLOINC, "29463-7", ""}}) }, BodyWeight},
		{"unknown", func() (*Vital, bool) { return ByLOINC("0000-0") }, ""},
		{"wrong system", func() (*Vital, bool) { return ByCoding([]Coding{{"urn:x", "147842", ""}}) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := tt.find()
			got := ""
			if ok {
				got = v.Key
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTable checks the rows against each other and against the rules the
// codes follow.
func TestTable(t *testing.T) {
	seenMDC := map[string]string{}
	for _, v := range All() {
		t.Run(v.Key, func(t *testing.T) {
			if !ValidUnit(v.Unit) {
				t.Errorf("unit %q is not in the UCUM subset", v.Unit)
			}
			// MDC numeric codes: partition 2 (SCADA) for what is measured,
			// partition 4 (DIM) for units.
			for _, c := range []struct {
				code      MDCCode
				partition int
				prefix    string
			}{{v.MDC, 2, "MDC_"}, {v.MDCUnit, 4, "MDC_DIM_"}} {
				n, err := strconv.Atoi(c.code.Code)
				if err != nil || n/65536 != c.partition || !strings.HasPrefix(c.code.RefID, c.prefix) {
					t.Errorf("MDC %+v: want partition %d and a %s reference id", c.code, c.partition, c.prefix)
				}
			}
			if other, dup := seenMDC[v.MDC.Code]; dup {
				t.Errorf("MDC code %s is also %s", v.MDC.Code, other)
			}
			seenMDC[v.MDC.Code] = v.Key
			if v.Source == "" || (v.LOINC.Code != "" && !strings.Contains(v.Source, "LOINC")) || !strings.Contains(v.Source, "11073") {
				t.Errorf("source %q must name where the codes come from", v.Source)
			}
			if v.Kind != KindWaveform && v.LOINC.Code == "" {
				t.Error("only the waveform may lack a LOINC code")
			}
			if (v.Kind == KindQuantity || v.Kind == KindPanel) && !strings.HasPrefix(v.Profile, ProfileBase) {
				t.Errorf("profile %q", v.Profile)
			}
			cs := v.Codings()
			if cs[len(cs)-1].System != SystemMDC || (v.LOINC.Code != "" && cs[0].System != SystemLOINC) {
				t.Errorf("codings %v: LOINC first, MDC last", cs)
			}
			for _, k := range v.Components {
				if c, ok := ByKey(k); !ok || c.Kind != KindComponent {
					t.Errorf("component %q is not a component row", k)
				}
			}
		})
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		v        float64
		from, to string
		want     float64
	}{
		{98.6, "[degF]", "Cel", 37},
		{37, "Cel", "[degF]", 98.6},
		{310.15, "K", "Cel", 37},
		{160, "[lb_av]", "kg", 72.5747792},
		{72500, "g", "kg", 72.5},
		{16, "kPa", "mm[Hg]", 120.0099},
		{1, "/s", "/min", 60},
		{72, "{beats}/min", "/min", 72},
		{1500, "uV", "mV", 1.5},
		{0.004, "s", "ms", 4},
		{36.6, "Cel", "Cel", 36.6},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			got, err := Convert(tt.v, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tt.want) > 1e-4 {
				t.Errorf("Convert(%v %s) = %v %s, want %v", tt.v, tt.from, got, tt.to, tt.want)
			}
		})
	}
	for _, bad := range [][2]string{{"kg", "Cel"}, {"bpm", "/min"}, {"/min", "beats"}, {"mmol/L", "mg/dL"}} {
		if _, err := Convert(1, bad[0], bad[1]); !fhir.IsKind(err, fhir.KindUnprocessable) {
			t.Errorf("Convert %s -> %s = %v, want KindUnprocessable", bad[0], bad[1], err)
		}
	}
	// Glucose needs its molar mass to go from mmol/L to mg/dL and back.
	if got, err := ConvertSubstance(5.5, "mmol/L", "mg/dL", 180.156); err != nil || math.Abs(got-99.0858) > 1e-4 {
		t.Errorf("ConvertSubstance glucose = %v, %v", got, err)
	}
	if got, err := ConvertSubstance(99.0858, "mg/dL", "mmol/L", 180.156); err != nil || math.Abs(got-5.5) > 1e-4 {
		t.Errorf("ConvertSubstance glucose back = %v, %v", got, err)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		key       string
		v         float64
		unit      string
		want      float64
		converted bool
		err       string
	}{
		{HeartRate, 72, "/min", 72, false, ""},
		{HeartRate, 72, "{beats}/min", 72, false, ""},
		{BodyTemp, 98.6, "[degF]", 37, true, ""},
		{BodyTemp, 99.5, "[degF]", 37.5, true, ""},
		{BodyWeight, 160, "[lb_av]", 72.575, true, ""},
		{BloodGlucose, 5.5, "mmol/L", 99.1, true, ""},
		{BPSystolic, 16, "kPa", 120, true, ""},
		{HeartRate, 72, "kg", 0, false, `unit "kg" cannot be converted to "/min" for heart-rate`},
		{HeartRate, 72, "bpm", 0, false, `unit "bpm" is not a UCUM unit Pulsewire knows`},
	}
	for _, tt := range tests {
		t.Run(tt.key+" "+tt.unit, func(t *testing.T) {
			v, _ := ByKey(tt.key)
			got, conv, err := v.Normalize(tt.v, tt.unit)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || conv != tt.converted {
				t.Errorf("Normalize = %v, %v, %v; want %v, %v", got, conv, err, tt.want, tt.converted)
			}
		})
	}
}

// TestTableDoc keeps testdata/vocab.md, the table for people, in step with
// the Go table.
func TestTableDoc(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Pulsewire vital-signs code table\n\nGenerated from mappings/vocab by `go test ./mappings/vocab -update`. Do not edit.\n\n")
	b.WriteString("| key | kind | LOINC | MDC | UCUM | MDC unit | profile |\n|---|---|---|---|---|---|---|\n")
	for _, v := range All() {
		loinc := v.LOINC.Code + " " + v.LOINC.Display
		if v.ProfileLOINC != nil {
			loinc = v.ProfileLOINC.Code + " " + v.ProfileLOINC.Display + " + " + loinc
		}
		u, _ := LookupUnit(v.Unit)
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s | %s (%s) | %s %s | %s |\n", v.Key, v.Kind, strings.TrimSpace(loinc),
			v.MDC.Code, v.MDC.RefID, v.Unit, u.Display, v.MDCUnit.Code, v.MDCUnit.RefID, strings.TrimPrefix(v.Profile, ProfileBase))
	}
	b.WriteString("\n## Sources\n\n")
	for _, v := range All() {
		fmt.Fprintf(&b, "- **%s**: %s\n", v.Key, v.Source)
	}
	b.WriteString("\n## UCUM subset\n\n| code | display | dimension |\n|---|---|---|\n")
	for _, c := range UnitCodes() {
		u, _ := LookupUnit(c)
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", u.Code, u.Display, u.Dim)
	}
	path := filepath.Join("testdata", "vocab.md")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s is stale (-want +got):\n%s", path, diff)
	}
}
