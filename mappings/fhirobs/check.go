package fhirobs

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"

	"github.com/pulsewire/pulsewire/mappings/vocab"
	"github.com/pulsewire/pulsewire/server/fhir"
)

// The subset of Observation CheckVitalSigns reads.
type checkedObs struct {
	ResourceType string `json:"resourceType"`
	Meta         *struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Status            string             `json:"status"`
	Category          []checkedConcept   `json:"category"`
	Code              *checkedConcept    `json:"code"`
	Subject           *reference         `json:"subject"`
	EffectiveDateTime *string            `json:"effectiveDateTime"`
	EffectivePeriod   *json.RawMessage   `json:"effectivePeriod"`
	ValueQuantity     *checkedQuantity   `json:"valueQuantity"`
	ValueSampledData  *checkedSampled    `json:"valueSampledData"`
	DataAbsentReason  *json.RawMessage   `json:"dataAbsentReason"`
	HasMember         []json.RawMessage  `json:"hasMember"`
	Component         []checkedComponent `json:"component"`
}

type checkedConcept struct {
	Coding []vocab.Coding `json:"coding"`
}

type checkedQuantity struct {
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	System string   `json:"system"`
	Code   string   `json:"code"`
}

type checkedSampled struct {
	Origin     *checkedQuantity `json:"origin"`
	Period     *float64         `json:"period"`
	Dimensions *int             `json:"dimensions"`
	Data       string           `json:"data"`
}

type checkedComponent struct {
	Code             *checkedConcept  `json:"code"`
	ValueQuantity    *checkedQuantity `json:"valueQuantity"`
	DataAbsentReason *json.RawMessage `json:"dataAbsentReason"`
}

var (
	// dateTime to at least the day (vs-1); the time zone is required when
	// a time is given (https://hl7.org/fhir/R4/datatypes.html#dateTime).
	dateTimePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$`)
	patientRef      = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)
	statuses        = []string{"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)

func has(cs []vocab.Coding, system, code string) bool {
	for _, c := range cs {
		if c.System == system && c.Code == code {
			return true
		}
	}
	return false
}

// CheckVitalSigns checks an Observation against the FHIR R4 vital-signs
// profile rules Pulsewire relies on: status, category vital-signs, a code
// with the LOINC code the vital's profile fixes and the MDC code, a Patient
// subject, effective[x] to the day (vs-1), a value, data absent reason or
// components (vs-2), a UCUM valueQuantity in the vital's unit, the blood
// pressure components (systolic and diastolic in mm[Hg]), SampledData's
// required elements, and meta.profile naming the vital's profile. It
// returns every problem found (nil: none), each a KindUnprocessable
// *fhir.Error pointing at the element.
func CheckVitalSigns(body []byte) []*fhir.Error {
	var errs []*fhir.Error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fhir.Errorf(fhir.KindUnprocessable, format, args...).At(path))
	}
	var o checkedObs
	if err := json.Unmarshal(body, &o); err != nil {
		bad("Observation", "not an Observation: invalid JSON")
		return errs
	}
	if o.ResourceType != "Observation" {
		bad("Observation.resourceType", "resourceType must be Observation")
		return errs
	}
	if !slices.Contains(statuses, o.Status) {
		bad("Observation.status", "status is missing or not an observation-status code")
	}
	vsCat := false
	for _, c := range o.Category {
		vsCat = vsCat || has(c.Coding, vocab.SystemObservationCategory, vocab.CategoryVitalSigns)
	}
	if !vsCat {
		bad("Observation.category", "a category coding vital-signs (observation-category) is required")
	}
	var v *vocab.Vital
	if o.Code == nil || len(o.Code.Coding) == 0 {
		bad("Observation.code", "code.coding is required")
	} else {
		var ok bool
		if v, ok = vocab.ByCoding(o.Code.Coding); !ok {
			bad("Observation.code", "code has no LOINC or MDC coding of a known vital")
		}
	}
	if v != nil {
		checkCodes(v, o.Code.Coding, "Observation.code", bad)
		if v.Profile != "" && (o.Meta == nil || !slices.Contains(o.Meta.Profile, v.Profile)) {
			bad("Observation.meta.profile", "meta.profile must name %s", v.Profile)
		}
	}
	if o.Subject == nil || !patientRef.MatchString(o.Subject.Reference) {
		bad("Observation.subject", "subject must reference a Patient")
	}
	switch {
	case o.EffectiveDateTime != nil:
		if !dateTimePattern.MatchString(*o.EffectiveDateTime) {
			bad("Observation.effectiveDateTime", "effectiveDateTime must be a dateTime to at least the day")
		}
	case o.EffectivePeriod != nil:
	default:
		bad("Observation.effective[x]", "effective[x] is required")
	}
	if o.ValueQuantity == nil && o.ValueSampledData == nil && o.DataAbsentReason == nil && len(o.Component) == 0 && len(o.HasMember) == 0 {
		bad("Observation.value[x]", "a value, a dataAbsentReason, components or members are required (vs-2)")
	}
	if o.ValueQuantity != nil {
		unit := ""
		if v != nil {
			unit = v.Unit
		}
		checkQuantity(o.ValueQuantity, unit, "Observation.valueQuantity", bad)
	}
	if s := o.ValueSampledData; s != nil {
		if s.Origin == nil {
			bad("Observation.valueSampledData.origin", "origin is required")
		} else {
			checkQuantity(s.Origin, "", "Observation.valueSampledData.origin", bad)
		}
		if s.Period == nil || *s.Period <= 0 {
			bad("Observation.valueSampledData.period", "period is required and must be positive")
		}
		if s.Dimensions == nil || *s.Dimensions < 1 {
			bad("Observation.valueSampledData.dimensions", "dimensions is required and must be positive")
		}
	}
	if v != nil && v.Kind == vocab.KindQuantity && o.ValueQuantity == nil && o.DataAbsentReason == nil {
		bad("Observation.valueQuantity", "%s needs valueQuantity or dataAbsentReason", v.Key)
	}
	if v != nil && v.Kind == vocab.KindWaveform && o.ValueSampledData == nil && o.DataAbsentReason == nil {
		bad("Observation.valueSampledData", "%s needs valueSampledData or dataAbsentReason", v.Key)
	}
	found := map[string]bool{}
	for i, c := range o.Component {
		path := "Observation.component[" + strconv.Itoa(i) + "]"
		if c.Code == nil || len(c.Code.Coding) == 0 {
			bad(path+".code", "component code is required")
			continue
		}
		cv, ok := vocab.ByCoding(c.Code.Coding)
		if !ok {
			continue
		}
		found[cv.Key] = true
		checkCodes(cv, c.Code.Coding, path+".code", bad)
		switch {
		case c.ValueQuantity != nil:
			checkQuantity(c.ValueQuantity, cv.Unit, path+".valueQuantity", bad)
		case c.DataAbsentReason == nil:
			bad(path+".value[x]", "component needs valueQuantity or dataAbsentReason")
		}
	}
	if v != nil && v.Key == vocab.BloodPressure {
		for _, k := range []string{vocab.BPSystolic, vocab.BPDiastolic} {
			if !found[k] {
				c, _ := vocab.ByKey(k)
				bad("Observation.component", "the bp profile requires a component %s (LOINC %s)", k, c.LOINC.Code)
			}
		}
	}
	return errs
}

// checkCodes: the profile's LOINC code (or the vital's own when the profile
// fixes none) and the MDC code must be there; LOINC first.
func checkCodes(v *vocab.Vital, cs []vocab.Coding, path string, bad func(string, string, ...any)) {
	want := v.LOINC
	if v.ProfileLOINC != nil {
		want = *v.ProfileLOINC
	}
	if want.Code != "" {
		if !has(cs, vocab.SystemLOINC, want.Code) {
			bad(path+".coding", "%s requires the LOINC code %s", v.Key, want.Code)
		} else if cs[0].System != vocab.SystemLOINC {
			bad(path+".coding", "the LOINC coding must come first")
		}
	}
	if !has(cs, vocab.SystemMDC, v.MDC.Code) {
		bad(path+".coding", "%s requires the MDC code %s (%s)", v.Key, v.MDC.Code, v.MDC.RefID)
	}
}

func checkQuantity(q *checkedQuantity, unit, path string, bad func(string, string, ...any)) {
	if q.Value == nil {
		bad(path+".value", "value is required")
	}
	if q.System != vocab.SystemUCUM {
		bad(path+".system", "system must be %s", vocab.SystemUCUM)
	}
	if unit != "" && q.Code != unit {
		bad(path+".code", "code must be the UCUM unit %s", unit)
	} else if !vocab.ValidUnit(q.Code) {
		bad(path+".code", "code is not a UCUM unit Pulsewire knows")
	}
	if q.Unit == "" {
		bad(path+".unit", "unit is required")
	}
}
