// Package mappingcli is the pure part of `pulsewire mapping test`: it runs a
// payload through device templates and the FHIR builders and says what came
// out, or exactly why nothing did — the one thing MedTech users could not
// see. The CLI only reads the files and prints.
//
// It imports only the standard library, server/fhir and mappings/ packages.
// server/cmd/pulsewire imports it.
package mappingcli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/mappings/device"
	"github.com/pulsewire/pulsewire/mappings/fhirobs"
	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// UnassociatedPatient is the subject id Explain shows when the payload names
// no patient: ingestion attributes such a reading through the device's
// patient association (or holds it until there is one).
const UnassociatedPatient = "unassociated"

// Explain evaluates payload against the templates and returns the FHIR
// resources it maps to (indented JSON: per measurement the Device, a
// DeviceMetric when the template reads a channel, and the Observation,
// each Device once), a report with one line per template saying whether it
// matched, what it made or why it did not apply, and the profile check of
// every Observation. err is nil when at least one measurement was made and
// no template failed and every Observation passed the check; otherwise it
// says why (a *fhir.Error).
//
// To test one template file, parse it with device.ParseTemplate and pass
// device.NewTemplates(t).
func Explain(set *device.Templates, payload []byte) (resources [][]byte, report string, err error) {
	var rep strings.Builder
	res, err := set.Evaluate(payload)
	if err != nil {
		fmt.Fprintf(&rep, "payload: %v\n", err)
		return nil, rep.String(), err
	}
	seen := map[string]bool{}
	var problems int
	for i := range res.Measurements {
		m := &res.Measurements[i]
		devID := fhirobs.DeviceResourceID(m.DeviceIdentifierSystem, m.DeviceID)
		patient, note := m.PatientID, ""
		if patient == "" {
			patient, note = UnassociatedPatient, " (no patient in the payload: ingestion attributes it by device association)"
		} else if !fhir.ValidID(patient) {
			patient, note = UnassociatedPatient, " (the payload's patient id is not a FHIR id: ingestion resolves it)"
		}
		fmt.Fprintf(&rep, "matched   template %s: Observation %s %s at %s, device %s|%s%s\n",
			m.TemplateName, m.Type, codes(m.Code), m.Time.Format(time.RFC3339Nano), m.DeviceIdentifierSystem, m.DeviceID, note)
		if !seen[devID] {
			seen[devID] = true
			d, err := fhirobs.Device(devID, m.DeviceIdentifiers, fhirobs.DeviceInfo{})
			if err != nil {
				return nil, rep.String(), err
			}
			resources = append(resources, indent(d))
		}
		if v, ok := vocab.ByKey(m.Type); ok && m.Channel != "" {
			dm, err := fhirobs.DeviceMetric("", devID, m.Channel, v)
			if err != nil {
				return nil, rep.String(), err
			}
			resources = append(resources, indent(dm))
		}
		obs, err := fhirobs.Observation(m, fhirobs.Refs{Patient: patient, Device: devID})
		if err != nil {
			fmt.Fprintf(&rep, "FAILED    template %s: building the Observation: %v\n", m.TemplateName, err)
			problems++
			continue
		}
		resources = append(resources, indent(obs))
		if m.Profile == "" {
			fmt.Fprintf(&rep, "          template %s: Observation %s claims no profile (not a vital sign in FHIR R4)\n", m.TemplateName, m.Type)
			continue
		}
		for _, p := range fhirobs.CheckVitalSigns(obs) {
			problems++
			fmt.Fprintf(&rep, "PROFILE   template %s: %v\n", m.TemplateName, p)
		}
	}
	for _, r := range res.Failed {
		fmt.Fprintf(&rep, "FAILED    %s\n", r)
	}
	for _, r := range res.Unmatched {
		fmt.Fprintf(&rep, "no match  %s\n", r)
	}
	if err := res.Err(); err != nil {
		return resources, rep.String(), err
	}
	if problems > 0 {
		return resources, rep.String(), fhir.Errorf(fhir.KindUnprocessable, "%d problem(s) in the produced resources", problems)
	}
	return resources, rep.String(), nil
}

func codes(cs []vocab.Coding) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		name := c.System
		switch c.System {
		case vocab.SystemLOINC:
			name = "LOINC"
		case vocab.SystemMDC:
			name = "MDC"
		}
		parts[i] = name + " " + c.Code
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func indent(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return b // we marshalled it: cannot happen
	}
	return out.Bytes()
}
