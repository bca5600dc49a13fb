package oru

import (
	"encoding/json"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// The subset of FHIR R4 the translation reads. Numbers stay json.Number so a
// value is written with exactly the digits it was stored with.

// coding is Coding: decoded straight into the type profiles see, so a
// Metric's codings need no copy. (encoding/json matches the members
// "system", "code" and "display" to its fields.)
type coding = Coding

type codeableConcept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

type reference struct {
	Reference string `json:"reference"`
	Display   string `json:"display"`
}

type identifier struct {
	Use      string           `json:"use"`
	Type     *codeableConcept `json:"type"`
	System   string           `json:"system"`
	Value    string           `json:"value"`
	Assigner *reference       `json:"assigner"`
}

type quantity struct {
	Value  json.Number `json:"value"`
	Unit   string      `json:"unit"`
	System string      `json:"system"`
	Code   string      `json:"code"`
}

type sampledData struct {
	Origin quantity    `json:"origin"`
	Period json.Number `json:"period"`
	Factor json.Number `json:"factor"`
	Data   string      `json:"data"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type component struct {
	Code                 codeableConcept  `json:"code"`
	ValueQuantity        *quantity        `json:"valueQuantity"`
	ValueString          *string          `json:"valueString"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
}

// Observation is the part of a FHIR Observation the ORU reads.
type Observation struct {
	ResourceType         string           `json:"resourceType"`
	ID                   string           `json:"id"`
	Status               string           `json:"status"`
	Code                 codeableConcept  `json:"code"`
	EffectiveDateTime    string           `json:"effectiveDateTime"`
	EffectiveInstant     string           `json:"effectiveInstant"`
	EffectivePeriod      *period          `json:"effectivePeriod"`
	Issued               string           `json:"issued"`
	ValueQuantity        *quantity        `json:"valueQuantity"`
	ValueString          *string          `json:"valueString"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
	ValueSampledData     *sampledData     `json:"valueSampledData"`
	Component            []component      `json:"component"`
}

type humanName struct {
	Use    string   `json:"use"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix"`
	Suffix []string `json:"suffix"`
}

// Patient is the part of a FHIR Patient the ORU reads.
type Patient struct {
	ResourceType string       `json:"resourceType"`
	Identifier   []identifier `json:"identifier"`
	Name         []humanName  `json:"name"`
	BirthDate    string       `json:"birthDate"`
	Gender       string       `json:"gender"`
}

// Device is the part of a FHIR Device the ORU reads.
type Device struct {
	ResourceType string           `json:"resourceType"`
	Identifier   []identifier     `json:"identifier"`
	Type         *codeableConcept `json:"type"`
}

// Encounter is the part of a FHIR Encounter the ORU reads.
type Encounter struct {
	ResourceType string       `json:"resourceType"`
	Identifier   []identifier `json:"identifier"`
	Class        *coding      `json:"class"`
}

// Location is the part of a FHIR Location the ORU reads.
type Location struct {
	ResourceType string       `json:"resourceType"`
	Identifier   []identifier `json:"identifier"`
	Name         string       `json:"name"`
}

// Input is one Observation and the resources it points to, as stored JSON.
// Observation and Patient are required; the others are optional (nil).
type Input struct {
	Observation json.RawMessage
	Patient     json.RawMessage
	Device      json.RawMessage
	Encounter   json.RawMessage
	Location    json.RawMessage
}

// Resources is Input decoded. Callers that already hold the decoded
// resources (or build many messages from one Patient) use it with
// BuildDecoded and skip the JSON work.
type Resources struct {
	Observation *Observation
	Patient     *Patient
	Device      *Device    // optional
	Encounter   *Encounter // optional
	Location    *Location  // optional
}

// Decode decodes in. Errors are *fhir.Error: KindInvalid for JSON that is
// not the resource it should be, KindUnprocessable for a missing required
// resource. The decoded resources share one copy of in's bytes (in itself is
// not retained).
func Decode(in *Input) (*Resources, error) {
	if len(in.Observation) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: an Observation is required").At("Observation")
	}
	if len(in.Patient) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "oru: the Observation's Patient is required").At("Patient")
	}
	// One allocation for the resources, one string holding every input
	// (decoded strings are substrings of it) and one scanner.
	x := new(struct {
		r Resources
		o Observation
		p Patient
		d Device
		e Encounter
		l Location
		s scanner
	})
	var sb strings.Builder
	sb.Grow(len(in.Observation) + len(in.Patient) + len(in.Device) + len(in.Encounter) + len(in.Location))
	for _, b := range [...][]byte{in.Observation, in.Patient, in.Device, in.Encounter, in.Location} {
		sb.Write(b)
	}
	src := sb.String()
	next := func(b []byte) string {
		s := src[:len(b)]
		src = src[len(b):]
		return s
	}
	r := &x.r
	r.Observation = &x.o
	if err := decode(&x.s, next(in.Observation), in.Observation, "Observation", &x.o.ResourceType, &x.o, decObservation); err != nil {
		return nil, err
	}
	r.Patient = &x.p
	if err := decode(&x.s, next(in.Patient), in.Patient, "Patient", &x.p.ResourceType, &x.p, decPatient); err != nil {
		return nil, err
	}
	if len(in.Device) > 0 {
		r.Device = &x.d
		if err := decode(&x.s, next(in.Device), in.Device, "Device", &x.d.ResourceType, &x.d, decDevice); err != nil {
			return nil, err
		}
	}
	if len(in.Encounter) > 0 {
		r.Encounter = &x.e
		if err := decode(&x.s, next(in.Encounter), in.Encounter, "Encounter", &x.e.ResourceType, &x.e, decEncounter); err != nil {
			return nil, err
		}
	}
	if len(in.Location) > 0 {
		r.Location = &x.l
		if err := decode(&x.s, next(in.Location), in.Location, "Location", &x.l.ResourceType, &x.l, decLocation); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// decode decodes b into the zero *v: with the fast decoder when the
// document is plain enough for it, else (starting again from zero) with
// encoding/json, whose errors and meaning are the reference.
// (src is b as a string.)
func decode[T any](d *scanner, src string, b []byte, typ string, rt *string, v *T, fast func(*scanner, *T) bool) error {
	if !fastDecodeString(d, src, v, fast) {
		var zero T
		*v = zero
		if err := json.Unmarshal(b, v); err != nil {
			return fhir.Errorf(fhir.KindInvalid, "oru: decoding %s", typ).At(typ).Wrap(err)
		}
	}
	if *rt != typ {
		return fhir.Errorf(fhir.KindInvalid, "oru: expected a %s resource", typ).At(typ + ".resourceType")
	}
	return nil
}
