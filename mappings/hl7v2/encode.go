package hl7v2

import (
	"strconv"
	"sync"
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
	// Encode into a reused scratch buffer, then copy out exactly: one
	// allocation of the right size, and no pass to size the message.
	sp := scratch.Get().(*[]byte)
	buf, err := AppendEncode((*sp)[:0], m)
	var out []byte
	if err == nil {
		out = make([]byte, len(buf))
		copy(out, buf)
	}
	if cap(buf) <= maxScratch {
		*sp = buf
		scratch.Put(sp)
	}
	return out, err
}

// scratch holds Encode's buffers; ones grown past maxScratch (a long
// waveform) are left to the garbage collector.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxScratch = 64 << 10

// AppendEncode is Encode appending to dst (which may be nil), for callers
// that reuse a buffer. On error it returns dst unchanged.
func AppendEncode(dst []byte, m *Message) ([]byte, error) {
	if m.Delims != standard {
		if err := m.Delims.validate(); err != nil {
			return dst, fhir.Errorf(fhir.KindInvalid, "hl7v2: unusable delimiters").At("MSH-2").Wrap(err)
		}
	}
	if len(m.Segments) == 0 || m.Segments[0] == nil || m.Segments[0].Name != "MSH" {
		return dst, fhir.Errorf(fhir.KindInvalid, "hl7v2: the first segment must be MSH").At("MSH")
	}
	start := len(dst)
	e := encoder{d: m.Delims, buf: dst, class: &standardClasses}
	if m.Delims != standard {
		e.class = classesOf(m.Delims)
	}
	for i, s := range m.Segments {
		if s == nil || !validSegmentName(s.Name) {
			return dst[:start], fhir.Errorf(fhir.KindInvalid, "hl7v2: segment %d has an invalid segment id", i+1)
		}
		if err := e.segment(s); err != nil {
			return dst[:start], err
		}
	}
	return e.buf, nil
}

type encoder struct {
	d   Delimiters
	buf []byte
	// class sorts bytes for value: plain, special (escape rewrites it: the
	// delimiters and control characters other than tab) or non-ASCII.
	class *[256]byte
}

// standard is |^~\&, known valid: Encode skips validating it. (A private
// copy, since DefaultDelimiters is an exported variable.)
var standard = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// standardClasses is classesOf(standard). Read-only.
var standardClasses = *classesOf(standard)

const (
	plain byte = iota
	special
	nonASCII
)

func classesOf(d Delimiters) *[256]byte {
	var class [256]byte
	for c := 0; c < 0x20; c++ {
		if c != '\t' {
			class[c] = special
		}
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		class[c] = nonASCII
	}
	class[d.Field] = special
	class[d.Component] = special
	class[d.Subcomponent] = special
	class[d.Repetition] = special
	class[d.Escape] = special
	if d.Truncation != 0 {
		class[d.Truncation] = special
	}
	return &class
}

// segment writes s. Trailing empties are trimmed on the output, level by
// level (trimTrailing): no pass over the tree to find them first.
func (e *encoder) segment(s *Segment) error {
	e.buf = append(e.buf, s.Name...)
	first := 0
	if isHeader(s.Name) {
		d := e.d
		e.buf = append(e.buf, d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent)
		if d.Truncation != 0 {
			e.buf = append(e.buf, d.Truncation)
		}
		first = 2
	}
	floor := len(e.buf)
	for n := first; n < len(s.Fields); n++ {
		e.buf = append(e.buf, e.d.Field)
		if err := e.field(s.Fields[n]); err != nil {
			return fhir.Errorf(fhir.KindInvalid, "hl7v2: invalid UTF-8 in %s-%d", s.Name, n+1).At(s.Name + "-" + strconv.Itoa(n+1))
		}
	}
	e.trimTrailing(floor, e.d.Field)
	e.buf = append(e.buf, '\r')
	return nil
}

var errUTF8 = fhir.Errorf(fhir.KindInvalid, "invalid UTF-8")

func (e *encoder) field(f Field) error {
	d := e.d
	fs := len(e.buf)
	for i, r := range f {
		if i > 0 {
			e.buf = append(e.buf, d.Repetition)
		}
		rs := len(e.buf)
		for j, c := range r {
			if j > 0 {
				e.buf = append(e.buf, d.Component)
			}
			cs := len(e.buf)
			for k, v := range c {
				if k > 0 {
					e.buf = append(e.buf, d.Subcomponent)
				}
				if v != "" {
					if err := e.value(v); err != nil {
						return err
					}
				}
			}
			e.trimTrailing(cs, d.Subcomponent)
		}
		e.trimTrailing(rs, d.Component)
	}
	e.trimTrailing(fs, d.Repetition)
	return nil
}

// trimTrailing drops the delimiters sep that end the output after floor:
// the separators of the trailing empty items just written (values are
// escaped, so a delimiter byte never ends one).
func (e *encoder) trimTrailing(floor int, sep byte) {
	i := len(e.buf)
	for i > floor && e.buf[i-1] == sep {
		i--
	}
	e.buf = e.buf[:i]
}

// value appends v, escaped. The common case, plain ASCII with no
// delimiter, is one scan and one copy.
func (e *encoder) value(v string) error {
	ascii := true
	for i := 0; i < len(v); i++ {
		switch e.class[v[i]] {
		case plain:
			continue
		case nonASCII:
			ascii = false
			continue
		}
		if !utf8.ValidString(v) {
			return errUTF8
		}
		e.buf = append(e.buf, v[:i]...)
		e.escape(v[i:])
		return nil
	}
	if !ascii && !utf8.ValidString(v) {
		return errUTF8
	}
	e.buf = append(e.buf, v...)
	return nil
}

const hexDigits = "0123456789ABCDEF"

func (e *encoder) escape(v string) {
	d := e.d
	for i := 0; i < len(v); i++ {
		c := v[i]
		if e.class[c] != special {
			e.buf = append(e.buf, c)
			continue
		}
		e.buf = append(e.buf, d.Escape)
		switch {
		case c == d.Field:
			e.buf = append(e.buf, 'F')
		case c == d.Component:
			e.buf = append(e.buf, 'S')
		case c == d.Subcomponent:
			e.buf = append(e.buf, 'T')
		case c == d.Repetition:
			e.buf = append(e.buf, 'R')
		case c == d.Escape:
			e.buf = append(e.buf, 'E')
		case d.Truncation != 0 && c == d.Truncation:
			e.buf = append(e.buf, 'P')
		case c == '\n':
			e.buf = append(e.buf, ".br"...)
		default:
			e.buf = append(e.buf, 'X', hexDigits[c>>4], hexDigits[c&0xf])
		}
		e.buf = append(e.buf, d.Escape)
	}
}

// trim returns n less the trailing items that are empty. (The encoder trims
// on its output instead; the tests use trim.)
func trim(n int, isEmpty func(int) bool) int {
	for n > 0 && isEmpty(n-1) {
		n--
	}
	return n
}
