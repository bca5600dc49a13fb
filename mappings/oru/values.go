package oru

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/mappings/hl7v2"
	"github.com/pulsewire/pulsewire/mappings/vocab"
)

// byCoding is vocab.ByCoding on our codings (the same fields, without
// copying them): MDC codings first, then LOINC.
func byCoding(cs []coding) (*vocab.Vital, bool) {
	for i := range cs {
		if cs[i].System == systemMDC {
			if v, ok := vocab.ByMDC(cs[i].Code); ok {
				return v, true
			}
		}
	}
	for i := range cs {
		if cs[i].System == systemLOINC {
			if v, ok := vocab.ByLOINC(cs[i].Code); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func first(cs []Coding, system string) (Coding, bool) {
	for _, c := range cs {
		if c.System == system && c.Code != "" {
			return c, true
		}
	}
	return Coding{}, false
}

func firstAny(cs []coding) (coding, bool) {
	for _, c := range cs {
		if c.Code != "" {
			return c, true
		}
	}
	return coding{}, false
}

// refID is the MDC reference id of an MDC coding: its display when that is
// a reference id, else the vocabulary's.
func refID(c Coding) string {
	if strings.HasPrefix(c.Display, "MDC_") {
		return c.Display
	}
	if v, ok := vocab.ByMDC(c.Code); ok && v.MDC.Code == c.Code {
		return v.MDC.RefID
	}
	return c.Display
}

// systemName is the HL7 table 0396 name of a code system.
func systemName(system string) string {
	switch system {
	case systemLOINC:
		return "LN"
	case systemMDC:
		return "MDC"
	case systemSCT:
		return "SCT"
	case systemUCUM:
		return "UCUM"
	}
	return "L"
}

// number returns a JSON number as an HL7 NM: digits, at most one point,
// an optional sign; exponents are expanded.
func number(n json.Number) (string, error) {
	s := string(n)
	if s == "" {
		return "", errors.New("empty number")
	}
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", err
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	return s, nil
}

// decimals is the number of digits after the point in a JSON number.
func decimals(n json.Number) int {
	s := string(n)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// samples converts SampledData.data to physical values, origin + factor *
// x, with as many decimals as origin and factor together need. "E", "L" and
// "U" (error, below, above the detection limit) become empty components.
func samples(sd *sampledData) ([]string, error) {
	origin, factor := 0.0, 1.0
	var err error
	if sd.Origin.Value != "" {
		if origin, err = strconv.ParseFloat(string(sd.Origin.Value), 64); err != nil {
			return nil, err
		}
	}
	if sd.Factor != "" {
		if factor, err = strconv.ParseFloat(string(sd.Factor), 64); err != nil {
			return nil, err
		}
	}
	prec := max(decimals(sd.Origin.Value), decimals(sd.Factor))
	fields := strings.Fields(sd.Data)
	if len(fields) == 0 {
		return nil, errors.New("no samples")
	}
	out := make([]string, len(fields))
	for i, x := range fields {
		switch x {
		case "E", "L", "U":
			continue
		}
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		s := strconv.FormatFloat(origin+factor*v, 'f', prec, 64)
		if prec > 0 {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		if s == "-0" {
			s = "0"
		}
		out[i] = s
	}
	return out, nil
}

// dtm converts a FHIR date, dateTime or instant to an HL7 DTM, keeping its
// precision and UTC offset (fractions of a second to at most 4 digits).
func dtm(s string) (string, error) {
	switch len(s) {
	case 4: // YYYY
		if _, err := time.Parse("2006", s); err != nil {
			return "", err
		}
		return s, nil
	case 7: // YYYY-MM
		t, err := time.Parse("2006-01", s)
		if err != nil {
			return "", err
		}
		var buf [8]byte
		return string(t.AppendFormat(buf[:0], "200601")), nil
	case 10: // YYYY-MM-DD
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return "", err
		}
		var buf [8]byte
		return string(t.AppendFormat(buf[:0], "20060102")), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", err
	}
	var buf [32]byte
	return string(t.AppendFormat(buf[:0], "20060102150405.9999-0700")), nil
}

// eui64 returns the Device's EUI-64 as 16 upper-case hex digits, or "" when
// it has none (or a malformed one).
func eui64(ids []identifier) string {
	for _, id := range ids {
		if id.System != fhirobs.SystemEUI64 {
			continue
		}
		var b [16]byte
		n := 0
		for i := 0; i < len(id.Value); i++ {
			c := id.Value[i]
			switch {
			case c == '-' || c == ':':
				continue
			case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
			case c >= 'a' && c <= 'f':
				c -= 'a' - 'A'
			default:
				n = 17
			}
			if n >= 16 {
				n = 17
				break
			}
			b[n] = c
			n++
		}
		if n == 16 {
			return string(b[:])
		}
	}
	return ""
}

// units writes OBX-6 from a UCUM quantity: the MDC unit first with UCUM as
// the alternate (PCD), or UCUM alone.
func (b *builder) units(m *metric) hl7v2.Field {
	q := m.units
	code, text := q.Code, q.Unit
	if text == "" {
		text = code
	}
	if q.System != systemUCUM || code == "" {
		if text == "" {
			return nil
		}
		return b.a.field(text, text)
	}
	if b.s.Units == "mdc" && m.vital != nil && m.vital.Unit == code && m.vital.MDCUnit.Code != "" {
		return b.a.field(m.vital.MDCUnit.Code, m.vital.MDCUnit.RefID, "MDC", code, code, "UCUM")
	}
	return b.a.field(code, text, "UCUM")
}
