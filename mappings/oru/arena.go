package oru

import (
	"strings"

	"github.com/pulsewire/pulsewire/mappings/hl7v2"
)

// arena hands out the slices of one message from a few shared backing
// arrays, so building a message costs a handful of allocations instead of
// three per field. Every slice it returns has its capacity capped at its
// length: a caller that appends to a field, repetition or component of the
// returned message gets a new array and never overwrites a neighbour. When
// a backing array runs out a new one is started; slices already handed out
// keep pointing at the old one, which stays valid.
type arena struct {
	fields []hl7v2.Field
	reps   []hl7v2.Repetition
	comps  []hl7v2.Component
	strs   []string
}

// Sizes per segment, from the builders below (fields; components and
// strings are upper bounds for the usual case).
const (
	mshFields, pidFields, pv1Fields, obrFields, obxFields = 21, 8, 19, 7, 18
	fixedComps, obxComps                                  = 68, 25
)

func (a *arena) init(nOBX int, ms []metric) {
	extra := 0
	for i := range ms {
		extra += len(ms[i].samples)
	}
	a.fields = make([]hl7v2.Field, 0, mshFields+pidFields+pv1Fields+obrFields+obxFields*nOBX)
	a.reps = make([]hl7v2.Repetition, 0, 26+11*nOBX)
	a.comps = make([]hl7v2.Component, 0, fixedComps+obxComps*nOBX+extra)
	a.strs = make([]string, 0, fixedComps+obxComps*nOBX+extra)
}

// segment returns n empty fields.
func (a *arena) segment(n int) []hl7v2.Field {
	if cap(a.fields)-len(a.fields) < n {
		a.fields = make([]hl7v2.Field, 0, max(n, 64))
	}
	l := len(a.fields)
	a.fields = a.fields[:l+n]
	return a.fields[l : l+n : l+n]
}

func (a *arena) needStrs(n int) {
	if cap(a.strs)-len(a.strs) < n {
		a.strs = make([]string, 0, max(n, 64))
	}
}

func (a *arena) needComps(n int) {
	if cap(a.comps)-len(a.comps) < n {
		a.comps = make([]hl7v2.Component, 0, max(n, 64))
	}
}

func (a *arena) needReps(n int) {
	if cap(a.reps)-len(a.reps) < n {
		a.reps = make([]hl7v2.Repetition, 0, max(n, 32))
	}
}

// rep returns a repetition whose components are vals, one subcomponent
// each. Trailing empties are trimmed by the encoder.
func (a *arena) rep(vals ...string) hl7v2.Repetition {
	n := len(vals)
	a.needStrs(n)
	a.needComps(n)
	sb := len(a.strs)
	a.strs = append(a.strs, vals...)
	s := a.strs[sb:]
	cb := len(a.comps)
	for i := range s {
		a.comps = append(a.comps, s[i:i+1:i+1])
	}
	return a.comps[cb : cb+n : cb+n]
}

// one returns a field of one repetition holding r.
func (a *arena) one(r hl7v2.Repetition) hl7v2.Field {
	a.needReps(1)
	a.reps = append(a.reps, r)
	n := len(a.reps)
	return a.reps[n-1 : n : n]
}

// field returns a field of one repetition whose components are vals.
func (a *arena) field(vals ...string) hl7v2.Field { return a.one(a.rep(vals...)) }

// split returns a field of one repetition whose components are the parts
// of v between sep bytes.
func (a *arena) split(v string, sep byte) hl7v2.Field {
	n := strings.Count(v, string(sep)) + 1
	a.needStrs(n)
	a.needComps(n)
	sb := len(a.strs)
	for {
		part, rest, ok := strings.Cut(v, string(sep))
		a.strs = append(a.strs, part)
		if !ok {
			break
		}
		v = rest
	}
	s := a.strs[sb:]
	cb := len(a.comps)
	for i := range s {
		a.comps = append(a.comps, s[i:i+1:i+1])
	}
	return a.one(a.comps[cb : cb+n : cb+n])
}

// cx returns one identifier as CX: value^^^authority^type, the authority
// (CX-4, an HD) in subcomponents.
func (a *arena) cx(value string, auth HD, typ string) hl7v2.Repetition {
	a.needStrs(5)
	a.needComps(5)
	sb := len(a.strs)
	a.strs = append(a.strs, value, auth.Namespace, auth.UniversalID, auth.UniversalIDType, typ)
	s := a.strs[sb : sb+5]
	cb := len(a.comps)
	a.comps = append(a.comps, s[0:1:1], nil, nil, s[1:4:4], s[4:5:5])
	return a.comps[cb : cb+5 : cb+5]
}
