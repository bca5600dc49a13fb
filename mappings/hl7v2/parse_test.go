package hl7v2

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

const msh = `MSH|^~\&|SND|SFAC|RCV|RFAC|20250101120000||ADT^A01^ADT_A01|CTL1|P|2.6`

func TestParseLeniency(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		stats Stats
		want  map[string]string
	}{
		{"CR", msh + "\rPID|1||X\r", Stats{Segments: 2}, map[string]string{"PID-3": "X"}},
		{"LF", msh + "\nPID|1||X\n", Stats{Segments: 2, LFTerminators: 2}, map[string]string{"PID-3": "X"}},
		{"CRLF", msh + "\r\nPID|1||X\r\n", Stats{Segments: 2, CRLFTerminators: 2}, map[string]string{"PID-3": "X"}},
		{"mixed and blank lines", "\r\n" + msh + "\r\n\rPID|1||X\n\r\n  \r", Stats{Segments: 2, CRLFTerminators: 2, LFTerminators: 1, BlankSegments: 5}, map[string]string{"PID-3": "X"}},
		{"no final terminator", msh + "\rPID|1||X", Stats{Segments: 2, MissingTerminator: 1}, map[string]string{"PID-3": "X"}},
		{"byte order mark", "\xef\xbb\xbf" + msh + "\r", Stats{Segments: 1, ByteOrderMark: 1}, map[string]string{"MSH-10": "CTL1"}},
		{"custom delimiters", "MSH*!@%$*A*B\rPID*1**X!Y@Z~1$2\r", Stats{Segments: 2},
			map[string]string{"MSH-1": "*", "MSH-2": "!@%$", "MSH-3": "A", "PID-3": "X", "PID-3.2": "Y", "PID-3(2)": "Z~1", "PID-3(2).1.2": "2"}},
		{"custom escape", "MSH*!@%$*A\rPID*1**%F%%S%%E%\r", Stats{Segments: 2}, map[string]string{"PID-3": "*!%"}},
		{"missing encoding chars defaulted", "MSH|^~|A\rPID|1||X&Y\\F\\\r", Stats{Segments: 2, DefaultedEncoding: 2}, map[string]string{"MSH-2": `^~\&`, "PID-3.1.2": "Y|"}},
		{"v2.7 truncation char", "MSH|^~\\&#|A\rPID|1||AB#\\P\\\r", Stats{Segments: 2}, map[string]string{"MSH-2": "^~\\&#", "PID-3": "AB##"}},
		{"unknown escape kept", msh + "\rNTE|1||a\\Zfoo\\b\\Cxxyy\\\r", Stats{Segments: 2, UnknownEscapes: 2}, map[string]string{"NTE-3": `a\Zfoo\b\Cxxyy\`}},
		{"unterminated escape", msh + "\rNTE|1||a\\Fb\r", Stats{Segments: 2, UnterminatedEscape: 1}, map[string]string{"NTE-3": `a\Fb`}},
		{"bad hex", msh + "\rNTE|1||\\XZZ\\\\X4\\\r", Stats{Segments: 2, UnknownEscapes: 2}, map[string]string{"NTE-3": `\XZZ\\X4\`}},
		{"hex and formatting", msh + "\rNTE|1||\\X4869\\\\.sp\\\\.br\\\\H\\x\\N\\\r", Stats{Segments: 2, FormattingDropped: 3}, map[string]string{"NTE-3": "Hi\nx"}},
		{"invalid UTF-8", msh + "\rPID|1||\xe9t\xe9\r", Stats{Segments: 2, InvalidUTF8: 1}, map[string]string{"PID-3": "\uFFFDt\uFFFD"}},
		{"UTF-8", msh + "\rPID|1||李^Zoë\r", Stats{Segments: 2}, map[string]string{"PID-3": "李", "PID-3.2": "Zoë"}},
		{"segment without fields", msh + "\rNTE\rZZ1|\r", Stats{Segments: 3}, map[string]string{"ZZ1-1": "", "NTE-1": ""}},
		{"later MSH repaired", msh + "\rMSH|xx|B\r", Stats{Segments: 2, HeaderRepaired: 1}, map[string]string{"MSH(2)-2": `^~\&`, "MSH(2)-3": "B"}},
		{"MSH only", "MSH|^~\\&", Stats{Segments: 1, MissingTerminator: 1}, map[string]string{"MSH-1": "|", "MSH-3": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, st, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.stats, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			for path, want := range tt.want {
				got, err := m.Get(path)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
		})
	}
}

func TestParseFatal(t *testing.T) {
	tests := []struct {
		name, in, path string
	}{
		{"empty", "", "MSH"},
		{"not MSH", "PID|1||X\r", "MSH"},
		{"batch header", "FHS|^~\\&|A\r", "MSH"},
		{"too many encoding chars", "MSH|^~\\&#!|A\r", "MSH-2"},
		{"alphanumeric delimiter", "MSH|^~\\A|A\r", "MSH-2"},
		{"duplicate delimiter", "MSH|^^\\&|A\r", "MSH-2"},
		{"control delimiter", "MSH\x0b^~\\&\x0bA\r", "MSH-2"},
		{"defaulted delimiter clashes", "MSH|~|A\r", "MSH-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, err := Parse([]byte(tt.in))
			if m != nil {
				t.Errorf("got a message, want nil")
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.KindInvalid {
				t.Fatalf("err = %v, want a *fhir.Error of KindInvalid", err)
			}
			if diff := cmp.Diff([]string{tt.path}, fe.Expression); diff != "" {
				t.Errorf("expression (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseSegmentErrors: a bad segment is reported by position and dropped;
// the rest of the message survives; the error text holds no values.
func TestParseSegmentErrors(t *testing.T) {
	secret := "SMITHJOHN"
	in := msh + "\rPID|1||X\r" + secret + " continued text\rpid|lower\rOBX|1|NM|A\rPIDX|1\rOBX|2|NM|B\r"
	m, _, err := Parse([]byte(in))
	if m == nil {
		t.Fatal("message lost")
	}
	if diff := cmp.Diff([]string{"MSH", "PID", "OBX", "OBX"}, segmentNames(m)); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	if got, _ := m.Get("OBX(2)-3"); got != "B" {
		t.Errorf("OBX(2)-3 = %q, want B", got)
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *ParseError inside", err)
	}
	want := []Issue{
		{Index: 3, Occurrence: 3, Code: ErrSegmentSequence, Msg: "not a segment: it must start with a segment id and the field separator"},
		{Index: 4, Occurrence: 4, Code: ErrSegmentSequence, Msg: "not a segment: it must start with a segment id and the field separator"},
		{Index: 6, Occurrence: 6, Code: ErrSegmentSequence, Msg: "not a segment: it must start with a segment id and the field separator"},
	}
	if diff := cmp.Diff(want, pe.Issues); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if !fhir.IsKind(err, fhir.KindInvalid) {
		t.Errorf("err kind = %v, want KindInvalid", fhir.ErrorKind(err))
	}
	for _, leak := range []string{"SMITH", "lower", "continued", "PIDX"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error text %q contains message content %q", err.Error(), leak)
		}
	}
}

func TestStatsCounts(t *testing.T) {
	_, st, err := Parse([]byte(msh + "\nNTE|1||\\Q\\\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"lf_terminator": 2, "unknown_escape": 1}
	if diff := cmp.Diff(want, st.Counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}
