// Package model holds the Go types the GraphQL schema of package graph is
// bound to (gqlgen autobind): read projections of stored FHIR R4 resources
// (https://hl7.org/fhir/R4/resourcelist.html) that keep the stored resource
// itself beside the decoded fields, plus the types gqlgen generates
// (models_gen.go). Only graph and its generated code import it.
package model

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// RawJSON is the JSON scalar: a resource's stored JSON, written to the
// response as it is.
type RawJSON json.RawMessage

// MarshalGQL writes the JSON unchanged.
func (r RawJSON) MarshalGQL(w io.Writer) {
	if len(r) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(r)
}

// UnmarshalGQL accepts any value (the scalar is never an argument today).
func (r *RawJSON) UnmarshalGQL(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding JSON scalar: %w", err)
	}
	*r = b
	return nil
}

// Meta is the version and time of a stored resource.
type Meta struct {
	VersionID   string
	LastUpdated string
}

func metaOf(r *fhir.Resource) *Meta {
	return &Meta{
		VersionID:   strconv.FormatInt(r.VersionID, 10),
		LastUpdated: r.LastUpdated.UTC().Format(fhir.TimeFormat),
	}
}

// FHIR datatypes, as far as the schema shows them.
type (
	Coding struct {
		System  *string `json:"system"`
		Version *string `json:"version"`
		Code    *string `json:"code"`
		Display *string `json:"display"`
	}
	CodeableConcept struct {
		Coding []*Coding `json:"coding"`
		Text   *string   `json:"text"`
	}
	Identifier struct {
		Use    *string          `json:"use"`
		Type   *CodeableConcept `json:"type"`
		System *string          `json:"system"`
		Value  *string          `json:"value"`
	}
	HumanName struct {
		Use    *string  `json:"use"`
		Text   *string  `json:"text"`
		Family *string  `json:"family"`
		Given  []string `json:"given"`
		Prefix []string `json:"prefix"`
		Suffix []string `json:"suffix"`
	}
	ContactPoint struct {
		System *string `json:"system"`
		Value  *string `json:"value"`
		Use    *string `json:"use"`
	}
	Quantity struct {
		Value      *float64 `json:"value"`
		Comparator *string  `json:"comparator"`
		Unit       *string  `json:"unit"`
		System     *string  `json:"system"`
		Code       *string  `json:"code"`
	}
	Period struct {
		Start *string `json:"start"`
		End   *string `json:"end"`
	}
	Reference struct {
		Reference *string `json:"reference"`
		Type      *string `json:"type"`
		Display   *string `json:"display"`
	}
	DeviceName struct {
		Name *string `json:"name"`
		Type *string `json:"type"`
	}
)

// Ref returns the type and id of a relative literal reference ("Patient/p1",
// or an absolute URL ending in Patient/p1); ok false for anything else.
func (r *Reference) Ref() (typ, id string, ok bool) {
	if r == nil || r.Reference == nil {
		return "", "", false
	}
	s := *r.Reference
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 {
		return "", "", false
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	if typ == "" || !fhir.ValidID(id) {
		return "", "", false
	}
	return typ, id, true
}

// Resource is implemented by every resource model.
type Resource interface {
	Stored() *fhir.Resource
}

// Patient is a Patient resource.
type Patient struct {
	src                  *fhir.Resource
	ID                   string          `json:"-"`
	Active               *bool           `json:"active"`
	Identifier           []*Identifier   `json:"identifier"`
	Name                 []*HumanName    `json:"name"`
	Telecom              []*ContactPoint `json:"telecom"`
	Gender               *string         `json:"gender"`
	BirthDate            *string         `json:"birthDate"`
	ManagingOrganization *Reference      `json:"managingOrganization"`
}

// Observation is an Observation resource.
type Observation struct {
	src                  *fhir.Resource
	ID                   string                  `json:"-"`
	Status               string                  `json:"status"`
	Category             []*CodeableConcept      `json:"category"`
	Code                 CodeableConcept         `json:"code"`
	EffectiveDateTime    *string                 `json:"effectiveDateTime"`
	EffectiveInstant     *string                 `json:"effectiveInstant"`
	EffectivePeriod      *Period                 `json:"effectivePeriod"`
	Issued               *string                 `json:"issued"`
	ValueQuantity        *Quantity               `json:"valueQuantity"`
	ValueCodeableConcept *CodeableConcept        `json:"valueCodeableConcept"`
	ValueString          *string                 `json:"valueString"`
	ValueBoolean         *bool                   `json:"valueBoolean"`
	ValueInteger         *int                    `json:"valueInteger"`
	Interpretation       []*CodeableConcept      `json:"interpretation"`
	Component            []*ObservationComponent `json:"component"`
	SubjectReference     *Reference              `json:"subject"`
	DeviceReference      *Reference              `json:"device"`
	EncounterReference   *Reference              `json:"encounter"`
}

// ObservationComponent is one Observation.component.
type ObservationComponent struct {
	Code                 CodeableConcept  `json:"code"`
	ValueQuantity        *Quantity        `json:"valueQuantity"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept"`
	ValueString          *string          `json:"valueString"`
}

// Effective is the clinical time: effectiveDateTime, effectiveInstant, or
// the start of effectivePeriod.
func (o *Observation) Effective() *string {
	switch {
	case o.EffectiveDateTime != nil:
		return o.EffectiveDateTime
	case o.EffectiveInstant != nil:
		return o.EffectiveInstant
	case o.EffectivePeriod != nil:
		return o.EffectivePeriod.Start
	}
	return nil
}

// Device is a Device resource.
type Device struct {
	src              *fhir.Resource
	ID               string           `json:"-"`
	Status           *string          `json:"status"`
	Identifier       []*Identifier    `json:"identifier"`
	Manufacturer     *string          `json:"manufacturer"`
	ModelNumber      *string          `json:"modelNumber"`
	SerialNumber     *string          `json:"serialNumber"`
	DeviceName       []*DeviceName    `json:"deviceName"`
	Type             *CodeableConcept `json:"type"`
	PatientReference *Reference       `json:"patient"`
}

// DeviceMetric is a DeviceMetric resource.
type DeviceMetric struct {
	src               *fhir.Resource
	ID                string           `json:"-"`
	Type              CodeableConcept  `json:"type"`
	Unit              *CodeableConcept `json:"unit"`
	OperationalStatus *string          `json:"operationalStatus"`
	Color             *string          `json:"color"`
	Category          string           `json:"category"`
	SourceReference   *Reference       `json:"source"`
	ParentReference   *Reference       `json:"parent"`
}

// Encounter is an Encounter resource.
type Encounter struct {
	src              *fhir.Resource
	ID               string             `json:"-"`
	Status           string             `json:"status"`
	Class            *Coding            `json:"class"`
	Type             []*CodeableConcept `json:"type"`
	Period           *Period            `json:"period"`
	SubjectReference *Reference         `json:"subject"`
}

// Consent is a Consent resource.
type Consent struct {
	src              *fhir.Resource
	ID               string             `json:"-"`
	Status           string             `json:"status"`
	Scope            *CodeableConcept   `json:"scope"`
	Category         []*CodeableConcept `json:"category"`
	DateTime         *string            `json:"dateTime"`
	PatientReference *Reference         `json:"patient"`
}

// The stored resource and its meta, for every model.

func (p *Patient) Stored() *fhir.Resource      { return p.src }
func (o *Observation) Stored() *fhir.Resource  { return o.src }
func (d *Device) Stored() *fhir.Resource       { return d.src }
func (m *DeviceMetric) Stored() *fhir.Resource { return m.src }
func (e *Encounter) Stored() *fhir.Resource    { return e.src }
func (c *Consent) Stored() *fhir.Resource      { return c.src }

func (p *Patient) Meta() *Meta      { return metaOf(p.src) }
func (o *Observation) Meta() *Meta  { return metaOf(o.src) }
func (d *Device) Meta() *Meta       { return metaOf(d.src) }
func (m *DeviceMetric) Meta() *Meta { return metaOf(m.src) }
func (e *Encounter) Meta() *Meta    { return metaOf(e.src) }
func (c *Consent) Meta() *Meta      { return metaOf(c.src) }

func (p *Patient) Resource() RawJSON      { return RawJSON(p.src.Body) }
func (o *Observation) Resource() RawJSON  { return RawJSON(o.src.Body) }
func (d *Device) Resource() RawJSON       { return RawJSON(d.src.Body) }
func (m *DeviceMetric) Resource() RawJSON { return RawJSON(m.src.Body) }
func (e *Encounter) Resource() RawJSON    { return RawJSON(e.src.Body) }
func (c *Consent) Resource() RawJSON      { return RawJSON(c.src.Body) }

// decode fills v (a pointer to a model) from r's JSON. Stored bodies were
// validated on write, so an error means a corrupt row: it is reported as an
// internal error naming the resource, never its content.
func decode(r *fhir.Resource, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fhir.Errorf(fhir.KindInternal, "decoding stored %s/%s", r.Type, r.ID).Wrap(err)
	}
	return nil
}

// New returns the model of a stored resource of a type the schema has, or
// an internal error for any other type.
func New(r *fhir.Resource) (Resource, error) {
	var (
		m   Resource
		err error
	)
	switch r.Type {
	case "Patient":
		v := &Patient{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	case "Observation":
		v := &Observation{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	case "Device":
		v := &Device{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	case "DeviceMetric":
		v := &DeviceMetric{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	case "Encounter":
		v := &Encounter{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	case "Consent":
		v := &Consent{src: r, ID: r.ID}
		m, err = v, decode(r, v)
	default:
		return nil, fhir.Errorf(fhir.KindInternal, "no GraphQL model for resource type %s", r.Type)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Connections. Edges hold the cursor of each node; Total, when set, counts
// all matches (totalCount is resolved only when asked for).

type PatientConnection struct {
	Edges    []*PatientEdge
	PageInfo *PageInfo
	Total    func(ctx context.Context) (*int, error) `json:"-"`
}

type PatientEdge struct {
	Cursor string
	Node   *Patient
}

func (c *PatientConnection) Nodes() []*Patient {
	out := make([]*Patient, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

type ObservationConnection struct {
	Edges    []*ObservationEdge
	PageInfo *PageInfo
	Total    func(ctx context.Context) (*int, error) `json:"-"`
}

type ObservationEdge struct {
	Cursor string
	Node   *Observation
}

func (c *ObservationConnection) Nodes() []*Observation {
	out := make([]*Observation, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

type EncounterConnection struct {
	Edges    []*EncounterEdge
	PageInfo *PageInfo
	Total    func(ctx context.Context) (*int, error) `json:"-"`
}

type EncounterEdge struct {
	Cursor string
	Node   *Encounter
}

func (c *EncounterConnection) Nodes() []*Encounter {
	out := make([]*Encounter, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

// PageInfo is the Relay page info.
type PageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool
	StartCursor     *string
	EndCursor       *string
}

// IsEntity marks the federation entities (fedruntime.Entity).
func (*Patient) IsEntity()      {}
func (*Observation) IsEntity()  {}
func (*Device) IsEntity()       {}
func (*DeviceMetric) IsEntity() {}
func (*Encounter) IsEntity()    {}
func (*Consent) IsEntity()      {}
