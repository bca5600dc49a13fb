package oru

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// HD is an HL7 hierarchic designator (MSH-3..6, CX-4): namespace id,
// universal id and universal id type.
type HD struct {
	Namespace       string `json:"namespace,omitempty"`
	UniversalID     string `json:"universalId,omitempty"`
	UniversalIDType string `json:"universalIdType,omitempty"`
}

// IdentifierRule says how one FHIR identifier system is written in a CX
// field (PID-3, PV1-19): its assigning authority (CX-4) and identifier type
// code (CX-5, HL7 table 0203, e.g. MR, VN).
type IdentifierRule struct {
	System    string `json:"system"`
	Authority HD     `json:"authority"`
	TypeCode  string `json:"typeCode,omitempty"`
}

// Code is one row of a destination's code table: what OBX-3 components 1-3
// carry for a vital (an Epic flowsheet row id, a Cerner event code alias).
type Code struct {
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Settings is the data part of a destination profile, loadable from JSON.
// Zero values mean the profile kind's defaults.
type Settings struct {
	// Kind is the registered profile name: "pcd01", "epic", "cerner".
	Kind string `json:"kind"`
	// Version is MSH-12: "2.6" (default) or "2.5.1".
	Version string `json:"version,omitempty"`
	// MSH-3..6.
	SendingApplication   HD `json:"sendingApplication"`
	SendingFacility      HD `json:"sendingFacility"`
	ReceivingApplication HD `json:"receivingApplication"`
	ReceivingFacility    HD `json:"receivingFacility"`
	// ProcessingID is MSH-11: P (default), T or D.
	ProcessingID string `json:"processingId,omitempty"`
	// Units is what OBX-6 leads with: "mdc" (PCD-01; UCUM as the
	// alternate) or "ucum" (UCUM only).
	Units string `json:"units,omitempty"`
	// DeviceRows sends the MDS device-related OBX row (see the package
	// comment). Default: true for pcd01, false for EHR flowsheet feeds.
	DeviceRows *bool `json:"deviceRows,omitempty"`
	// PatientIdentifiers selects and orders PID-3: only identifiers whose
	// system has a rule are sent, in rule order. Empty: every identifier,
	// with CX-4 from Authorities or the identifier's assigner.
	PatientIdentifiers []IdentifierRule `json:"patientIdentifiers,omitempty"`
	// VisitIdentifier selects PV1-19 among Encounter.identifier. Nil: the
	// first identifier, typed VN.
	VisitIdentifier *IdentifierRule `json:"visitIdentifier,omitempty"`
	// Authorities maps an identifier system to its assigning authority,
	// for systems without a rule.
	Authorities map[string]HD `json:"authorities,omitempty"`
	// DefaultPatientClass is PV1-2 when there is no Encounter class; "U"
	// (unknown) when empty.
	DefaultPatientClass string `json:"defaultPatientClass,omitempty"`
	// Codes is the destination's code table, keyed by vocab vital key
	// ("heart-rate"), LOINC code or MDC code. Required by epic and cerner.
	Codes map[string]Code `json:"codes,omitempty"`
	// CodeSystem is OBX-3.3 for a code from Codes (e.g. the name the
	// interface engine expects for its flowsheet or event code table).
	CodeSystem string `json:"codeSystem,omitempty"`
	// LOINCAlternate puts the LOINC code in OBX-3 components 4-6 after a
	// code from Codes too (pcd01 always does).
	LOINCAlternate bool `json:"loincAlternate,omitempty"`
}

// LoadSettings decodes a JSON profile, rejecting unknown members.
func LoadSettings(b []byte) (*Settings, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var s Settings
	if err := dec.Decode(&s); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "oru: decoding profile settings").Wrap(err)
	}
	return &s, nil
}

// Metric is one OBX-worthy value of an Observation: the Observation itself
// or one of its components. Profiles see it when coding OBX-3.
type Metric struct {
	// Codings of the metric (Observation.code or component.code). They are
	// the decoded resource's own: profiles must not modify them.
	Codings []Coding
	// VitalKey is the vocab key the codings stand for ("" when unknown).
	VitalKey string
	// Path is the FHIR element the metric comes from, for error messages.
	Path string
}

// Coding is a code system and code (no display: not needed to match).
type Coding struct {
	System  string
	Code    string
	Display string
}

// CWE is a coded element: identifier, text, coding system, and the
// alternate identifier, text and coding system (components 1-6).
type CWE struct {
	ID, Text, System          string
	AltID, AltText, AltSystem string
}

// Profile is a destination profile: its Settings plus the little code that
// differs between destinations. Implementations must be safe for
// concurrent use (Build calls them from many goroutines).
type Profile interface {
	// Settings returns the profile's data, defaults applied. Callers must
	// not modify it.
	Settings() *Settings
	// ObservationID returns OBX-3 for m. A code the profile cannot map is a
	// *fhir.Error of KindUnprocessable naming the code (codes are not
	// patient data) at m.Path.
	ObservationID(m *Metric) (CWE, error)
}

// Factory makes a Profile from settings. It validates them and returns
// KindInvalid errors for unusable settings.
type Factory func(s Settings) (Profile, error)

// Registry maps profile kinds to factories. Adding an EHR is one more
// Register call in its own file or package: existing profiles are not
// touched.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// DefaultRegistry returns a registry holding the built-in profiles: pcd01,
// epic and cerner.
func DefaultRegistry() *Registry {
	r := NewRegistry()
	_ = r.Register("pcd01", NewPCD01)
	_ = r.Register("epic", NewEpic)
	_ = r.Register("cerner", NewCerner)
	return r
}

// Register adds a factory under name. Registering a name twice is a
// KindConflict error.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" || f == nil {
		return fhir.Errorf(fhir.KindInvalid, "oru: a profile needs a name and a factory")
	}
	if _, dup := r.factories[name]; dup {
		return fhir.Errorf(fhir.KindConflict, "oru: profile kind %q is already registered", name)
	}
	r.factories[name] = f
	return nil
}

// Kinds lists the registered names, sorted.
func (r *Registry) Kinds() []string {
	ks := make([]string, 0, len(r.factories))
	for k := range r.factories {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// New makes the profile s.Kind names. KindNotSupported for an unknown kind.
func (r *Registry) New(s Settings) (Profile, error) {
	f, ok := r.factories[s.Kind]
	if !ok {
		return nil, fhir.Errorf(fhir.KindNotSupported, "oru: unknown profile kind %q", s.Kind).At("kind")
	}
	return f(s)
}

// commonDefaults fills and checks what every profile shares.
func commonDefaults(s *Settings, deviceRows bool, units string) error {
	switch s.Version {
	case "":
		s.Version = "2.6"
	case "2.6", "2.5.1":
	default:
		return fhir.Errorf(fhir.KindInvalid, "oru: HL7 version must be 2.6 or 2.5.1").At("version")
	}
	switch s.ProcessingID {
	case "":
		s.ProcessingID = "P"
	case "P", "T", "D":
	default:
		return fhir.Errorf(fhir.KindInvalid, "oru: processing id must be P, T or D").At("processingId")
	}
	switch s.Units {
	case "":
		s.Units = units
	case "mdc", "ucum":
	default:
		return fhir.Errorf(fhir.KindInvalid, "oru: units must be mdc or ucum").At("units")
	}
	if s.DeviceRows == nil {
		s.DeviceRows = &deviceRows
	}
	if s.DefaultPatientClass == "" {
		s.DefaultPatientClass = "U"
	}
	if s.SendingApplication.Namespace == "" && s.SendingApplication.UniversalID == "" {
		return fhir.Errorf(fhir.KindInvalid, "oru: MSH-3 sending application is required").At("sendingApplication")
	}
	for i, r := range s.PatientIdentifiers {
		if r.System == "" {
			return fhir.Errorf(fhir.KindInvalid, "oru: patient identifier rule %d has no system", i).At("patientIdentifiers")
		}
	}
	return nil
}

// pcd01 is the generic IHE PCD-01 profile: OBX-3 is the MDC code with
// LOINC as the alternate.
type pcd01 struct{ s Settings }

// NewPCD01 is the Factory of the generic PCD-01 profile.
func NewPCD01(s Settings) (Profile, error) {
	if err := commonDefaults(&s, true, "mdc"); err != nil {
		return nil, err
	}
	return &pcd01{s: s}, nil
}

func (p *pcd01) Settings() *Settings { return &p.s }

func (p *pcd01) ObservationID(m *Metric) (CWE, error) {
	mdc, ok := first(m.Codings, systemMDC)
	if !ok {
		return CWE{}, fhir.Errorf(fhir.KindUnprocessable, "oru: PCD-01 needs an IEEE 11073 MDC code; the Observation has none").At(m.Path)
	}
	c := CWE{ID: mdc.Code, Text: refID(mdc), System: "MDC"}
	if ln, ok := first(m.Codings, systemLOINC); ok {
		c.AltID, c.AltText, c.AltSystem = ln.Code, ln.Display, "LN"
	}
	return c, nil
}

// tableProfile is the shared code of the EHR flowsheet profiles: OBX-3
// comes from the destination's code table.
type tableProfile struct {
	s    Settings
	name string // for messages: "Epic flowsheet row", "Cerner event code"
}

func newTableProfile(s Settings, name string) (*tableProfile, error) {
	if err := commonDefaults(&s, false, "ucum"); err != nil {
		return nil, err
	}
	if len(s.Codes) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "oru: the %s profile needs a code table", s.Kind).At("codes")
	}
	for k, c := range s.Codes {
		if k == "" || c.Code == "" {
			return nil, fhir.Errorf(fhir.KindInvalid, "oru: the %s code table has an empty key or code", s.Kind).At("codes")
		}
	}
	return &tableProfile{s: s, name: name}, nil
}

func (p *tableProfile) Settings() *Settings { return &p.s }

func (p *tableProfile) ObservationID(m *Metric) (CWE, error) {
	code, ok := p.lookup(m)
	if !ok {
		return CWE{}, fhir.Errorf(fhir.KindUnprocessable, "oru: no %s mapped for code %s in the destination's table", p.name, describe(m)).At(m.Path)
	}
	c := CWE{ID: code.Code, Text: code.Display, System: p.s.CodeSystem}
	if p.s.LOINCAlternate {
		if ln, ok := first(m.Codings, systemLOINC); ok {
			c.AltID, c.AltText, c.AltSystem = ln.Code, ln.Display, "LN"
		}
	}
	return c, nil
}

// lookup tries the vital key, then each LOINC code, then each MDC code.
func (p *tableProfile) lookup(m *Metric) (Code, bool) {
	if m.VitalKey != "" {
		if c, ok := p.s.Codes[m.VitalKey]; ok {
			return c, true
		}
	}
	for _, sys := range []string{systemLOINC, systemMDC} {
		for _, c := range m.Codings {
			if c.System == sys {
				if code, ok := p.s.Codes[c.Code]; ok {
					return code, true
				}
			}
		}
	}
	return Code{}, false
}

// describe names a metric's code for an error: its vital key or first
// coding. Codes are terminology, not patient data.
func describe(m *Metric) string {
	if m.VitalKey != "" {
		return m.VitalKey
	}
	if len(m.Codings) > 0 {
		return m.Codings[0].System + "|" + m.Codings[0].Code
	}
	return "(none)"
}
