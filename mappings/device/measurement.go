// Package device maps device payloads to Measurements with device mapping
// templates: JSON data files that say which payloads a template applies to
// and where the device id, the time, the patient and the values are, with
// expressions of a small JSONPath subset (see Expr), and which Observation
// to make (a vocab key or explicit codes, units, components, a waveform).
// The format follows the ideas of Azure MedTech's CalculatedContent device
// mappings (typeMatchExpression, deviceIdExpression, values[] with
// required) so that its users can move their templates over, but it is our
// own: one template says both what to read and what to make.
//
// Evaluation is pure: it reads a payload and the templates and returns the
// Measurements or, for each template, the exact reason it did not apply.
// Reasons name templates, expressions and JSON types, never payload values,
// so they can be logged and shown to senders. Templates are loaded from an
// fs.FS (the built-in ones are embedded) into an immutable *Templates; a
// Set swaps a reloaded one in atomically.
//
// It imports only the standard library, server/fhir and mappings/vocab
// (server/deptest enforces it). server/ingest and the CLI import it.
package device

import (
	"time"

	"github.com/pulsewire/pulsewire/mappings/vocab"
)

// Quantity is a number with a UCUM unit code.
type Quantity struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Identifier is a device identifier: system and value.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Component is one component of a panel Observation (blood pressure).
type Component struct {
	Key   string         `json:"key,omitempty"` // vocab key; empty for explicit codes
	Code  []vocab.Coding `json:"code"`
	Value Quantity       `json:"value"` // in the unit the Observation carries
}

// Waveform is a sampled signal: value[i] = Origin + Factor*Data[i] in Unit,
// one sample every PeriodMs milliseconds (FHIR SampledData).
type Waveform struct {
	PeriodMs float64   `json:"periodMs"`
	Factor   float64   `json:"factor"`
	Origin   float64   `json:"origin"`
	Unit     string    `json:"unit"`
	Data     []float64 `json:"data"`
}

// Measurement is one reading a template read out of a payload, ready to
// become an Observation. Exactly one of Value, Components and Waveform is
// set.
type Measurement struct {
	TemplateName string `json:"templateName"`
	// Type is the vocab key of the Observation, or the template name when
	// the template gives explicit codes.
	Type string `json:"type"`

	// DeviceID is the first device identifier the template found, in the
	// system DeviceIdentifierSystem; DeviceIdentifiers are all it found.
	DeviceID               string       `json:"deviceId"`
	DeviceIdentifierSystem string       `json:"deviceIdentifierSystem"`
	DeviceIdentifiers      []Identifier `json:"deviceIdentifiers"`
	// PatientID is the patient the payload names, if the template reads
	// one; otherwise ingestion attributes the reading by device association.
	PatientID string `json:"patientId,omitempty"`
	// Channel names the device channel (a DeviceMetric) when the template
	// reads one.
	Channel string    `json:"channel,omitempty"`
	Time    time.Time `json:"time"`

	Code     []vocab.Coding `json:"code"`
	Category string         `json:"category"`
	Profile  string         `json:"profile,omitempty"`

	// Values are the named values as the payload sent them (unit as sent).
	Values     map[string]Quantity `json:"values,omitempty"`
	Value      *Quantity           `json:"value,omitempty"` // in the Observation's unit
	Components []Component         `json:"components,omitempty"`
	Waveform   *Waveform           `json:"waveform,omitempty"`
}

// Key is the reading's natural key within a tenant: device, type and
// effective time. Two copies of one reading have the same Key.
func (m *Measurement) Key() string {
	return m.DeviceIdentifierSystem + "|" + m.DeviceID + "|" + m.Type + "|" + m.Time.UTC().Format(time.RFC3339Nano)
}
