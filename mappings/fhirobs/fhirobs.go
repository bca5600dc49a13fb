// Package fhirobs builds FHIR R4 resources from device Measurements: the
// Observation conforming to the vital-signs profiles
// (https://hl7.org/fhir/R4/observation-vitalsigns.html), with the LOINC
// coding first and the IEEE 11073 MDC coding, UCUM quantities, blood
// pressure as components of one Observation and waveforms as SampledData;
// and the Device (https://hl7.org/fhir/R4/device.html) and DeviceMetric
// (https://hl7.org/fhir/R4/devicemetric.html) of the sending device, as the
// HL7 PoCD and PHD implementation guides model them. CheckVitalSigns checks
// an Observation against the profile rules Pulsewire relies on.
//
// It is pure: it imports only the standard library, server/fhir and
// mappings/ packages. server/ingest and the mapping CLI import it.
package fhirobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// Device identifier systems.
const (
	// SystemEUI64 is the IEEE EUI-64 identifier system of the PHD and PoCD
	// implementation guides.
	SystemEUI64 = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
	// SystemSerial is Pulsewire's system for a device's own serial number
	// or id as a gateway sends it; such an identifier also fills
	// Device.serialNumber.
	SystemSerial = "urn:pulsewire:device-serial"
)

// Refs are the resource ids an Observation points to. Patient is required
// (the vital-signs profiles require a subject); ID, Device and Encounter are
// optional (an empty ID leaves the id to the server).
type Refs struct {
	ID        string
	Patient   string
	Device    string
	Encounter string
}

type reference struct {
	Reference string `json:"reference"`
}

type codeableConcept struct {
	Coding []vocab.Coding `json:"coding"`
	Text   string         `json:"text,omitempty"`
}

type quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

type sampledData struct {
	Origin     quantity `json:"origin"`
	Period     float64  `json:"period"`
	Factor     float64  `json:"factor"`
	Dimensions int      `json:"dimensions"`
	Data       string   `json:"data"`
}

type component struct {
	Code          codeableConcept `json:"code"`
	ValueQuantity quantity        `json:"valueQuantity"`
}

type meta struct {
	Profile []string `json:"profile"`
}

type observation struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id,omitempty"`
	Meta              *meta             `json:"meta,omitempty"`
	Status            string            `json:"status"`
	Category          []codeableConcept `json:"category"`
	Code              codeableConcept   `json:"code"`
	Subject           reference         `json:"subject"`
	Encounter         *reference        `json:"encounter,omitempty"`
	EffectiveDateTime string            `json:"effectiveDateTime"`
	Device            *reference        `json:"device,omitempty"`
	ValueQuantity     *quantity         `json:"valueQuantity,omitempty"`
	ValueSampledData  *sampledData      `json:"valueSampledData,omitempty"`
	Component         []component       `json:"component,omitempty"`
}

func ucumQuantity(q device.Quantity) quantity {
	display := q.Unit
	if u, ok := vocab.LookupUnit(q.Unit); ok {
		display = u.Display
	}
	return quantity{Value: q.Value, Unit: display, System: vocab.SystemUCUM, Code: q.Unit}
}

func category(code string) codeableConcept {
	c := vocab.Coding{System: vocab.SystemObservationCategory, Code: code}
	if code == vocab.CategoryVitalSigns {
		c.Display = "Vital Signs"
	}
	return codeableConcept{Coding: []vocab.Coding{c}}
}

func text(cs []vocab.Coding) string {
	if v, ok := vocab.ByCoding(cs); ok {
		return v.Text()
	}
	if len(cs) > 0 {
		return cs[0].Display
	}
	return ""
}

func ref(typ, id string) (*reference, error) {
	if id == "" {
		return nil, nil
	}
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s id is not a valid FHIR id", typ)
	}
	return &reference{Reference: typ + "/" + id}, nil
}

// Observation returns the Observation JSON of a Measurement. Errors are
// *fhir.Error: KindUnprocessable for a Measurement that cannot make an
// Observation (no patient, no value), KindInvalid for a bad id in r.
func Observation(m *device.Measurement, r Refs) ([]byte, error) {
	if r.Patient == "" {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "a vital-signs Observation needs a patient").At("Observation.subject")
	}
	if r.ID != "" && !fhir.ValidID(r.ID) {
		return nil, fhir.Errorf(fhir.KindInvalid, "Observation id is not a valid FHIR id").At("Observation.id")
	}
	if len(m.Code) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "measurement of template %s has no code", m.TemplateName).At("Observation.code")
	}
	if m.Time.IsZero() {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "measurement of template %s has no time", m.TemplateName).At("Observation.effectiveDateTime")
	}
	o := observation{
		ResourceType:      "Observation",
		ID:                r.ID,
		Status:            "final",
		Category:          []codeableConcept{category(m.Category)},
		Code:              codeableConcept{Coding: m.Code, Text: text(m.Code)},
		EffectiveDateTime: m.Time.Format(time.RFC3339Nano),
	}
	if m.Profile != "" {
		o.Meta = &meta{Profile: []string{m.Profile}}
	}
	subject, err := ref("Patient", r.Patient)
	if err != nil {
		return nil, err.(*fhir.Error).At("Observation.subject")
	}
	o.Subject = *subject
	if o.Device, err = ref("Device", r.Device); err != nil {
		return nil, err.(*fhir.Error).At("Observation.device")
	}
	if o.Encounter, err = ref("Encounter", r.Encounter); err != nil {
		return nil, err.(*fhir.Error).At("Observation.encounter")
	}
	switch {
	case m.Waveform != nil:
		w := m.Waveform
		if w.PeriodMs <= 0 || len(w.Data) == 0 {
			return nil, fhir.Errorf(fhir.KindUnprocessable, "waveform of template %s has no period or no samples", m.TemplateName).At("Observation.valueSampledData")
		}
		var b strings.Builder
		for i, x := range w.Data {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
		}
		o.ValueSampledData = &sampledData{
			Origin: ucumQuantity(device.Quantity{Value: w.Origin, Unit: w.Unit}),
			Period: w.PeriodMs, Factor: w.Factor, Dimensions: 1, Data: b.String(),
		}
	case len(m.Components) > 0:
		for _, c := range m.Components {
			o.Component = append(o.Component, component{
				Code:          codeableConcept{Coding: c.Code, Text: text(c.Code)},
				ValueQuantity: ucumQuantity(c.Value),
			})
		}
	case m.Value != nil:
		q := ucumQuantity(*m.Value)
		o.ValueQuantity = &q
	default:
		return nil, fhir.Errorf(fhir.KindUnprocessable, "measurement of template %s has no value", m.TemplateName).At("Observation.value[x]")
	}
	return json.Marshal(o)
}

// DeviceResourceID returns the Device resource id Pulsewire gives the
// device with that identifier: stable, so that the Device can be written
// with PUT on first sight and found again, and free of the identifier's
// value.
func DeviceResourceID(system, value string) string {
	h := sha256.Sum256([]byte(system + "|" + value))
	return "dev-" + hex.EncodeToString(h[:10])
}

// DeviceInfo is what a Device resource says besides its identifiers.
type DeviceInfo struct {
	Manufacturer string
	ModelName    string
	Type         *vocab.Coding // MDC device type, e.g. MDC_DEV_ANALY_SAT_O2_MDS
	Patient      string        // the associated patient's id, if any
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type deviceName struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type deviceResource struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id,omitempty"`
	Identifier   []identifier     `json:"identifier"`
	Status       string           `json:"status"`
	Manufacturer string           `json:"manufacturer,omitempty"`
	SerialNumber string           `json:"serialNumber,omitempty"`
	DeviceName   []deviceName     `json:"deviceName,omitempty"`
	Type         *codeableConcept `json:"type,omitempty"`
	Patient      *reference       `json:"patient,omitempty"`
}

// Device returns the Device JSON of a device known by the identifiers
// (EUI-64, serial). id may be empty (the server assigns one).
func Device(id string, ids []device.Identifier, info DeviceInfo) ([]byte, error) {
	if id != "" && !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.KindInvalid, "Device id is not a valid FHIR id").At("Device.id")
	}
	if len(ids) == 0 {
		return nil, fhir.Errorf(fhir.KindUnprocessable, "a device needs an identifier").At("Device.identifier")
	}
	d := deviceResource{ResourceType: "Device", ID: id, Status: "active", Manufacturer: info.Manufacturer}
	for _, x := range ids {
		d.Identifier = append(d.Identifier, identifier(x))
		if x.System == SystemSerial && d.SerialNumber == "" {
			d.SerialNumber = x.Value
		}
	}
	if info.ModelName != "" {
		d.DeviceName = []deviceName{{Name: info.ModelName, Type: "model-name"}}
	}
	if info.Type != nil {
		d.Type = &codeableConcept{Coding: []vocab.Coding{*info.Type}}
	}
	var err error
	if d.Patient, err = ref("Patient", info.Patient); err != nil {
		return nil, err.(*fhir.Error).At("Device.patient")
	}
	return json.Marshal(d)
}

type deviceMetric struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Identifier   []identifier    `json:"identifier,omitempty"`
	Type         codeableConcept `json:"type"`
	Unit         codeableConcept `json:"unit"`
	Source       reference       `json:"source"`
	Category     string          `json:"category"`
}

// DeviceMetric returns the DeviceMetric JSON of one channel of a device:
// type the vital's MDC code, unit its UCUM and MDC unit codes, source the
// Device, category measurement. channel, when not empty, becomes an
// identifier (system urn:pulsewire:device-channel, value deviceID/channel).
func DeviceMetric(id, deviceID, channel string, v *vocab.Vital) ([]byte, error) {
	if id != "" && !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.KindInvalid, "DeviceMetric id is not a valid FHIR id").At("DeviceMetric.id")
	}
	src, err := ref("Device", deviceID)
	if err != nil || src == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "DeviceMetric needs a valid Device id").At("DeviceMetric.source")
	}
	u, _ := vocab.LookupUnit(v.Unit)
	dm := deviceMetric{
		ResourceType: "DeviceMetric", ID: id,
		Type: codeableConcept{Coding: []vocab.Coding{v.MDC.Coding()}, Text: v.Text()},
		Unit: codeableConcept{Coding: []vocab.Coding{
			{System: vocab.SystemUCUM, Code: v.Unit, Display: u.Display},
			v.MDCUnit.Coding(),
		}},
		Source:   *src,
		Category: "measurement",
	}
	if channel != "" {
		dm.Identifier = []identifier{{System: "urn:pulsewire:device-channel", Value: deviceID + "/" + channel}}
	}
	return json.Marshal(dm)
}
