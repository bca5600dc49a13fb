package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// MaxSamples bounds the samples of one waveform.
const MaxSamples = 100_000

// Reason says why one template did not apply to a payload, or failed on
// it. It names the template, the expression and the JSON type found, never
// a payload value.
type Reason struct {
	Template   string `json:"template"`
	Expression string `json:"expression,omitempty"`
	Msg        string `json:"msg"`
}

func (r Reason) String() string {
	if r.Expression == "" {
		return "template " + r.Template + ": " + r.Msg
	}
	if strings.HasPrefix(r.Msg, "not found") {
		return "template " + r.Template + ": " + r.Expression + " " + r.Msg
	}
	return "template " + r.Template + ": " + r.Expression + ": " + r.Msg
}

// Result is what evaluating a payload against templates gave.
type Result struct {
	Measurements []Measurement
	// Failed are templates whose match expression selected something but
	// which could not read a measurement from it: the payload was meant for
	// them and is wrong (a dead letter).
	Failed []Reason
	// Unmatched are templates whose match expression selected nothing.
	Unmatched []Reason
}

// Err summarizes the result as an error: nil when measurements were made
// and no template failed; otherwise a KindUnprocessable *fhir.Error whose
// message lists the failures, or when nothing matched every template's
// reason.
func (r *Result) Err() error {
	join := func(rs []Reason) string {
		s := make([]string, len(rs))
		for i, x := range rs {
			s[i] = x.String()
		}
		return strings.Join(s, "; ")
	}
	switch {
	case len(r.Failed) > 0:
		return fhir.Errorf(fhir.KindUnprocessable, "payload cannot be mapped: %s", join(r.Failed))
	case len(r.Measurements) == 0 && len(r.Unmatched) == 0:
		return fhir.Errorf(fhir.KindUnprocessable, "no template matches the payload: no templates are loaded")
	case len(r.Measurements) == 0:
		return fhir.Errorf(fhir.KindUnprocessable, "no template matches the payload: %s", join(r.Unmatched))
	}
	return nil
}

// DecodePayload decodes a JSON payload the way Evaluate needs it (numbers
// kept as json.Number). Errors are KindInvalid and do not quote the payload.
func DecodePayload(payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "payload is not valid JSON").Wrap(err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "payload has more than one JSON value")
	}
	return doc, nil
}

// Evaluate applies the template to a decoded payload. matched reports
// whether its match expression selected anything; then either ms holds one
// Measurement per selected node, or reason says why it failed. When it
// did not match, reason says so.
func (t *Template) Evaluate(doc any) (ms []Measurement, matched bool, reason *Reason) {
	nodes := nonNull(t.match.Eval(doc, doc))
	if len(nodes) == 0 {
		return nil, false, &Reason{Template: t.Name, Expression: t.match.String(), Msg: "not found in payload"}
	}
	for _, n := range nodes {
		m, r := t.measure(doc, n)
		if r != nil {
			return nil, true, r
		}
		ms = append(ms, m)
	}
	return ms, true, nil
}

func nonNull(ns []any) []any {
	out := ns[:0:0]
	for _, n := range ns {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// jsonType names the JSON type of a decoded node for reasons.
func jsonType(n any) string {
	switch n.(type) {
	case nil:
		return "null"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", n)
}

// one evaluates e and wants at most one node. found is false when e
// selected nothing or null.
func (t *Template) one(e *Expr, doc, ctx any) (n any, found bool, r *Reason) {
	ns := nonNull(e.Eval(doc, ctx))
	switch len(ns) {
	case 0:
		return nil, false, nil
	case 1:
		return ns[0], true, nil
	}
	return nil, false, t.reason(e, "selects %d values, want one", len(ns))
}

func (t *Template) reason(e *Expr, format string, args ...any) *Reason {
	r := &Reason{Template: t.Name, Msg: fmt.Sprintf(format, args...)}
	if e != nil {
		r.Expression = e.String()
	}
	return r
}

func (t *Template) str(e *Expr, doc, ctx any) (string, bool, *Reason) {
	n, ok, r := t.one(e, doc, ctx)
	if !ok {
		return "", false, r
	}
	switch x := n.(type) {
	case string:
		if x == "" {
			return "", false, nil
		}
		return x, true, nil
	case json.Number:
		// Lenient: device ids sent as numbers are read as their text.
		return x.String(), true, nil
	}
	return "", false, t.reason(e, "is %s, want a string", jsonType(n))
}

func (t *Template) num(e *Expr, doc, ctx any) (float64, bool, *Reason) {
	n, ok, r := t.one(e, doc, ctx)
	if !ok {
		return 0, false, r
	}
	x, isNum := n.(json.Number)
	if !isNum {
		return 0, false, t.reason(e, "is %s, want a number", jsonType(n))
	}
	f, err := x.Float64()
	if err != nil || math.IsInf(f, 0) {
		return 0, false, t.reason(e, "number out of range")
	}
	return f, true, nil
}

func (t *Template) measure(doc, ctx any) (Measurement, *Reason) {
	m := Measurement{TemplateName: t.Name, Type: t.out.typ, Code: t.out.code, Category: t.out.category, Profile: t.out.profile}
	for _, id := range t.identifiers {
		v, ok, r := t.str(id.expr, doc, ctx)
		if r != nil {
			return m, r
		}
		if !ok {
			continue
		}
		if m.DeviceID == "" {
			m.DeviceID, m.DeviceIdentifierSystem = v, id.system
		}
		m.DeviceIdentifiers = append(m.DeviceIdentifiers, Identifier{System: id.system, Value: v})
	}
	if m.DeviceID == "" {
		exprs := make([]string, len(t.identifiers))
		for i, id := range t.identifiers {
			exprs[i] = id.expr.String()
		}
		return m, &Reason{Template: t.Name, Msg: "no device identifier: " + strings.Join(exprs, ", ") + " not found in payload"}
	}
	ts, ok, r := t.str(t.timestamp, doc, ctx)
	if r != nil {
		return m, r
	}
	if !ok {
		return m, t.reason(t.timestamp, "not found in payload")
	}
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return m, t.reason(t.timestamp, "not an RFC 3339 time")
	}
	m.Time = tm
	if t.patient != nil {
		if m.PatientID, _, r = t.str(t.patient, doc, ctx); r != nil {
			return m, r
		}
	}
	if t.channel != nil {
		if m.Channel, _, r = t.str(t.channel, doc, ctx); r != nil {
			return m, r
		}
	}
	for _, v := range t.values {
		x, ok, r := t.num(v.expr, doc, ctx)
		if r != nil {
			return m, r
		}
		if !ok {
			if v.required {
				return m, t.reason(v.expr, "not found in payload (value %s is required)", v.name)
			}
			continue
		}
		unit := v.unit
		if v.unitExpr != nil {
			u, ok, r := t.str(v.unitExpr, doc, ctx)
			if r != nil {
				return m, r
			}
			if ok {
				unit = u
			}
		}
		if unit == "" {
			return m, t.reason(v.unitExpr, "not found in payload and value %s has no default unit", v.name)
		}
		if !vocab.ValidUnit(unit) {
			return m, t.reason(v.unitExpr, "unit of value %s is not a UCUM unit Pulsewire knows", v.name)
		}
		if m.Values == nil {
			m.Values = map[string]Quantity{}
		}
		m.Values[v.name] = Quantity{Value: x, Unit: unit}
	}
	switch {
	case t.out.waveform != nil:
		w, r := t.readWaveform(doc, ctx)
		if r != nil {
			return m, r
		}
		m.Waveform = w
	case len(t.out.components) > 0:
		for _, c := range t.out.components {
			q, ok := m.Values[c.value]
			if !ok {
				continue // an optional value that is absent
			}
			nq, r := t.normalize(q, c.unit, c.vital, c.value)
			if r != nil {
				return m, r
			}
			m.Components = append(m.Components, Component{Key: c.key, Code: c.code, Value: nq})
		}
		if len(m.Components) == 0 {
			return m, t.reason(nil, "none of the component values is in the payload")
		}
	default:
		q, ok := m.Values[t.out.value]
		if !ok {
			return m, t.reason(nil, "value %s is not in the payload", t.out.value)
		}
		nq, r := t.normalize(q, t.out.unit, t.out.vital, t.out.value)
		if r != nil {
			return m, r
		}
		m.Value = &nq
	}
	return m, nil
}

// normalize converts q to the unit the Observation carries.
func (t *Template) normalize(q Quantity, unit string, v *vocab.Vital, name string) (Quantity, *Reason) {
	if v != nil {
		x, _, err := v.Normalize(q.Value, q.Unit)
		if err != nil {
			return q, t.reason(nil, "value %s: unit %s cannot be converted to %s", name, q.Unit, v.Unit)
		}
		return Quantity{Value: x, Unit: v.Unit}, nil
	}
	x, err := vocab.Convert(q.Value, q.Unit, unit)
	if err != nil {
		return q, t.reason(nil, "value %s: unit %s cannot be converted to %s", name, q.Unit, unit)
	}
	return Quantity{Value: x, Unit: unit}, nil
}

func (t *Template) readWaveform(doc, ctx any) (*Waveform, *Reason) {
	wo := t.out.waveform
	w := &Waveform{Factor: 1, Unit: wo.unit}
	p, ok, r := t.num(wo.period, doc, ctx)
	if r != nil {
		return nil, r
	}
	if !ok {
		return nil, t.reason(wo.period, "not found in payload")
	}
	if p <= 0 {
		return nil, t.reason(wo.period, "must be a positive number of milliseconds")
	}
	w.PeriodMs = p
	for _, o := range []struct {
		e   *Expr
		dst *float64
	}{{wo.factor, &w.Factor}, {wo.origin, &w.Origin}} {
		if o.e == nil {
			continue
		}
		x, ok, r := t.num(o.e, doc, ctx)
		if r != nil {
			return nil, r
		}
		if ok {
			*o.dst = x
		}
	}
	n, ok, r := t.one(wo.data, doc, ctx)
	if r != nil {
		return nil, r
	}
	if !ok {
		return nil, t.reason(wo.data, "not found in payload")
	}
	arr, isArr := n.([]any)
	if !isArr {
		return nil, t.reason(wo.data, "is %s, want an array of numbers", jsonType(n))
	}
	if len(arr) == 0 || len(arr) > MaxSamples {
		return nil, t.reason(wo.data, "has %d samples, want 1 to %d", len(arr), MaxSamples)
	}
	w.Data = make([]float64, len(arr))
	for i, s := range arr {
		num, isNum := s.(json.Number)
		if !isNum {
			return nil, t.reason(wo.data, "sample %d is %s, want a number", i, jsonType(s))
		}
		f, err := num.Float64()
		if err != nil || math.IsInf(f, 0) {
			return nil, t.reason(wo.data, "sample %d out of range", i)
		}
		w.Data[i] = f
	}
	return w, nil
}
