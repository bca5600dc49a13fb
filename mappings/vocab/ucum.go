package vocab

import (
	"math"
	"sort"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Dimension groups units that convert into each other.
type Dimension string

// The dimensions of our UCUM subset.
const (
	DimRate          Dimension = "rate"               // events per time, base /min
	DimFraction      Dimension = "fraction"           // base %
	DimPressure      Dimension = "pressure"           // base mm[Hg]
	DimTemperature   Dimension = "temperature"        // base Cel
	DimMass          Dimension = "mass"               // base kg
	DimMassConc      Dimension = "mass-conc"          // base mg/dL
	DimSubstanceConc Dimension = "substance-conc"     // base mmol/L
	DimVoltage       Dimension = "electric-potential" // base mV
	DimTime          Dimension = "time"               // base ms
)

// Unit is one UCUM unit of the subset. A value v in this unit is
// v*Factor + Offset in the dimension's base unit.
type Unit struct {
	Code    string // the UCUM case-sensitive code: "mm[Hg]"
	Display string // what Quantity.unit shows
	Dim     Dimension
	Factor  float64
	Offset  float64
}

// mmHgPerKPa: UCUM defines mm[Hg] as 133.3220 Pa rounded from
// 13.5951 g/cm3 × 9.80665 m/s2 × 1 mm = 133.322387415 Pa.
const mmHgPerKPa = 1000 / 133.322387415

// units is the UCUM subset: the units of the table and the ones devices
// send that convert to them. Annotations ({beats}/min) are UCUM's way to
// label a unit and do not change it.
var units = []Unit{
	{"/min", "/min", DimRate, 1, 0},
	{"1/min", "/min", DimRate, 1, 0},
	{"{beats}/min", "beats/min", DimRate, 1, 0},
	{"{beat}/min", "beats/min", DimRate, 1, 0},
	{"{breaths}/min", "breaths/min", DimRate, 1, 0},
	{"{breath}/min", "breaths/min", DimRate, 1, 0},
	{"/s", "/s", DimRate, 60, 0},
	{"/h", "/h", DimRate, 1.0 / 60, 0},
	{"%", "%", DimFraction, 1, 0},
	{"mm[Hg]", "mmHg", DimPressure, 1, 0},
	{"kPa", "kPa", DimPressure, mmHgPerKPa, 0},
	{"Pa", "Pa", DimPressure, mmHgPerKPa / 1000, 0},
	{"Cel", "°C", DimTemperature, 1, 0},
	{"[degF]", "°F", DimTemperature, 5.0 / 9, -32 * 5.0 / 9},
	{"K", "K", DimTemperature, 1, -273.15},
	{"kg", "kg", DimMass, 1, 0},
	{"g", "g", DimMass, 0.001, 0},
	{"[lb_av]", "lb", DimMass, 0.45359237, 0},
	{"[oz_av]", "oz", DimMass, 0.028349523125, 0},
	{"mg/dL", "mg/dL", DimMassConc, 1, 0},
	{"mg/L", "mg/L", DimMassConc, 0.1, 0},
	{"g/L", "g/L", DimMassConc, 100, 0},
	{"mmol/L", "mmol/L", DimSubstanceConc, 1, 0},
	{"umol/L", "µmol/L", DimSubstanceConc, 0.001, 0},
	{"mV", "mV", DimVoltage, 1, 0},
	{"uV", "µV", DimVoltage, 0.001, 0},
	{"V", "V", DimVoltage, 1000, 0},
	{"ms", "ms", DimTime, 1, 0},
	{"s", "s", DimTime, 1000, 0},
}

var unitByCode = indexUnits(units)

func indexUnits(us []Unit) map[string]*Unit {
	m := make(map[string]*Unit, len(us))
	for i := range us {
		m[us[i].Code] = &us[i]
	}
	return m
}

// LookupUnit returns the unit with the given UCUM code (case-sensitive, as
// UCUM's c/s codes are).
func LookupUnit(code string) (Unit, bool) {
	u, ok := unitByCode[code]
	if !ok {
		return Unit{}, false
	}
	return *u, true
}

// ValidUnit reports whether code is a UCUM code of our subset.
func ValidUnit(code string) bool { _, ok := unitByCode[code]; return ok }

// UnitCodes returns the codes of the subset, sorted.
func UnitCodes() []string {
	cs := make([]string, 0, len(units))
	for _, u := range units {
		cs = append(cs, u.Code)
	}
	sort.Strings(cs)
	return cs
}

// Convert converts v from one unit to another of the same dimension. It
// returns a KindUnprocessable error naming the unit codes when a unit is
// unknown or the two are not commensurable.
func Convert(v float64, from, to string) (float64, error) {
	f, ok := unitByCode[from]
	if !ok {
		return 0, fhir.Errorf(fhir.KindUnprocessable, "unit %q is not a UCUM unit Pulsewire knows", from)
	}
	t, ok := unitByCode[to]
	if !ok {
		return 0, fhir.Errorf(fhir.KindUnprocessable, "unit %q is not a UCUM unit Pulsewire knows", to)
	}
	if f.Dim != t.Dim {
		return 0, fhir.Errorf(fhir.KindUnprocessable, "unit %q (%s) cannot be converted to %q (%s)", from, f.Dim, to, t.Dim)
	}
	return convert(v, f, t), nil
}

func convert(v float64, f, t *Unit) float64 {
	if f == t {
		return v
	}
	base := v*f.Factor + f.Offset
	return (base - t.Offset) / t.Factor
}

// ConvertSubstance converts between a substance concentration (mmol/L) and
// a mass concentration (mg/dL) of a substance of the given molar mass in
// g/mol: 1 mmol/L × M g/mol = M mg/L = M/10 mg/dL. Units of the same
// dimension convert as Convert does.
func ConvertSubstance(v float64, from, to string, molarMass float64) (float64, error) {
	f, fok := unitByCode[from]
	t, tok := unitByCode[to]
	if !fok || !tok || f.Dim == t.Dim || molarMass <= 0 {
		return Convert(v, from, to)
	}
	switch {
	case f.Dim == DimSubstanceConc && t.Dim == DimMassConc:
		mmolPerL := v*f.Factor + f.Offset
		return (mmolPerL*molarMass/10 - t.Offset) / t.Factor, nil
	case f.Dim == DimMassConc && t.Dim == DimSubstanceConc:
		mgPerDL := v*f.Factor + f.Offset
		return (mgPerDL*10/molarMass - t.Offset) / t.Factor, nil
	}
	return Convert(v, from, to)
}

// Normalize returns v, sent in unit, in the vital's unit. A value in the
// vital's own unit (or a UCUM synonym of it such as {beats}/min for /min)
// is returned unchanged; a converted one is rounded to the vital's
// Decimals. converted reports whether a conversion happened.
func (vt *Vital) Normalize(v float64, unit string) (out float64, converted bool, err error) {
	if unit == vt.Unit {
		return v, false, nil
	}
	f, ok := unitByCode[unit]
	if !ok {
		return 0, false, fhir.Errorf(fhir.KindUnprocessable, "unit %q is not a UCUM unit Pulsewire knows", unit)
	}
	t := unitByCode[vt.Unit]
	if f.Dim == t.Dim && f.Factor == t.Factor && f.Offset == t.Offset {
		return v, false, nil
	}
	if f.Dim != t.Dim && vt.MolarMass == 0 {
		return 0, false, fhir.Errorf(fhir.KindUnprocessable, "unit %q cannot be converted to %q for %s", unit, vt.Unit, vt.Key)
	}
	out, err = ConvertSubstance(v, unit, vt.Unit, vt.MolarMass)
	if err != nil {
		return 0, false, err
	}
	p := math.Pow(10, float64(vt.Decimals))
	return math.Round(out*p) / p, true, nil
}
