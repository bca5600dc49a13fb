// Package hl7v2 is Pulsewire's HL7 version 2.x message layer: a message
// model, a lenient parser, a strict encoder and an ACK builder.
//
// It follows HL7 v2.5.1/v2.6 chapter 2 (Control): message construction rules
// (2.5–2.6: segments, fields, repetitions, components, subcomponents, the
// delimiters MSH-1 and MSH-2 define, escape sequences 2.7) and acknowledgments
// (2.9, MSA and ERR segments, HL7 table 0357). See
// https://www.hl7.org/implement/standards/product_brief.cfm?product_id=185.
//
// "Lenient in, strict out": Parse accepts CR, LF or CRLF segment terminators,
// missing encoding characters, unknown escape sequences and invalid UTF-8,
// counting each leniency in Stats, and collects per-segment problems without
// losing the rest of the message. Encode writes only what the standard
// allows: CR terminators, escaped delimiters, trailing empties trimmed.
//
// Values in the model are unescaped UTF-8 text. Errors name segment ids and
// positions, never values (they may be patient data).
//
// It is pure (no I/O) and imports only the standard library and server/fhir.
// Any package may import it.
package hl7v2

import (
	"fmt"
	"strings"
)

// Delimiters are the separators a message declares in MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte
	Component    byte
	Repetition   byte
	Escape       byte
	Subcomponent byte
	// Truncation is the v2.7 truncation character (usually '#'); 0 when the
	// message declares none.
	Truncation byte
}

// DefaultDelimiters are |^~\& — what every message Pulsewire builds uses.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters returns the MSH-2 value: component, repetition, escape,
// subcomponent and (when set) truncation characters.
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return string(b)
}

// validate reports whether the delimiters are usable: printable ASCII, not
// alphanumeric, and all different.
func (d Delimiters) validate() error {
	all := []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}
	if d.Truncation != 0 {
		all = append(all, d.Truncation)
	}
	seen := map[byte]bool{}
	for _, c := range all {
		if !validDelimiter(c) {
			return fmt.Errorf("delimiter 0x%02x is not a printable non-alphanumeric ASCII character", c)
		}
		if seen[c] {
			return fmt.Errorf("delimiter 0x%02x is used twice", c)
		}
		seen[c] = true
	}
	return nil
}

func validDelimiter(c byte) bool {
	return c > ' ' && c < 0x7f && !isAlnum(c)
}

func isAlnum(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// Message is one HL7 v2 message: its delimiters and its segments in order.
// The first segment of a well-formed message is MSH.
type Message struct {
	Delims   Delimiters
	Segments []*Segment
}

// Segment is one segment. Fields[i] is field i+1 in HL7 numbering, for every
// segment: for MSH (and the batch headers BHS, FHS) Fields[0] is MSH-1, the
// field separator, and Fields[1] is MSH-2, the encoding characters; both are
// derived from Message.Delims when encoding.
type Segment struct {
	Name   string
	Fields []Field
}

// Field is one field: its repetitions (one for a non-repeating field).
type Field []Repetition

// Repetition is one occurrence of a field: its components.
type Repetition []Component

// Component is one component: its subcomponents (unescaped values).
type Component []string

// NewMessage returns a message holding an MSH segment with MSH-1 and MSH-2
// set from d.
func NewMessage(d Delimiters) *Message {
	m := &Message{Delims: d}
	m.Segments = []*Segment{newHeader("MSH", d)}
	return m
}

func newHeader(name string, d Delimiters) *Segment {
	return &Segment{Name: name, Fields: []Field{
		FieldOf(string(d.Field)),
		FieldOf(d.EncodingCharacters()),
	}}
}

// isHeader reports whether the segment uses MSH numbering (MSH-1 is the
// field separator itself).
func isHeader(name string) bool { return name == "MSH" || name == "BHS" || name == "FHS" }

// FieldOf returns a field with one repetition of one component holding v.
func FieldOf(v string) Field { return Field{Repetition{Component{v}}} }

// Rep returns repetition i (1-based), or nil.
func (f Field) Rep(i int) Repetition {
	if i < 1 || i > len(f) {
		return nil
	}
	return f[i-1]
}

// Comp returns component i (1-based), or nil.
func (r Repetition) Comp(i int) Component {
	if i < 1 || i > len(r) {
		return nil
	}
	return r[i-1]
}

// Sub returns subcomponent i (1-based), or "".
func (c Component) Sub(i int) string {
	if i < 1 || i > len(c) {
		return ""
	}
	return c[i-1]
}

// Field returns field n (1-based, HL7 numbering), or nil when absent.
func (s *Segment) Field(n int) Field {
	if s == nil || n < 1 || n > len(s.Fields) {
		return nil
	}
	return s.Fields[n-1]
}

// Value returns the value at field, repetition, component and subcomponent
// (all 1-based; 0 means 1), or "" when absent. A field read as a primitive is
// its first component's first subcomponent, as HL7 2.6 section 2.5.3 says.
func (s *Segment) Value(field, rep, comp, sub int) string {
	return s.Field(field).Rep(one(rep)).Comp(one(comp)).Sub(one(sub))
}

func one(i int) int {
	if i == 0 {
		return 1
	}
	return i
}

// Set stores v at field, repetition, component and subcomponent (1-based; 0
// means 1), growing the segment as needed. MSH-1 and MSH-2 cannot be set:
// they come from Message.Delims.
func (s *Segment) Set(field, rep, comp, sub int, v string) error {
	rep, comp, sub = one(rep), one(comp), one(sub)
	if field < 1 || rep < 1 || comp < 1 || sub < 1 {
		return fmt.Errorf("setting %s-%d: positions are 1-based", s.Name, field)
	}
	if isHeader(s.Name) && field <= 2 {
		return fmt.Errorf("setting %s-%d: the delimiters come from Message.Delims", s.Name, field)
	}
	for len(s.Fields) < field {
		s.Fields = append(s.Fields, nil)
	}
	f := s.Fields[field-1]
	for len(f) < rep {
		f = append(f, nil)
	}
	r := f[rep-1]
	for len(r) < comp {
		r = append(r, nil)
	}
	c := r[comp-1]
	for len(c) < sub {
		c = append(c, "")
	}
	c[sub-1] = v
	r[comp-1] = c
	f[rep-1] = r
	s.Fields[field-1] = f
	return nil
}

// SetField replaces field n (1-based) with f. MSH-1 and MSH-2 cannot be set.
func (s *Segment) SetField(n int, f Field) error {
	if n < 1 {
		return fmt.Errorf("setting %s-%d: positions are 1-based", s.Name, n)
	}
	if isHeader(s.Name) && n <= 2 {
		return fmt.Errorf("setting %s-%d: the delimiters come from Message.Delims", s.Name, n)
	}
	for len(s.Fields) < n {
		s.Fields = append(s.Fields, nil)
	}
	s.Fields[n-1] = f
	return nil
}

// Segment returns occurrence occ (1-based; 0 means 1) of the segment named
// name, or nil.
func (m *Message) Segment(name string, occ int) *Segment {
	occ = one(occ)
	for _, s := range m.Segments {
		if s.Name == name {
			occ--
			if occ == 0 {
				return s
			}
		}
	}
	return nil
}

// All returns every segment named name, in order.
func (m *Message) All(name string) []*Segment {
	var out []*Segment
	for _, s := range m.Segments {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Append adds an empty segment named name at the end and returns it. A
// header segment (MSH, BHS, FHS) gets its first two fields from m.Delims.
func (m *Message) Append(name string) *Segment {
	s := &Segment{Name: name}
	if isHeader(name) {
		s = newHeader(name, m.Delims)
	}
	m.Segments = append(m.Segments, s)
	return s
}

// Value returns the value at a position of the first segment named seg (see
// Segment.Value), or "".
func (m *Message) Value(seg string, field, rep, comp, sub int) string {
	return m.Segment(seg, 1).Value(field, rep, comp, sub)
}

// Get returns the value at an HL7 position such as "PID-3(2).1.2" (see
// ParsePath). It returns "" for an absent value and an error only for a
// malformed path.
func (m *Message) Get(path string) (string, error) {
	p, err := ParsePath(path)
	if err != nil {
		return "", err
	}
	return m.At(p), nil
}

// At returns the value at p, or "".
func (m *Message) At(p Path) string {
	return m.Segment(p.Segment, p.Occurrence).Value(p.Field, p.Rep, p.Comp, p.Sub)
}

// Set stores v at an HL7 position such as "OBX(2)-5". The segment occurrence
// must exist, or be the next one (which is appended).
func (m *Message) Set(path string, v string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	s := m.Segment(p.Segment, p.Occurrence)
	if s == nil {
		if one(p.Occurrence) != len(m.All(p.Segment))+1 {
			return fmt.Errorf("setting %s: segment occurrence %d does not exist", p, one(p.Occurrence))
		}
		s = m.Append(p.Segment)
	}
	return s.Set(p.Field, p.Rep, p.Comp, p.Sub, v)
}

// MessageType is MSH-9: message code, trigger event and message structure.
type MessageType struct {
	Code      string // MSH-9.1, e.g. ORU
	Trigger   string // MSH-9.2, e.g. R01
	Structure string // MSH-9.3, e.g. ORU_R01
}

// String returns the type in HL7 notation with default delimiters,
// e.g. "ORU^R01^ORU_R01", omitting empty trailing parts.
func (t MessageType) String() string {
	s := t.Code + "^" + t.Trigger + "^" + t.Structure
	return strings.TrimRight(s, "^")
}

// MessageType returns MSH-9.
func (m *Message) MessageType() MessageType {
	msh := m.Segment("MSH", 1)
	return MessageType{Code: msh.Value(9, 1, 1, 1), Trigger: msh.Value(9, 1, 2, 1), Structure: msh.Value(9, 1, 3, 1)}
}

// ControlID returns MSH-10, the message control id.
func (m *Message) ControlID() string { return m.Value("MSH", 10, 1, 1, 1) }

// Version returns MSH-12.1, the version id (e.g. "2.6").
func (m *Message) Version() string { return m.Value("MSH", 12, 1, 1, 1) }
