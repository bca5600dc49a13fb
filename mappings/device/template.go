package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Template is a compiled device mapping template. It is immutable.
type Template struct {
	Name        string
	Description string
	match       *Expr
	identifiers []identifierExpr
	timestamp   *Expr
	patient     *Expr // nil: not read
	channel     *Expr // nil: not read
	values      []valueExpr
	out         output
}

type identifierExpr struct {
	system string
	expr   *Expr
}

type valueExpr struct {
	name     string
	expr     *Expr
	required bool
	unit     string // default unit
	unitExpr *Expr  // nil: always unit
}

type output struct {
	typ        string
	vital      *vocab.Vital // nil: explicit codes
	code       []vocab.Coding
	unit       string
	category   string
	profile    string
	value      string // name of the value that is valueQuantity
	components []componentOut
	waveform   *waveformOut
}

type componentOut struct {
	key   string
	vital *vocab.Vital
	code  []vocab.Coding
	unit  string
	value string
}

type waveformOut struct {
	period, factor, origin, data *Expr // factor, origin may be nil
	unit                         string
}

// The template file format. Every member is described in
// mappings/device/templates/README.md.
type templateFile struct {
	Name              string           `json:"name"`
	Description       string           `json:"description,omitempty"`
	Match             string           `json:"match"`
	DeviceIdentifiers []identifierFile `json:"deviceIdentifiers"`
	Timestamp         string           `json:"timestamp"`
	PatientID         string           `json:"patientId,omitempty"`
	Channel           string           `json:"channel,omitempty"`
	Values            []valueFile      `json:"values"`
	Output            outputFile       `json:"output"`
}

type identifierFile struct {
	System     string `json:"system"`
	Expression string `json:"expression"`
}

type valueFile struct {
	Name           string `json:"name"`
	Expression     string `json:"expression"`
	Required       bool   `json:"required"`
	Unit           string `json:"unit"`
	UnitExpression string `json:"unitExpression,omitempty"`
}

type outputFile struct {
	Vocab      string          `json:"vocab,omitempty"`
	Code       []vocab.Coding  `json:"code,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	Category   string          `json:"category,omitempty"`
	Profile    string          `json:"profile,omitempty"`
	Value      string          `json:"value,omitempty"`
	Components []componentFile `json:"components,omitempty"`
	Waveform   *waveformFile   `json:"waveform,omitempty"`
}

type componentFile struct {
	Vocab string         `json:"vocab,omitempty"`
	Code  []vocab.Coding `json:"code,omitempty"`
	Unit  string         `json:"unit,omitempty"`
	Value string         `json:"value"`
}

type waveformFile struct {
	PeriodMs string `json:"periodMs"`
	Factor   string `json:"factor,omitempty"`
	Origin   string `json:"origin,omitempty"`
	Data     string `json:"data"`
	Unit     string `json:"unit,omitempty"`
}

var templateName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ParseTemplate compiles one template file. file names it in errors. The
// errors are *fhir.Error of KindInvalid whose message says what is wrong
// and where (the file and the template member).
func ParseTemplate(file string, data []byte) (*Template, error) {
	bad := func(member, format string, args ...any) error {
		return fhir.Errorf(fhir.KindInvalid, "template file %s: %s: %s", file, member, fmt.Sprintf(format, args...))
	}
	var f templateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "template file %s: not a template: %v", file, err)
	}
	if dec.More() {
		return nil, bad("(document)", "more than one JSON value")
	}
	if !templateName.MatchString(f.Name) {
		return nil, bad("name", "want 1-64 of a-z 0-9 _ . - starting with a letter or digit")
	}
	t := &Template{Name: f.Name, Description: f.Description}
	var err error
	parse := func(member, src string) *Expr {
		if err != nil {
			return nil
		}
		var e *Expr
		if e, err = ParseExpr(src); err != nil {
			err = bad(member, "%v", err)
		}
		return e
	}
	t.match = parse("match", f.Match)
	if len(f.DeviceIdentifiers) == 0 && err == nil {
		err = bad("deviceIdentifiers", "at least one is required")
	}
	for i, id := range f.DeviceIdentifiers {
		member := fmt.Sprintf("deviceIdentifiers[%d]", i)
		if id.System == "" && err == nil {
			err = bad(member+".system", "required (a URI such as urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680 for EUI-64)")
		}
		t.identifiers = append(t.identifiers, identifierExpr{system: id.System, expr: parse(member+".expression", id.Expression)})
	}
	t.timestamp = parse("timestamp", f.Timestamp)
	if f.PatientID != "" {
		t.patient = parse("patientId", f.PatientID)
	}
	if f.Channel != "" {
		t.channel = parse("channel", f.Channel)
	}
	names := map[string]bool{}
	for i, v := range f.Values {
		member := fmt.Sprintf("values[%d]", i)
		if err != nil {
			break
		}
		switch {
		case v.Name == "":
			err = bad(member+".name", "required")
		case names[v.Name]:
			err = bad(member+".name", "%q is declared twice", v.Name)
		case v.Unit == "" && v.UnitExpression == "":
			err = bad(member+".unit", "required (a UCUM code), or give unitExpression")
		case v.Unit != "" && !vocab.ValidUnit(v.Unit):
			err = bad(member+".unit", "%q is not a UCUM unit Pulsewire knows (%s)", v.Unit, strings.Join(vocab.UnitCodes(), " "))
		}
		names[v.Name] = true
		ve := valueExpr{name: v.Name, required: v.Required, unit: v.Unit, expr: parse(member+".expression", v.Expression)}
		if v.UnitExpression != "" {
			ve.unitExpr = parse(member+".unitExpression", v.UnitExpression)
		}
		t.values = append(t.values, ve)
	}
	if err != nil {
		return nil, err
	}
	if t.out, err = compileOutput(f.Output, f.Name, names, func(member, format string, args ...any) error {
		return bad("output."+member, format, args...)
	}); err != nil {
		return nil, err
	}
	if f.Output.Waveform != nil && len(f.Values) > 0 {
		return nil, bad("values", "a waveform template reads its samples in output.waveform; values must be empty")
	}
	return t, nil
}

func compileOutput(f outputFile, name string, values map[string]bool, bad func(member, format string, args ...any) error) (output, error) {
	o := output{category: f.Category, profile: f.Profile, value: f.Value}
	if o.category == "" {
		o.category = vocab.CategoryVitalSigns
	}
	switch {
	case f.Vocab != "" && len(f.Code) > 0:
		return o, bad("code", "give vocab or code, not both")
	case f.Vocab != "":
		v, ok := vocab.ByKey(f.Vocab)
		if !ok {
			return o, bad("vocab", "%q is not a vocab key (%s)", f.Vocab, strings.Join(vocab.Keys(), " "))
		}
		if v.Kind == vocab.KindComponent {
			return o, bad("vocab", "%q is a component; use it in output.components", f.Vocab)
		}
		o.vital, o.typ, o.code, o.unit = v, v.Key, v.Codings(), v.Unit
		if o.profile == "" {
			o.profile = v.Profile
		}
		if f.Unit != "" && f.Unit != v.Unit {
			return o, bad("unit", "the vocab row %q fixes the unit %q", v.Key, v.Unit)
		}
	case len(f.Code) > 0:
		for i, c := range f.Code {
			if c.System == "" || c.Code == "" {
				return o, bad(fmt.Sprintf("code[%d]", i), "system and code are required")
			}
		}
		o.typ, o.code, o.unit = name, f.Code, f.Unit
	default:
		return o, bad("vocab", "give vocab (a vocab key) or code (explicit codings)")
	}
	kind := vocab.KindQuantity
	switch {
	case f.Waveform != nil:
		kind = vocab.KindWaveform
	case len(f.Components) > 0:
		kind = vocab.KindPanel
	}
	if o.vital != nil && o.vital.Kind != kind {
		return o, bad("vocab", "%q makes a %s Observation; the output describes a %s", o.vital.Key, o.vital.Kind, kind)
	}
	switch kind {
	case vocab.KindQuantity:
		if o.unit == "" || !vocab.ValidUnit(o.unit) {
			return o, bad("unit", "a UCUM unit Pulsewire knows is required")
		}
		if !values[f.Value] {
			return o, bad("value", "must name one of the template's values")
		}
	case vocab.KindPanel:
		if f.Value != "" {
			return o, bad("value", "a panel has components, not a value")
		}
		for i, c := range f.Components {
			member := fmt.Sprintf("components[%d]", i)
			co := componentOut{value: c.Value}
			switch {
			case c.Vocab != "":
				v, ok := vocab.ByKey(c.Vocab)
				if !ok || v.Kind != vocab.KindComponent {
					return o, bad(member+".vocab", "%q is not a component vocab key", c.Vocab)
				}
				if o.vital != nil && !contains(o.vital.Components, v.Key) {
					return o, bad(member+".vocab", "%q is not a component of %q", v.Key, o.vital.Key)
				}
				co.key, co.vital, co.code, co.unit = v.Key, v, v.Codings(), v.Unit
			case len(c.Code) > 0:
				co.code, co.unit = c.Code, c.Unit
				if !vocab.ValidUnit(co.unit) {
					return o, bad(member+".unit", "a UCUM unit Pulsewire knows is required")
				}
			default:
				return o, bad(member, "give vocab or code")
			}
			if !values[c.Value] {
				return o, bad(member+".value", "must name one of the template's values")
			}
			o.components = append(o.components, co)
		}
	case vocab.KindWaveform:
		w := f.Waveform
		wo := &waveformOut{unit: w.Unit}
		if wo.unit == "" {
			wo.unit = o.unit
		}
		if !vocab.ValidUnit(wo.unit) {
			return o, bad("waveform.unit", "a UCUM unit Pulsewire knows is required")
		}
		var err error
		for _, p := range []struct {
			member, src string
			dst         **Expr
			required    bool
		}{{"periodMs", w.PeriodMs, &wo.period, true}, {"factor", w.Factor, &wo.factor, false},
			{"origin", w.Origin, &wo.origin, false}, {"data", w.Data, &wo.data, true}} {
			if p.src == "" && !p.required {
				continue
			}
			if *p.dst, err = ParseExpr(p.src); err != nil {
				return o, bad("waveform."+p.member, "%v", err)
			}
		}
		o.waveform = wo
	}
	return o, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
