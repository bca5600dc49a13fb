package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Stats counts every leniency Parse applied. A message Encode wrote parses
// with all counts zero. Export them as metrics with Counts.
type Stats struct {
	Segments           int // segments parsed, including bad ones
	LFTerminators      int // segments ended by a bare LF instead of CR
	CRLFTerminators    int // segments ended by CR LF
	MissingTerminator  int // the last segment had no terminator
	BlankSegments      int // empty or whitespace-only lines skipped
	ByteOrderMark      int // a UTF-8 byte order mark skipped before MSH
	DefaultedEncoding  int // encoding characters missing from MSH-2, defaulted
	UnknownEscapes     int // escape sequences kept as literal text
	UnterminatedEscape int // an escape character without its closing one, kept literally
	FormattingDropped  int // \H\, \N\ and formatting commands other than \.br\ dropped
	InvalidUTF8        int // values with invalid UTF-8, repaired with U+FFFD
	HeaderRepaired     int // a later MSH/BHS/FHS whose MSH-2 differed, normalised
}

// Counts returns the non-zero leniency counts by a stable snake_case name
// (for a metric label), excluding Segments.
func (s Stats) Counts() map[string]int {
	m := map[string]int{}
	add := func(k string, v int) {
		if v != 0 {
			m[k] = v
		}
	}
	add("lf_terminator", s.LFTerminators)
	add("crlf_terminator", s.CRLFTerminators)
	add("missing_terminator", s.MissingTerminator)
	add("blank_segment", s.BlankSegments)
	add("byte_order_mark", s.ByteOrderMark)
	add("defaulted_encoding_chars", s.DefaultedEncoding)
	add("unknown_escape", s.UnknownEscapes)
	add("unterminated_escape", s.UnterminatedEscape)
	add("formatting_dropped", s.FormattingDropped)
	add("invalid_utf8", s.InvalidUTF8)
	add("header_repaired", s.HeaderRepaired)
	return m
}

// ErrorCode is an HL7 table 0357 message error condition code.
type ErrorCode int

// Table 0357 codes (HL7 v2.6 chapter 2, 2.15.5.3).
const (
	ErrSegmentSequence         ErrorCode = 100
	ErrRequiredFieldMissing    ErrorCode = 101
	ErrDataType                ErrorCode = 102
	ErrTableValueNotFound      ErrorCode = 103
	ErrValueTooLong            ErrorCode = 104
	ErrUnsupportedMessageType  ErrorCode = 200
	ErrUnsupportedEventCode    ErrorCode = 201
	ErrUnsupportedProcessingID ErrorCode = 202
	ErrUnsupportedVersionID    ErrorCode = 203
	ErrUnknownKeyIdentifier    ErrorCode = 204
	ErrDuplicateKeyIdentifier  ErrorCode = 205
	ErrApplicationRecordLocked ErrorCode = 206
	ErrApplicationInternal     ErrorCode = 207
)

var errorCodeText = map[ErrorCode]string{
	ErrSegmentSequence:         "Segment sequence error",
	ErrRequiredFieldMissing:    "Required field missing",
	ErrDataType:                "Data type error",
	ErrTableValueNotFound:      "Table value not found",
	ErrValueTooLong:            "Value too long",
	ErrUnsupportedMessageType:  "Unsupported message type",
	ErrUnsupportedEventCode:    "Unsupported event code",
	ErrUnsupportedProcessingID: "Unsupported processing id",
	ErrUnsupportedVersionID:    "Unsupported version id",
	ErrUnknownKeyIdentifier:    "Unknown key identifier",
	ErrDuplicateKeyIdentifier:  "Duplicate key identifier",
	ErrApplicationRecordLocked: "Application record locked",
	ErrApplicationInternal:     "Application internal error",
}

// String returns the table 0357 display text, e.g. "Data type error".
func (c ErrorCode) String() string {
	if t, ok := errorCodeText[c]; ok {
		return t
	}
	return "Error " + strconv.Itoa(int(c))
}

// Issue is one problem in a message, located by position only: it never
// holds a value from the message.
type Issue struct {
	Index      int       // 1-based position of the segment in the message
	Segment    string    // segment id; "" when the segment had no valid id
	Occurrence int       // 1-based occurrence of that segment id (ERR-2.2)
	Field      int       // 1-based field position; 0 for the whole segment
	Code       ErrorCode // HL7 table 0357
	Msg        string    // client-safe description
}

// Location returns the issue's position, e.g. "segment 3 (PID) field 5".
func (i Issue) Location() string {
	s := "segment " + strconv.Itoa(i.Index)
	if i.Segment != "" {
		s += " (" + i.Segment + ")"
	}
	if i.Field > 0 {
		s += " field " + strconv.Itoa(i.Field)
	}
	return s
}

// ParseError lists the per-segment problems of a message that was otherwise
// parsed. Parse returns it wrapped in a *fhir.Error; use errors.As to get it.
type ParseError struct {
	Issues []Issue
}

func (e *ParseError) Error() string {
	parts := make([]string, 0, len(e.Issues))
	for _, i := range e.Issues {
		parts = append(parts, i.Location()+": "+i.Msg)
	}
	return strings.Join(parts, "; ")
}

// Parse parses one HL7 v2 message. It is lenient (see Stats).
//
// When the message cannot be read at all (no MSH first, unusable
// delimiters) it returns a nil message and a *fhir.Error of KindInvalid.
// When some segments are bad it returns the message without them and a
// *fhir.Error of KindInvalid wrapping a *ParseError that locates each one.
func Parse(data []byte) (*Message, Stats, error) {
	var st Stats
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		data = data[3:]
		st.ByteOrderMark++
	}
	for len(data) > 0 && (data[0] == '\r' || data[0] == '\n') {
		data = data[1:]
		st.BlankSegments++
	}
	d, err := readDelimiters(data, &st)
	if err != nil {
		return nil, st, err
	}
	p := parser{d: d, st: &st, m: &Message{Delims: d}, occ: map[string]int{}}
	rest := data
	for len(rest) > 0 {
		end := bytes.IndexAny(rest, "\r\n")
		var line []byte
		switch {
		case end < 0:
			line, rest = rest, nil
			st.MissingTerminator++
		case rest[end] == '\n':
			line, rest = rest[:end], rest[end+1:]
			st.LFTerminators++
		case end+1 < len(rest) && rest[end+1] == '\n':
			line, rest = rest[:end], rest[end+2:]
			st.CRLFTerminators++
		default:
			line, rest = rest[:end], rest[end+1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			st.BlankSegments++
			continue
		}
		p.segment(line)
	}
	if len(p.issues) > 0 {
		fe := fhir.Errorf(fhir.KindInvalid, "hl7v2: %d segment problem(s) in the message", len(p.issues))
		for _, i := range p.issues {
			fe.Expression = append(fe.Expression, i.Location())
		}
		return p.m, st, fe.Wrap(&ParseError{Issues: p.issues})
	}
	return p.m, st, nil
}

// readDelimiters reads MSH-1 and MSH-2.
func readDelimiters(data []byte, st *Stats) (Delimiters, error) {
	if len(data) < 4 || string(data[:3]) != "MSH" {
		return Delimiters{}, fhir.Errorf(fhir.KindInvalid, "hl7v2: the message does not start with an MSH segment").At("MSH")
	}
	d := Delimiters{Field: data[3]}
	enc := data[4:]
	if i := bytes.IndexAny(enc, string([]byte{d.Field, '\r', '\n'})); i >= 0 {
		enc = enc[:i]
	}
	if len(enc) > 5 {
		return Delimiters{}, fhir.Errorf(fhir.KindInvalid, "hl7v2: MSH-2 has more than 5 encoding characters").At("MSH-2")
	}
	defaults := DefaultDelimiters.EncodingCharacters()
	slots := []*byte{&d.Component, &d.Repetition, &d.Escape, &d.Subcomponent, &d.Truncation}
	for i, slot := range slots {
		switch {
		case i < len(enc) && !validDelimiter(enc[i]):
			return Delimiters{}, fhir.Errorf(fhir.KindInvalid, "hl7v2: unusable delimiters in MSH-1/MSH-2").At("MSH-2")
		case i < len(enc):
			*slot = enc[i]
		case i < 4:
			*slot = defaults[i]
			st.DefaultedEncoding++
		}
	}
	if err := d.validate(); err != nil {
		return Delimiters{}, fhir.Errorf(fhir.KindInvalid, "hl7v2: unusable delimiters in MSH-1/MSH-2").At("MSH-2").Wrap(err)
	}
	return d, nil
}

type parser struct {
	d      Delimiters
	st     *Stats
	m      *Message
	issues []Issue
	occ    map[string]int
	index  int
}

func (p *parser) issue(name string, field int, code ErrorCode, msg string) {
	i := Issue{Index: p.index, Segment: name, Field: field, Code: code, Msg: msg}
	if name != "" {
		i.Occurrence = p.occ[name]
	} else {
		i.Occurrence = p.index
	}
	p.issues = append(p.issues, i)
}

func (p *parser) segment(line []byte) {
	p.index++
	p.st.Segments++
	if len(line) < 3 || !validSegmentName(string(line[:3])) || len(line) > 3 && line[3] != p.d.Field {
		p.issue("", 0, ErrSegmentSequence, "not a segment: it must start with a segment id and the field separator")
		return
	}
	name := string(line[:3])
	p.occ[name]++
	seg := &Segment{Name: name}
	var body []byte
	if len(line) > 3 {
		body = line[4:]
	}
	if isHeader(name) {
		enc, after, more := bytes.Cut(body, []byte{p.d.Field})
		if p.index > 1 && string(enc) != p.d.EncodingCharacters() {
			p.st.HeaderRepaired++
		}
		seg.Fields = newHeader(name, p.d).Fields
		if !more {
			p.m.Segments = append(p.m.Segments, seg)
			return
		}
		body = after
	} else if len(line) == 3 {
		p.m.Segments = append(p.m.Segments, seg)
		return
	}
	for _, raw := range bytes.Split(body, []byte{p.d.Field}) {
		seg.Fields = append(seg.Fields, p.field(raw))
	}
	p.m.Segments = append(p.m.Segments, seg)
}

func (p *parser) field(raw []byte) Field {
	if len(raw) == 0 {
		return nil
	}
	var f Field
	for _, r := range bytes.Split(raw, []byte{p.d.Repetition}) {
		var rep Repetition
		for _, c := range bytes.Split(r, []byte{p.d.Component}) {
			var comp Component
			for _, s := range bytes.Split(c, []byte{p.d.Subcomponent}) {
				comp = append(comp, p.value(s))
			}
			rep = append(rep, comp)
		}
		f = append(f, rep)
	}
	return f
}

// value unescapes one subcomponent and repairs invalid UTF-8.
func (p *parser) value(raw []byte) string {
	s := string(raw)
	if bytes.IndexByte(raw, p.d.Escape) >= 0 {
		s = p.unescape(s)
	}
	if !utf8.ValidString(s) {
		p.st.InvalidUTF8++
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// unescape decodes the escape sequences of HL7 v2.6 section 2.7.
func (p *parser) unescape(s string) string {
	esc := p.d.Escape
	var b strings.Builder
	for {
		i := strings.IndexByte(s, esc)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+1:], esc)
		if j < 0 {
			p.st.UnterminatedEscape++
			b.WriteString(s[i:])
			return b.String()
		}
		seq := s[i+1 : i+1+j]
		whole := s[i : i+j+2]
		s = s[i+j+2:]
		switch {
		case seq == "F":
			b.WriteByte(p.d.Field)
		case seq == "S":
			b.WriteByte(p.d.Component)
		case seq == "T":
			b.WriteByte(p.d.Subcomponent)
		case seq == "R":
			b.WriteByte(p.d.Repetition)
		case seq == "E":
			b.WriteByte(esc)
		case seq == "P" && p.d.Truncation != 0:
			b.WriteByte(p.d.Truncation)
		case seq == ".br":
			b.WriteByte('\n')
		case seq == "H" || seq == "N" || len(seq) > 1 && seq[0] == '.':
			p.st.FormattingDropped++
		case len(seq) > 1 && seq[0] == 'X' && len(seq)%2 == 1:
			if decoded, ok := unhex(seq[1:]); ok {
				b.WriteString(decoded)
			} else {
				p.st.UnknownEscapes++
				b.WriteString(whole)
			}
		default:
			p.st.UnknownEscapes++
			b.WriteString(whole)
		}
	}
}

func unhex(s string) (string, bool) {
	out := make([]byte, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		v, err := strconv.ParseUint(s[i:i+2], 16, 8)
		if err != nil {
			return "", false
		}
		out = append(out, byte(v))
	}
	return string(out), true
}

// String describes the message shape for logs: segment ids only.
func (m *Message) String() string {
	names := make([]string, len(m.Segments))
	for i, s := range m.Segments {
		names[i] = s.Name
	}
	return fmt.Sprintf("hl7v2.Message[%s]", strings.Join(names, " "))
}
