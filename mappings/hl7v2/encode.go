package hl7v2

import (
	"strconv"
	"unicode/utf8"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Encode writes m strictly: MSH first, every segment ended by CR, delimiter
// characters in values escaped (HL7 v2.6 section 2.7), CR as \X0D\, LF as
// \.br\, other control characters as \Xhh\, and trailing empty fields,
// repetitions, components and subcomponents trimmed. MSH-1 and MSH-2 are
// written from m.Delims. It returns a *fhir.Error of KindInvalid, located by
// position, when m cannot be written (bad delimiters, a bad segment id,
// invalid UTF-8 in a value).
func Encode(m *Message) ([]byte, error) {
	if err := m.Delims.validate(); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "hl7v2: unusable delimiters").At("MSH-2").Wrap(err)
	}
	if len(m.Segments) == 0 || m.Segments[0] == nil || m.Segments[0].Name != "MSH" {
		return nil, fhir.Errorf(fhir.KindInvalid, "hl7v2: the first segment must be MSH").At("MSH")
	}
	e := encoder{d: m.Delims}
	for i, s := range m.Segments {
		if s == nil || !validSegmentName(s.Name) {
			return nil, fhir.Errorf(fhir.KindInvalid, "hl7v2: segment %d has an invalid segment id", i+1)
		}
		if err := e.segment(s); err != nil {
			return nil, err
		}
	}
	return e.buf, nil
}

type encoder struct {
	d   Delimiters
	buf []byte
}

func (e *encoder) segment(s *Segment) error {
	e.buf = append(e.buf, s.Name...)
	first := 0
	if isHeader(s.Name) {
		e.buf = append(e.buf, e.d.Field)
		e.buf = append(e.buf, e.d.EncodingCharacters()...)
		first = 2
	}
	last := len(s.Fields)
	for last > first && empty(s.Fields[last-1]) {
		last--
	}
	for n := first; n < last; n++ {
		e.buf = append(e.buf, e.d.Field)
		if err := e.field(s.Fields[n]); err != nil {
			return fhir.Errorf(fhir.KindInvalid, "hl7v2: invalid UTF-8 in %s-%d", s.Name, n+1).At(s.Name + "-" + strconv.Itoa(n+1))
		}
	}
	e.buf = append(e.buf, '\r')
	return nil
}

func empty(f Field) bool {
	for _, r := range f {
		for _, c := range r {
			for _, s := range c {
				if s != "" {
					return false
				}
			}
		}
	}
	return true
}

var errUTF8 = fhir.Errorf(fhir.KindInvalid, "invalid UTF-8")

func (e *encoder) field(f Field) error {
	reps := trim(len(f), func(i int) bool { return empty(Field{f[i]}) })
	for i := 0; i < reps; i++ {
		if i > 0 {
			e.buf = append(e.buf, e.d.Repetition)
		}
		r := f[i]
		comps := trim(len(r), func(j int) bool { return empty(Field{Repetition{r[j]}}) })
		for j := 0; j < comps; j++ {
			if j > 0 {
				e.buf = append(e.buf, e.d.Component)
			}
			c := r[j]
			subs := trim(len(c), func(k int) bool { return c[k] == "" })
			for k := 0; k < subs; k++ {
				if k > 0 {
					e.buf = append(e.buf, e.d.Subcomponent)
				}
				if !utf8.ValidString(c[k]) {
					return errUTF8
				}
				e.escape(c[k])
			}
		}
	}
	return nil
}

// trim returns n less the trailing items that are empty.
func trim(n int, isEmpty func(int) bool) int {
	for n > 0 && isEmpty(n-1) {
		n--
	}
	return n
}

const hexDigits = "0123456789ABCDEF"

func (e *encoder) escape(v string) {
	d := e.d
	for i := 0; i < len(v); i++ {
		c := v[i]
		var seq string
		switch {
		case c == d.Field:
			seq = "F"
		case c == d.Component:
			seq = "S"
		case c == d.Subcomponent:
			seq = "T"
		case c == d.Repetition:
			seq = "R"
		case c == d.Escape:
			seq = "E"
		case d.Truncation != 0 && c == d.Truncation:
			seq = "P"
		case c == '\n':
			seq = ".br"
		case c < 0x20 && c != '\t':
			seq = string([]byte{'X', hexDigits[c>>4], hexDigits[c&0xf]})
		default:
			e.buf = append(e.buf, c)
			continue
		}
		e.buf = append(e.buf, d.Escape)
		e.buf = append(e.buf, seq...)
		e.buf = append(e.buf, d.Escape)
	}
}
