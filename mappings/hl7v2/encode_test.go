package hl7v2

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pulsewire/pulsewire/server/fhir"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T) *Message
		want  string
	}{
		{
			name: "escapes every delimiter and control characters",
			build: func(t *testing.T) *Message {
				m := NewMessage(DefaultDelimiters)
				mustSet(t, m, "MSH-9", "ADT")
				mustSet(t, m, "NTE-3", "a|b^c&d~e\\f\r\ng\x0bh\ti")
				return m
			},
			want: "MSH|^~\\&|||||||ADT\rNTE|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D\\\\.br\\g\\X0B\\h\ti\r",
		},
		{
			name: "trailing empties trimmed, inner ones kept",
			build: func(t *testing.T) *Message {
				m := NewMessage(DefaultDelimiters)
				mustSet(t, m, "PID-3(1).1", "A")
				mustSet(t, m, "PID-3(1).4", "H")
				mustSet(t, m, "PID-3(1).6", "")
				mustSet(t, m, "PID-3(2).1.2", "S")
				mustSet(t, m, "PID-3(3)", "")
				mustSet(t, m, "PID-5.1.3", "")
				mustSet(t, m, "PID-9", "")
				return m
			},
			want: "MSH|^~\\&\rPID|||A^^^H~&S\r",
		},
		{
			name: "truncation character escaped as \\P\\",
			build: func(t *testing.T) *Message {
				d := DefaultDelimiters
				d.Truncation = '#'
				m := NewMessage(d)
				mustSet(t, m, "NTE-1", "#5")
				return m
			},
			want: "MSH|^~\\&#\rNTE|\\P\\5\r",
		},
		{
			name: "custom delimiters",
			build: func(t *testing.T) *Message {
				m := NewMessage(Delimiters{Field: '*', Component: '!', Repetition: '@', Escape: '%', Subcomponent: '$'})
				mustSet(t, m, "PID-3.2", "x*y|z")
				return m
			},
			want: "MSH*!@%$\rPID***!x%F%y|z\r",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.build(t)
			got, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Encode (-want +got):\n%s", diff)
			}
			// What we write parses back strictly, to the same bytes.
			m2, st, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Counts()) != 0 {
				t.Errorf("strict output needed leniency: %v", st.Counts())
			}
			again, _ := Encode(m2)
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("re-encode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		expr []string
	}{
		{"no segments", &Message{Delims: DefaultDelimiters}, []string{"MSH"}},
		{"PID first", &Message{Delims: DefaultDelimiters, Segments: []*Segment{{Name: "PID"}}}, []string{"MSH"}},
		{"bad delimiters", &Message{Delims: Delimiters{Field: '|'}, Segments: []*Segment{{Name: "MSH"}}}, []string{"MSH-2"}},
		{"bad segment id", &Message{Delims: DefaultDelimiters, Segments: []*Segment{{Name: "MSH"}, {Name: "pid"}}}, nil},
		{"invalid UTF-8", &Message{Delims: DefaultDelimiters, Segments: []*Segment{{Name: "MSH"}, {Name: "PID", Fields: []Field{nil, FieldOf("\xff")}}}}, []string{"PID-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.m)
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.KindInvalid {
				t.Fatalf("err = %v, want *fhir.Error KindInvalid", err)
			}
			if diff := cmp.Diff(tt.expr, fe.Expression); diff != "" {
				t.Errorf("expression (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetters(t *testing.T) {
	m := NewMessage(DefaultDelimiters)
	for _, bad := range []string{"MSH-1", "MSH-2", "OBX(2)-1", "PID", "PID-0"} {
		if err := m.Set(bad, "x"); err == nil {
			t.Errorf("Set(%q) succeeded, want an error", bad)
		}
	}
	mustSet(t, m, "OBX(1)-1", "1")
	mustSet(t, m, "OBX(2)-1", "2")
	mustSet(t, m, "OBX(1)-5", "72")
	seg := m.Append("ZPW")
	if err := seg.SetField(2, Field{{{"a", "b"}, {"c"}}, {{"d"}}}); err != nil {
		t.Fatal(err)
	}
	out, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&\rOBX|1||||72\rOBX|2\rZPW||a&b^c~d\r"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := m.Value("ZPW", 2, 1, 1, 2); got != "b" {
		t.Errorf("ZPW-2.1.2 = %q, want b", got)
	}
	if got := len(m.All("OBX")); got != 2 {
		t.Errorf("len(All(OBX)) = %d, want 2", got)
	}
}

func TestHelpers(t *testing.T) {
	m, _, err := Parse([]byte(msh + "\r"))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{m.MessageType().String(), m.MessageType().Code, m.MessageType().Trigger, m.MessageType().Structure, m.ControlID(), m.Version(), m.String()}
	want := []string{"ADT^A01^ADT_A01", "ADT", "A01", "ADT_A01", "CTL1", "2.6", "hl7v2.Message[MSH]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := (MessageType{Code: "ACK"}).String(); got != "ACK" {
		t.Errorf("MessageType{ACK}.String() = %q", got)
	}
}

func mustSet(t *testing.T, m *Message, path, v string) {
	t.Helper()
	if err := m.Set(path, v); err != nil {
		t.Fatalf("Set(%q): %v", path, err)
	}
}
