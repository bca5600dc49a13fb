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
	"sync"

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

// lazy is a stored resource read on demand: its top-level members are found
// on first use (topMembers, a byte scan) and each is decoded when a field
// asks for it. A query selects a few fields of resources that hold many;
// decoding every resource whole was the largest single cost of the
// benchmark query (a sixth of the server's CPU). It is safe for concurrent
// use (resolvers of one object run concurrently).
type lazy struct {
	src  *fhir.Resource
	once sync.Once
	ms   []rawMember
	err  error
}

// raw returns the member key of the resource as written, nil when absent.
// Stored bodies were validated on write, so an error means a corrupt row:
// it is reported as an internal error naming the resource, never its
// content.
func (l *lazy) raw(key string) (json.RawMessage, error) {
	l.once.Do(func() { l.ms, l.err = topMembers(l.src.Body) })
	if l.err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "decoding stored %s/%s", l.src.Type, l.src.ID).Wrap(l.err)
	}
	for _, m := range l.ms {
		if string(m.key) == key {
			return m.val, nil
		}
	}
	return nil, nil
}

// member decodes the member key of l with dec (the zero T when it is
// absent or null).
func member[T any](l *lazy, key string, dec decoder[T]) (T, error) {
	var zero T
	raw, err := l.raw(key)
	if err != nil || raw == nil {
		return zero, err
	}
	v, err := nullable(raw, dec)
	if err != nil {
		return zero, fhir.Errorf(fhir.KindInternal, "decoding %s of stored %s/%s", key, l.src.Type, l.src.ID).Wrap(err)
	}
	return v, nil
}

// Patient is a Patient resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type Patient struct {
	lazy
	ID string
}

func (p *Patient) Active() (*bool, error) { return member(&p.lazy, "active", boolPtr) }
func (p *Patient) Identifier() ([]*Identifier, error) {
	return member(&p.lazy, "identifier", identifiers)
}
func (p *Patient) Name() ([]*HumanName, error) { return member(&p.lazy, "name", humanNames) }
func (p *Patient) Telecom() ([]*ContactPoint, error) {
	return member(&p.lazy, "telecom", contactPoints)
}
func (p *Patient) Gender() (*string, error)    { return member(&p.lazy, "gender", strPtr) }
func (p *Patient) BirthDate() (*string, error) { return member(&p.lazy, "birthDate", strPtr) }
func (p *Patient) ManagingOrganization() (*Reference, error) {
	return member(&p.lazy, "managingOrganization", referencePtr)
}

// Observation is an Observation resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type Observation struct {
	lazy
	ID string
}

func (o *Observation) Status() (string, error) { return member(&o.lazy, "status", str) }
func (o *Observation) Category() ([]*CodeableConcept, error) {
	return member(&o.lazy, "category", codeableConcepts)
}
func (o *Observation) Code() (CodeableConcept, error) {
	return member(&o.lazy, "code", codeableConcept)
}
func (o *Observation) EffectivePeriod() (*Period, error) {
	return member(&o.lazy, "effectivePeriod", periodPtr)
}
func (o *Observation) Issued() (*string, error) { return member(&o.lazy, "issued", strPtr) }
func (o *Observation) ValueQuantity() (*Quantity, error) {
	return member(&o.lazy, "valueQuantity", quantityPtr)
}
func (o *Observation) ValueCodeableConcept() (*CodeableConcept, error) {
	return member(&o.lazy, "valueCodeableConcept", codeableConceptPtr)
}
func (o *Observation) ValueString() (*string, error) { return member(&o.lazy, "valueString", strPtr) }
func (o *Observation) ValueBoolean() (*bool, error)  { return member(&o.lazy, "valueBoolean", boolPtr) }
func (o *Observation) ValueInteger() (*int, error)   { return member(&o.lazy, "valueInteger", intPtr) }
func (o *Observation) Interpretation() ([]*CodeableConcept, error) {
	return member(&o.lazy, "interpretation", codeableConcepts)
}
func (o *Observation) Component() ([]*ObservationComponent, error) {
	return member(&o.lazy, "component", observationComponents)
}
func (o *Observation) SubjectReference() (*Reference, error) {
	return member(&o.lazy, "subject", referencePtr)
}
func (o *Observation) DeviceReference() (*Reference, error) {
	return member(&o.lazy, "device", referencePtr)
}
func (o *Observation) EncounterReference() (*Reference, error) {
	return member(&o.lazy, "encounter", referencePtr)
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
func (o *Observation) Effective() (*string, error) {
	for _, key := range []string{"effectiveDateTime", "effectiveInstant"} {
		if v, err := member(&o.lazy, key, strPtr); v != nil || err != nil {
			return v, err
		}
	}
	p, err := o.EffectivePeriod()
	if p == nil || err != nil {
		return nil, err
	}
	return p.Start, nil
}

// Device is a Device resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type Device struct {
	lazy
	ID string
}

func (d *Device) Status() (*string, error) { return member(&d.lazy, "status", strPtr) }
func (d *Device) Identifier() ([]*Identifier, error) {
	return member(&d.lazy, "identifier", identifiers)
}
func (d *Device) Manufacturer() (*string, error) { return member(&d.lazy, "manufacturer", strPtr) }
func (d *Device) ModelNumber() (*string, error)  { return member(&d.lazy, "modelNumber", strPtr) }
func (d *Device) SerialNumber() (*string, error) { return member(&d.lazy, "serialNumber", strPtr) }
func (d *Device) DeviceName() ([]*DeviceName, error) {
	return member(&d.lazy, "deviceName", deviceNames)
}
func (d *Device) Type() (*CodeableConcept, error) { return member(&d.lazy, "type", codeableConceptPtr) }
func (d *Device) PatientReference() (*Reference, error) {
	return member(&d.lazy, "patient", referencePtr)
}

// DeviceMetric is a DeviceMetric resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type DeviceMetric struct {
	lazy
	ID string
}

func (m *DeviceMetric) Type() (CodeableConcept, error) {
	return member(&m.lazy, "type", codeableConcept)
}
func (m *DeviceMetric) Unit() (*CodeableConcept, error) {
	return member(&m.lazy, "unit", codeableConceptPtr)
}
func (m *DeviceMetric) OperationalStatus() (*string, error) {
	return member(&m.lazy, "operationalStatus", strPtr)
}
func (m *DeviceMetric) Color() (*string, error)   { return member(&m.lazy, "color", strPtr) }
func (m *DeviceMetric) Category() (string, error) { return member(&m.lazy, "category", str) }
func (m *DeviceMetric) SourceReference() (*Reference, error) {
	return member(&m.lazy, "source", referencePtr)
}
func (m *DeviceMetric) ParentReference() (*Reference, error) {
	return member(&m.lazy, "parent", referencePtr)
}

// Encounter is an Encounter resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type Encounter struct {
	lazy
	ID string
}

func (e *Encounter) Status() (string, error) { return member(&e.lazy, "status", str) }
func (e *Encounter) Class() (*Coding, error) { return member(&e.lazy, "class", codingPtr) }
func (e *Encounter) Type() ([]*CodeableConcept, error) {
	return member(&e.lazy, "type", codeableConcepts)
}
func (e *Encounter) Period() (*Period, error) { return member(&e.lazy, "period", periodPtr) }
func (e *Encounter) SubjectReference() (*Reference, error) {
	return member(&e.lazy, "subject", referencePtr)
}

// Consent is a Consent resource. Its fields are methods that decode what they return
// from the stored JSON (see lazy).
type Consent struct {
	lazy
	ID string
}

func (c *Consent) Status() (string, error) { return member(&c.lazy, "status", str) }
func (c *Consent) Scope() (*CodeableConcept, error) {
	return member(&c.lazy, "scope", codeableConceptPtr)
}
func (c *Consent) Category() ([]*CodeableConcept, error) {
	return member(&c.lazy, "category", codeableConcepts)
}
func (c *Consent) DateTime() (*string, error) { return member(&c.lazy, "dateTime", strPtr) }
func (c *Consent) PatientReference() (*Reference, error) {
	return member(&c.lazy, "patient", referencePtr)
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

// New returns the model of a stored resource of a type the schema has, or
// an internal error for any other type. Its fields are decoded when they
// are asked for (see lazy).
func New(r *fhir.Resource) (Resource, error) {
	switch r.Type {
	case "Patient":
		return &Patient{lazy: lazy{src: r}, ID: r.ID}, nil
	case "Observation":
		return &Observation{lazy: lazy{src: r}, ID: r.ID}, nil
	case "Device":
		return &Device{lazy: lazy{src: r}, ID: r.ID}, nil
	case "DeviceMetric":
		return &DeviceMetric{lazy: lazy{src: r}, ID: r.ID}, nil
	case "Encounter":
		return &Encounter{lazy: lazy{src: r}, ID: r.ID}, nil
	case "Consent":
		return &Consent{lazy: lazy{src: r}, ID: r.ID}, nil
	}
	return nil, fhir.Errorf(fhir.KindInternal, "no GraphQL model for resource type %s", r.Type)
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
