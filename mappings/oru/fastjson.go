package oru

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// A purpose-built decoder for the resource subset in resources.go. It is a
// fast path only: it accepts the plain JSON a FHIR server stores (exact
// member names, no duplicates, strings without escapes, values of the
// expected JSON types) and reports false on anything else, in which case
// the caller decodes with encoding/json. So it never decides what a
// document means differently from encoding/json; it only decides faster
// (the differential test and fuzz target in fastjson_test.go hold it to
// that). Strings are substrings of one copy of the input.

// maxDepth bounds the nesting of skipped values before giving up the fast
// path (encoding/json's own limit is 10000).
const maxDepth = 512

type scanner struct {
	s     string
	i     int
	depth int
}

func (d *scanner) ws() {
	s, i := d.s, d.i
	for i < len(s) {
		c := s[i]
		if c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			break
		}
		i++
	}
	d.i = i
}

// peek returns the next non-space byte, or 0 at the end.
func (d *scanner) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *scanner) lit(word string) bool {
	if strings.HasPrefix(d.s[d.i:], word) {
		d.i += len(word)
		return true
	}
	return false
}

// null consumes a null if one is next.
func (d *scanner) null() bool { return d.peek() == 'n' && d.lit("null") }

// str reads a string without escapes or control characters, in valid
// UTF-8.
func (d *scanner) str() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	start := d.i + 1
	n := strings.IndexByte(d.s[start:], '"')
	if n < 0 {
		return "", false
	}
	v := d.s[start : start+n]
	ascii := true
	i := 0
	for ; i+8 <= len(v); i += 8 { // eight bytes at a time while all are plain
		w := uint64(v[i]) | uint64(v[i+1])<<8 | uint64(v[i+2])<<16 | uint64(v[i+3])<<24 |
			uint64(v[i+4])<<32 | uint64(v[i+5])<<40 | uint64(v[i+6])<<48 | uint64(v[i+7])<<56
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		below20 := (w - 0x20*ones) & ^w & highs
		x := w ^ '\\'*ones
		backslash := (x - ones) & ^x & highs
		if (w&highs)|below20|backslash != 0 {
			break
		}
	}
	for ; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == '\\' {
			return "", false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.ValidString(v) {
		return "", false
	}
	d.i = start + n + 1
	return v, true
}

// num reads a number, by the JSON grammar, as its text.
func (d *scanner) num() (string, bool) {
	d.ws()
	s, j := d.s, d.i
	digits := func() bool {
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(s) && s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case !digits():
		return "", false
	}
	if j < len(s) && s[j] == '.' {
		j++
		if !digits() {
			return "", false
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if !digits() {
			return "", false
		}
	}
	v := s[d.i:j]
	d.i = j
	return v, true
}

// skip reads and discards any value.
func (d *scanner) skip() bool {
	switch d.peek() {
	case '{':
		return d.object(nil, func(int) bool { return false })
	case '[':
		return d.array(func() bool { return d.skip() })
	case '"':
		if _, ok := d.str(); ok {
			return true
		}
		// A string with escapes: check its syntax only.
		for j := d.i + 1; j < len(d.s); j++ {
			switch c := d.s[j]; {
			case c == '"':
				if !utf8.ValidString(d.s[d.i+1 : j]) {
					return false
				}
				d.i = j + 1
				return true
			case c < 0x20:
				return false
			case c == '\\':
				j++
				if j >= len(d.s) {
					return false
				}
				switch d.s[j] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				case 'u':
					if j+4 >= len(d.s) {
						return false
					}
					for _, h := range []byte(d.s[j+1 : j+5]) {
						if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
							return false
						}
					}
					j += 4
				default:
					return false
				}
			}
		}
		return false
	case 't':
		return d.lit("true")
	case 'f':
		return d.lit("false")
	case 'n':
		return d.lit("null")
	}
	_, ok := d.num()
	return ok
}

// object reads an object whose known member names are keys, calling member
// with a key's index for its value. Unknown members are skipped, unless
// encoding/json would match them to a known name case-insensitively;
// duplicates of known members give up the fast path.
func (d *scanner) object(keys []string, member func(k int) bool) bool {
	if d.peek() != '{' {
		return false
	}
	if d.depth++; d.depth > maxDepth {
		return false
	}
	d.i++
	var seen uint32
	if d.peek() == '}' {
		d.i++
		d.depth--
		return true
	}
	for {
		key, ok := d.str()
		if !ok || d.peek() != ':' {
			return false
		}
		d.i++
		k := -1
		for n, name := range keys {
			if key == name {
				k = n
				break
			}
		}
		if k >= 0 {
			if seen&(1<<k) != 0 || !member(k) {
				return false
			}
			seen |= 1 << k
		} else {
			for _, name := range keys {
				if strings.EqualFold(key, name) {
					return false
				}
			}
			for j := 0; j < len(key); j++ {
				if key[j] >= utf8.RuneSelf {
					return false // could fold to a known name (U+017F, U+212A)
				}
			}
			if !d.skip() {
				return false
			}
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// array reads an array, calling elem for each element.
func (d *scanner) array(elem func() bool) bool {
	if d.peek() != '[' {
		return false
	}
	if d.depth++; d.depth > maxDepth {
		return false
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		d.depth--
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// Typed values. Each leaves its destination alone for null, as
// encoding/json does.

func (d *scanner) stringVal(dst *string) bool {
	if d.null() {
		return true
	}
	v, ok := d.str()
	*dst = v
	return ok
}

func (d *scanner) numberVal(dst *json.Number) bool {
	if d.null() {
		return true
	}
	v, ok := d.num()
	*dst = json.Number(v)
	return ok
}

func (d *scanner) stringPtr(dst **string) bool {
	if d.null() {
		return true
	}
	v, ok := d.str()
	if ok {
		*dst = &v
	}
	return ok
}

func (d *scanner) strings(dst *[]string) bool {
	if d.null() {
		return true
	}
	out := make([]string, 0, 2)
	ok := d.array(func() bool {
		var v string
		ok := d.stringVal(&v)
		out = append(out, v)
		return ok
	})
	*dst = out
	return ok
}

// slice decodes an array of T with dec; a null element is T's zero value.
func slice[T any](d *scanner, dst *[]T, dec func(*scanner, *T) bool) bool {
	if d.null() {
		return true
	}
	out := make([]T, 0, 2)
	ok := d.array(func() bool {
		out = append(out, *new(T))
		if d.null() {
			return true
		}
		return dec(d, &out[len(out)-1])
	})
	*dst = out
	return ok
}

// ptr decodes an object into a new T; null leaves *dst nil.
func ptr[T any](d *scanner, dst **T, dec func(*scanner, *T) bool) bool {
	if d.null() {
		return true
	}
	v := new(T)
	*dst = v
	return dec(d, v)
}

// optional decodes an object into *dst; null leaves it alone.
func optional[T any](d *scanner, dst *T, dec func(*scanner, *T) bool) bool {
	if d.null() {
		return true
	}
	return dec(d, dst)
}

var codingKeys = []string{"system", "code", "display"}

func decCoding(d *scanner, c *coding) bool {
	return d.object(codingKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&c.System)
		case 1:
			return d.stringVal(&c.Code)
		default:
			return d.stringVal(&c.Display)
		}
	})
}

var conceptKeys = []string{"coding", "text"}

func decConcept(d *scanner, c *codeableConcept) bool {
	return d.object(conceptKeys, func(k int) bool {
		if k == 0 {
			return slice(d, &c.Coding, decCoding)
		}
		return d.stringVal(&c.Text)
	})
}

var referenceKeys = []string{"reference", "display"}

func decReference(d *scanner, r *reference) bool {
	return d.object(referenceKeys, func(k int) bool {
		if k == 0 {
			return d.stringVal(&r.Reference)
		}
		return d.stringVal(&r.Display)
	})
}

var identifierKeys = []string{"use", "type", "system", "value", "assigner"}

func decIdentifier(d *scanner, id *identifier) bool {
	return d.object(identifierKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&id.Use)
		case 1:
			return ptr(d, &id.Type, decConcept)
		case 2:
			return d.stringVal(&id.System)
		case 3:
			return d.stringVal(&id.Value)
		default:
			return ptr(d, &id.Assigner, decReference)
		}
	})
}

var quantityKeys = []string{"value", "unit", "system", "code"}

func decQuantity(d *scanner, q *quantity) bool {
	return d.object(quantityKeys, func(k int) bool {
		switch k {
		case 0:
			return d.numberVal(&q.Value)
		case 1:
			return d.stringVal(&q.Unit)
		case 2:
			return d.stringVal(&q.System)
		default:
			return d.stringVal(&q.Code)
		}
	})
}

var sampledKeys = []string{"origin", "period", "factor", "data"}

func decSampled(d *scanner, s *sampledData) bool {
	return d.object(sampledKeys, func(k int) bool {
		switch k {
		case 0:
			return optional(d, &s.Origin, decQuantity)
		case 1:
			return d.numberVal(&s.Period)
		case 2:
			return d.numberVal(&s.Factor)
		default:
			return d.stringVal(&s.Data)
		}
	})
}

var periodKeys = []string{"start", "end"}

func decPeriod(d *scanner, p *period) bool {
	return d.object(periodKeys, func(k int) bool {
		if k == 0 {
			return d.stringVal(&p.Start)
		}
		return d.stringVal(&p.End)
	})
}

var componentKeys = []string{"code", "valueQuantity", "valueString", "valueCodeableConcept"}

func decComponent(d *scanner, c *component) bool {
	return d.object(componentKeys, func(k int) bool {
		switch k {
		case 0:
			return optional(d, &c.Code, decConcept)
		case 1:
			return ptr(d, &c.ValueQuantity, decQuantity)
		case 2:
			return d.stringPtr(&c.ValueString)
		default:
			return ptr(d, &c.ValueCodeableConcept, decConcept)
		}
	})
}

var observationKeys = []string{"resourceType", "id", "status", "code", "effectiveDateTime", "effectiveInstant",
	"effectivePeriod", "issued", "valueQuantity", "valueString", "valueCodeableConcept", "valueSampledData", "component"}

func decObservation(d *scanner, o *Observation) bool {
	return d.object(observationKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&o.ResourceType)
		case 1:
			return d.stringVal(&o.ID)
		case 2:
			return d.stringVal(&o.Status)
		case 3:
			return optional(d, &o.Code, decConcept)
		case 4:
			return d.stringVal(&o.EffectiveDateTime)
		case 5:
			return d.stringVal(&o.EffectiveInstant)
		case 6:
			return ptr(d, &o.EffectivePeriod, decPeriod)
		case 7:
			return d.stringVal(&o.Issued)
		case 8:
			return ptr(d, &o.ValueQuantity, decQuantity)
		case 9:
			return d.stringPtr(&o.ValueString)
		case 10:
			return ptr(d, &o.ValueCodeableConcept, decConcept)
		case 11:
			return ptr(d, &o.ValueSampledData, decSampled)
		default:
			return slice(d, &o.Component, decComponent)
		}
	})
}

var nameKeys = []string{"use", "family", "given", "prefix", "suffix"}

func decName(d *scanner, n *humanName) bool {
	return d.object(nameKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&n.Use)
		case 1:
			return d.stringVal(&n.Family)
		case 2:
			return d.strings(&n.Given)
		case 3:
			return d.strings(&n.Prefix)
		default:
			return d.strings(&n.Suffix)
		}
	})
}

var patientKeys = []string{"resourceType", "identifier", "name", "birthDate", "gender"}

func decPatient(d *scanner, p *Patient) bool {
	return d.object(patientKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&p.ResourceType)
		case 1:
			return slice(d, &p.Identifier, decIdentifier)
		case 2:
			return slice(d, &p.Name, decName)
		case 3:
			return d.stringVal(&p.BirthDate)
		default:
			return d.stringVal(&p.Gender)
		}
	})
}

var deviceKeys = []string{"resourceType", "identifier", "type"}

func decDevice(d *scanner, v *Device) bool {
	return d.object(deviceKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&v.ResourceType)
		case 1:
			return slice(d, &v.Identifier, decIdentifier)
		default:
			return ptr(d, &v.Type, decConcept)
		}
	})
}

var encounterKeys = []string{"resourceType", "identifier", "class"}

func decEncounter(d *scanner, e *Encounter) bool {
	return d.object(encounterKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&e.ResourceType)
		case 1:
			return slice(d, &e.Identifier, decIdentifier)
		default:
			return ptr(d, &e.Class, decCoding)
		}
	})
}

var locationKeys = []string{"resourceType", "identifier", "name"}

func decLocation(d *scanner, l *Location) bool {
	return d.object(locationKeys, func(k int) bool {
		switch k {
		case 0:
			return d.stringVal(&l.ResourceType)
		case 1:
			return slice(d, &l.Identifier, decIdentifier)
		default:
			return d.stringVal(&l.Name)
		}
	})
}

// fastDecode decodes b into *v with dec, reporting false (and leaving *v
// in an unspecified state) when the document needs encoding/json.
func fastDecode[T any](b []byte, v *T, dec func(*scanner, *T) bool) bool {
	return fastDecodeString(new(scanner), string(b), v, dec)
}

// fastDecodeString is fastDecode on a string, reusing the scanner d.
func fastDecodeString[T any](d *scanner, s string, v *T, dec func(*scanner, *T) bool) bool {
	*d = scanner{s: s}
	if !dec(d, v) {
		return false
	}
	d.ws()
	return d.i == len(d.s)
}
