// Package vocab holds Pulsewire's code tables for device vital signs: for each
// kind of reading, its LOINC code, its IEEE 11073-10101 (MDC) code, its UCUM
// unit and MDC unit code, and the FHIR R4 vital-signs profile it conforms to
// (https://hl7.org/fhir/R4/observation-vitalsigns.html). It also holds the
// small UCUM subset (https://ucum.org/ucum) the table needs: unit validation
// and conversion of the units devices send in.
//
// Every row names its sources. The tables are Go data, so a change is a
// reviewed code change; testdata/vocab.md is the same table rendered for
// people (regenerated with go test -update).
//
// It is pure and imports only the standard library and server/fhir (for its
// errors). Any package may import it.
package vocab

import (
	"sort"
	"strconv"
)

// Code systems.
const (
	SystemLOINC = "http://loinc.org"
	SystemMDC   = "urn:iso:std:iso:11073:10101"
	SystemUCUM  = "http://unitsofmeasure.org"
	// SystemObservationCategory is the code system of Observation.category
	// (https://hl7.org/fhir/R4/codesystem-observation-category.html).
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// CategoryVitalSigns is the observation-category code the vital-signs
// profiles require.
const CategoryVitalSigns = "vital-signs"

// ProfileBase is the URL prefix of the FHIR R4 core profiles.
const ProfileBase = "http://hl7.org/fhir/StructureDefinition/"

// Coding is a FHIR Coding: system, code, display.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Kind says what shape of Observation a vital makes.
type Kind int

// Kinds of vitals.
const (
	KindQuantity  Kind = iota // one valueQuantity
	KindPanel                 // no value; components (blood pressure)
	KindComponent             // only used as a component of a panel
	KindWaveform              // valueSampledData
)

func (k Kind) String() string {
	switch k {
	case KindQuantity:
		return "quantity"
	case KindPanel:
		return "panel"
	case KindComponent:
		return "component"
	case KindWaveform:
		return "waveform"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MDCCode is an IEEE 11073-10101 term: its numeric code as FHIR and HL7v2
// carry it (partition × 65536 + term code, in decimal) and its reference id.
type MDCCode struct {
	Code  string // e.g. "147842"
	RefID string // e.g. "MDC_ECG_HEART_RATE"
}

// Coding returns the MDC term as a FHIR Coding (display: the reference id,
// as the PHD and PoCD implementation guides do).
func (c MDCCode) Coding() Coding { return Coding{System: SystemMDC, Code: c.Code, Display: c.RefID} }

// Vital is one row of the table.
type Vital struct {
	Key  string // our key, used by device templates: "heart-rate"
	Kind Kind
	// LOINC is the vital's own LOINC term. Empty when LOINC has none that
	// fits (the waveform channel): such a vital is coded with MDC only.
	LOINC Coding
	// ProfileLOINC is the LOINC code the FHIR vital-signs profile fixes, when
	// it differs from LOINC (SpO2 by pulse oximetry must also carry 2708-6;
	// pulse rate by oximetry must also carry 8867-4). It is sent first.
	ProfileLOINC *Coding
	MDC          MDCCode
	Unit         string   // UCUM code of the value (the one the profile requires)
	MDCUnit      MDCCode  // the MDC dimension (partition 4) code of the unit
	Profile      string   // canonical URL of the profile; empty: none applies
	Components   []string // keys of the component vitals, for a panel
	// Decimals is how many decimals a value converted from another unit is
	// rounded to (a converted 98.6 [degF] is 37 Cel, not 36.99999999).
	Decimals int
	// MolarMass in g/mol lets a substance concentration sent in mmol/L be
	// converted to the mass concentration of the table (glucose).
	MolarMass float64
	Source    string // where each code of the row comes from
}

// Codings returns the vital's Observation.code codings in the order we send
// them: the profile's LOINC code, the vital's own LOINC code, the MDC code.
func (v *Vital) Codings() []Coding {
	var cs []Coding
	if v.ProfileLOINC != nil {
		cs = append(cs, *v.ProfileLOINC)
	}
	if v.LOINC.Code != "" {
		cs = append(cs, v.LOINC)
	}
	return append(cs, v.MDC.Coding())
}

// Text is the human-readable name of the vital (Observation.code.text).
func (v *Vital) Text() string {
	if v.LOINC.Display != "" {
		return v.LOINC.Display
	}
	return v.MDC.RefID
}

// Profile URLs of the FHIR R4 vital-signs profiles used in the table.
const (
	ProfileVitalSigns  = ProfileBase + "vitalsigns"
	ProfileHeartRate   = ProfileBase + "heartrate"
	ProfileOxygenSat   = ProfileBase + "oxygensat"
	ProfileBP          = ProfileBase + "bp"
	ProfileBodyTemp    = ProfileBase + "bodytemp"
	ProfileRespRate    = ProfileBase + "resprate"
	ProfileBodyWeight  = ProfileBase + "bodyweight"
	profileTableSource = "FHIR R4 vital-signs profile table (https://hl7.org/fhir/R4/observation-vitalsigns.html)"
)

// Source citations used in the rows.
const (
	srcLOINC = "LOINC (https://loinc.org)"
	srcMDC   = "IEEE 11073-10101 nomenclature via NIST RTMMS (https://rtmms.nist.gov)"
	srcUCUM  = "UCUM (https://ucum.org)"
)

func loinc(code, display string) Coding {
	return Coding{System: SystemLOINC, Code: code, Display: display}
}

// Keys of the table rows.
const (
	HeartRate     = "heart-rate"
	SpO2          = "spo2"
	PulseRate     = "pulse-rate"
	BloodPressure = "blood-pressure"
	BPSystolic    = "bp-systolic"
	BPDiastolic   = "bp-diastolic"
	BPMean        = "bp-mean"
	BodyTemp      = "body-temperature"
	RespRate      = "respiratory-rate"
	BodyWeight    = "body-weight"
	BloodGlucose  = "blood-glucose"
	ECGLeadII     = "ecg-lead-ii"
)

// table is the code table. MDC numeric codes are partition*65536 + term
// code: partition 2 (SCADA) for measurements, 4 (DIM) for units.
var table = []Vital{
	{
		Key: HeartRate, LOINC: loinc("8867-4", "Heart rate"),
		MDC: MDCCode{"147842", "MDC_ECG_HEART_RATE"}, Unit: "/min", MDCUnit: MDCCode{"264864", "MDC_DIM_BEAT_PER_MIN"}, Profile: ProfileHeartRate,
		Source: "LOINC 8867-4 and profile heartrate: " + profileTableSource + "; MDC_ECG_HEART_RATE 2::16770: " + srcMDC + "; /min: " + srcUCUM,
	},
	{
		Key: SpO2, LOINC: loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
		ProfileLOINC: &Coding{System: SystemLOINC, Code: "2708-6", Display: "Oxygen saturation in Arterial blood"},
		MDC:          MDCCode{"150456", "MDC_PULS_OXIM_SAT_O2"}, Unit: "%", MDCUnit: MDCCode{"262688", "MDC_DIM_PERCENT"}, Profile: ProfileOxygenSat, Decimals: 1,
		Source: "LOINC 2708-6 and profile oxygensat: " + profileTableSource + "; LOINC 59408-5: " + srcLOINC + "; MDC_PULS_OXIM_SAT_O2 2::19384: " + srcMDC + "; %: " + srcUCUM,
	},
	{
		Key: PulseRate, LOINC: loinc("8889-8", "Heart rate by Pulse oximetry"),
		ProfileLOINC: &Coding{System: SystemLOINC, Code: "8867-4", Display: "Heart rate"},
		MDC:          MDCCode{"149530", "MDC_PULS_OXIM_PULS_RATE"}, Unit: "/min", MDCUnit: MDCCode{"264864", "MDC_DIM_BEAT_PER_MIN"}, Profile: ProfileHeartRate,
		Source: "LOINC 8867-4 and profile heartrate: " + profileTableSource + "; LOINC 8889-8: " + srcLOINC + "; MDC_PULS_OXIM_PULS_RATE 2::18458: " + srcMDC + "; /min: " + srcUCUM,
	},
	{
		Key: BloodPressure, Kind: KindPanel, LOINC: loinc("85354-9", "Blood pressure panel with all children optional"),
		MDC: MDCCode{"150020", "MDC_PRESS_BLD_NONINV"}, Unit: "mm[Hg]", MDCUnit: MDCCode{"266016", "MDC_DIM_MMHG"}, Profile: ProfileBP,
		Components: []string{BPSystolic, BPDiastolic, BPMean},
		Source:     "LOINC 85354-9 and profile bp: " + profileTableSource + "; MDC_PRESS_BLD_NONINV 2::18948: " + srcMDC + "; mm[Hg]: " + srcUCUM,
	},
	{
		Key: BPSystolic, Kind: KindComponent, LOINC: loinc("8480-6", "Systolic blood pressure"),
		MDC: MDCCode{"150021", "MDC_PRESS_BLD_NONINV_SYS"}, Unit: "mm[Hg]", MDCUnit: MDCCode{"266016", "MDC_DIM_MMHG"}, Profile: ProfileBP,
		Source: "LOINC 8480-6 (bp SystolicBP component): " + profileTableSource + "; MDC_PRESS_BLD_NONINV_SYS 2::18949: " + srcMDC,
	},
	{
		Key: BPDiastolic, Kind: KindComponent, LOINC: loinc("8462-4", "Diastolic blood pressure"),
		MDC: MDCCode{"150022", "MDC_PRESS_BLD_NONINV_DIA"}, Unit: "mm[Hg]", MDCUnit: MDCCode{"266016", "MDC_DIM_MMHG"}, Profile: ProfileBP,
		Source: "LOINC 8462-4 (bp DiastolicBP component): " + profileTableSource + "; MDC_PRESS_BLD_NONINV_DIA 2::18950: " + srcMDC,
	},
	{
		Key: BPMean, Kind: KindComponent, LOINC: loinc("8478-0", "Mean blood pressure"),
		MDC: MDCCode{"150023", "MDC_PRESS_BLD_NONINV_MEAN"}, Unit: "mm[Hg]", MDCUnit: MDCCode{"266016", "MDC_DIM_MMHG"}, Profile: ProfileBP,
		Source: "LOINC 8478-0: " + srcLOINC + " (an extra component; the bp profile's component slicing is open); MDC_PRESS_BLD_NONINV_MEAN 2::18951: " + srcMDC,
	},
	{
		Key: BodyTemp, LOINC: loinc("8310-5", "Body temperature"),
		MDC: MDCCode{"150364", "MDC_TEMP_BODY"}, Unit: "Cel", MDCUnit: MDCCode{"268192", "MDC_DIM_DEGC"}, Profile: ProfileBodyTemp, Decimals: 2,
		Source: "LOINC 8310-5 and profile bodytemp: " + profileTableSource + "; MDC_TEMP_BODY 2::19292: " + srcMDC + "; Cel, [degF]: " + srcUCUM,
	},
	{
		Key: RespRate, LOINC: loinc("9279-1", "Respiratory rate"),
		MDC: MDCCode{"151562", "MDC_RESP_RATE"}, Unit: "/min", MDCUnit: MDCCode{"264928", "MDC_DIM_RESP_PER_MIN"}, Profile: ProfileRespRate,
		Source: "LOINC 9279-1 and profile resprate: " + profileTableSource + "; MDC_RESP_RATE 2::20490: " + srcMDC + "; /min: " + srcUCUM,
	},
	{
		Key: BodyWeight, LOINC: loinc("29463-7", "Body weight"),
		MDC: MDCCode{"188736", "MDC_MASS_BODY_ACTUAL"}, Unit: "kg", MDCUnit: MDCCode{"263875", "MDC_DIM_KILO_G"}, Profile: ProfileBodyWeight, Decimals: 3,
		Source: "LOINC 29463-7 and profile bodyweight: " + profileTableSource + "; MDC_MASS_BODY_ACTUAL 2::57664: " + srcMDC + "; kg, g, [lb_av]: " + srcUCUM,
	},
	{
		// Glucose is not in the R4 vital-signs table: it claims only the base
		// vitalsigns profile, whose code binding is extensible, and carries
		// category vital-signs because device readings are reported as such.
		Key: BloodGlucose, LOINC: loinc("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"),
		MDC: MDCCode{"160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"}, Unit: "mg/dL", MDCUnit: MDCCode{"264274", "MDC_DIM_MILLI_G_PER_DL"}, Profile: ProfileVitalSigns,
		Decimals: 1, MolarMass: 180.156,
		Source: "LOINC 41653-7: " + srcLOINC + "; base profile vitalsigns: " + profileTableSource + "; MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD 2::29112: " + srcMDC + "; mg/dL, mmol/L (glucose 180.156 g/mol): " + srcUCUM,
	},
	{
		// LOINC has no term for one ECG lead's waveform and the vital-signs
		// profiles do not cover waveforms: coded with MDC only, no profile,
		// as in the FHIR R4 example observation-example-sample-data.
		Key: ECGLeadII, Kind: KindWaveform,
		MDC: MDCCode{"131330", "MDC_ECG_ELEC_POTL_II"}, Unit: "mV", MDCUnit: MDCCode{"266418", "MDC_DIM_MILLI_VOLT"},
		Source: "MDC_ECG_ELEC_POTL_II 2::258: " + srcMDC + " and https://hl7.org/fhir/R4/observation-example-sample-data.html; mV: " + srcUCUM,
	},
}

// Lookups, built once from table; never modified.
var byKey, byLOINC, byMDC = index(table)

func index(table []Vital) (byKey, byLOINC, byMDC map[string]*Vital) {
	byKey, byLOINC, byMDC = map[string]*Vital{}, map[string]*Vital{}, map[string]*Vital{}
	for i := range table {
		v := &table[i]
		byKey[v.Key] = v
		if v.LOINC.Code != "" {
			byLOINC[v.LOINC.Code] = v
		}
		byMDC[v.MDC.Code] = v
		byMDC[v.MDC.RefID] = v
	}
	// A profile code is a lookup key only where no row has it as its own
	// code (8867-4 is heart rate's, not pulse rate's).
	for i := range table {
		v := &table[i]
		if v.ProfileLOINC != nil {
			if _, taken := byLOINC[v.ProfileLOINC.Code]; !taken {
				byLOINC[v.ProfileLOINC.Code] = v
			}
		}
	}
	return byKey, byLOINC, byMDC
}

// ByKey returns the vital with the given key.
func ByKey(key string) (*Vital, bool) { v, ok := byKey[key]; return v, ok }

// ByLOINC returns the vital a LOINC code stands for.
func ByLOINC(code string) (*Vital, bool) { v, ok := byLOINC[code]; return v, ok }

// ByMDC returns the vital with the given MDC numeric code ("147842") or
// reference id ("MDC_ECG_HEART_RATE").
func ByMDC(codeOrRefID string) (*Vital, bool) { v, ok := byMDC[codeOrRefID]; return v, ok }

// ByCoding returns the vital the codings stand for. MDC codings are tried
// first because each MDC code names one row, while a profile's LOINC code
// is shared (8867-4 is on heart rate and on pulse rate by oximetry).
func ByCoding(cs []Coding) (*Vital, bool) {
	for _, c := range cs {
		if c.System == SystemMDC {
			if v, ok := ByMDC(c.Code); ok {
				return v, true
			}
		}
	}
	for _, c := range cs {
		if c.System == SystemLOINC {
			if v, ok := ByLOINC(c.Code); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// All returns the rows in table order. The pointers are shared: do not
// modify what they point to.
func All() []*Vital {
	out := make([]*Vital, len(table))
	for i := range table {
		out[i] = &table[i]
	}
	return out
}

// Keys returns the row keys, sorted.
func Keys() []string {
	ks := make([]string, 0, len(table))
	for _, v := range table {
		ks = append(ks, v.Key)
	}
	sort.Strings(ks)
	return ks
}
