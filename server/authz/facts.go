package authz

import (
	"encoding/json"
	"slices"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// facts is what the decision reads from one resource: its patient
// compartment, index values (for granular scopes), codes, clinical time and
// security labels. They come from the same extraction the store indexes
// with (search.Registry.Extract), so the post-filter and the search
// narrowing agree.
type facts struct {
	typ, id  string
	patients []string // ids of the patients whose compartment holds it
	codes    []Coding // the "code" parameter's tokens

	// entries are the index entries of the parameters read so far (see
	// paramEntries): a decision reads a few, and extracting only those
	// decodes only the members they read.
	reg     *search.Registry
	entries map[string][]fhir.IndexEntry

	typeHasDate bool
	dated       bool
	dates       span // hull of the "date" parameter's ranges

	body      json.RawMessage
	labelsSet bool
	labelList []Coding
}

// labels returns meta.security, read on first use (few rules ask).
func (f *facts) labels() []Coding {
	if !f.labelsSet {
		f.labelsSet = true
		var doc struct {
			Meta struct {
				Security []jsonCoding `json:"security"`
			} `json:"meta"`
		}
		if json.Unmarshal(f.body, &doc) == nil {
			for _, c := range doc.Meta.Security {
				f.labelList = append(f.labelList, Coding(c))
			}
		}
	}
	return f.labelList
}

// compartmentParam is the search parameter that places a resource in a
// patient's compartment. Every type of ours that belongs to the Patient
// compartment has it (Observation, Encounter, DeviceUseStatement, Device,
// Consent, AuditEvent); Patient itself is in its own compartment.
const compartmentParam = "patient"

// isCompartmentRef reports whether an index entry places its resource in a
// patient's compartment: the patient parameter, or subject when it points
// at a Patient (patient is defined as subject.where(resolve() is Patient) on
// Observation, Encounter and DeviceUseStatement, and the registry may index
// it only as subject).
func isCompartmentRef(e fhir.IndexEntry) bool {
	return (e.Param == compartmentParam || e.Param == "subject") && e.Type == fhir.ParamReference && e.RefType == "Patient"
}

// inCompartment reports whether resources of typ belong to a patient
// compartment.
func inCompartment(reg *search.Registry, typ string) bool {
	if typ == "Patient" {
		return true
	}
	_, ok := reg.Lookup(typ, compartmentParam)
	return ok
}

func traitsOf(reg *search.Registry, typ string) typeTraits {
	_, code := reg.Lookup(typ, "code")
	_, date := reg.Lookup(typ, "date")
	return typeTraits{typ: typ, hasCode: code, hasDate: date}
}

// extractFacts reads a resource. A type the registry does not support has
// no index entries (and no compartment).
func extractFacts(reg *search.Registry, res *fhir.Resource) (*facts, error) {
	f := &facts{typ: res.Type, id: res.ID, body: res.Body, reg: reg}
	if !reg.Supports(res.Type) {
		return f, nil
	}
	base := []string{compartmentParam, "subject", "code", "date"}
	entries, err := reg.ExtractOnly(res.Type, res.Body, base...)
	if err != nil {
		return nil, err
	}
	f.entries = map[string][]fhir.IndexEntry{}
	for _, p := range base {
		f.entries[p] = nil
	}
	for _, e := range entries {
		f.entries[e.Param] = append(f.entries[e.Param], e)
	}
	if res.Type == "Patient" {
		f.patients = []string{res.ID}
	}
	f.typeHasDate = traitsOf(reg, res.Type).hasDate
	compartment := inCompartment(reg, res.Type)
	for _, e := range entries {
		switch {
		case compartment && isCompartmentRef(e):
			if !slices.Contains(f.patients, e.RefID) {
				f.patients = append(f.patients, e.RefID)
			}
		case e.Param == "code" && e.Type == fhir.ParamToken:
			f.codes = append(f.codes, Coding{e.System, e.Code})
		case e.Param == "date" && e.Type == fhir.ParamDate:
			if !f.dated {
				f.dated, f.dates = true, span{Lo: e.Lo, Hi: e.Hi}
				continue
			}
			if e.Lo.Before(f.dates.Lo) {
				f.dates.Lo = e.Lo
			}
			if e.Hi.After(f.dates.Hi) {
				f.dates.Hi = e.Hi
			}
		}
	}
	return f, nil
}

// matchParams reports whether the resource meets every parameter (ANDed;
// a parameter's values ORed) — the granular restriction of a scope. Only
// token and reference parameters without modifiers come here (see
// grantParams).
func (f *facts) matchParams(ps []fhir.Param) bool {
	for _, p := range ps {
		if !f.matchParam(p) {
			return false
		}
	}
	return true
}

func (f *facts) matchParam(p fhir.Param) bool {
	if p.Name == compartmentParam && p.Type == fhir.ParamReference {
		// May be indexed under another name (see isCompartmentRef).
		for _, v := range p.Values {
			if (v.RefType == "" || v.RefType == "Patient") && slices.Contains(f.patients, v.RefID) {
				return true
			}
		}
		return false
	}
	for _, e := range f.paramEntries(p.Name) {
		if e.Type != p.Type {
			continue
		}
		for _, v := range p.Values {
			switch p.Type {
			case fhir.ParamToken:
				if v.Code == "" && v.System == e.System ||
					v.Code != "" && v.Code == e.Code && (!v.HasSystem || v.System == e.System) {
					return true
				}
			case fhir.ParamReference:
				if v.RefID == e.RefID && (v.RefType == "" || v.RefType == e.RefType) {
					return true
				}
			}
		}
	}
	return false
}

// paramEntries returns the index entries of parameter code, extracting
// them on first use. A resource that cannot be read has none (extractFacts
// has read it once already, so that does not happen in practice).
func (f *facts) paramEntries(code string) []fhir.IndexEntry {
	if es, ok := f.entries[code]; ok || f.entries == nil {
		return es
	}
	es, _ := f.reg.ExtractOnly(f.typ, f.body, code)
	f.entries[code] = es
	return es
}

// within reports whether every patient of the resource is patient (and it
// has at least one).
func (f *facts) within(patient string) bool {
	if len(f.patients) == 0 {
		return false
	}
	for _, p := range f.patients {
		if p != patient {
			return false
		}
	}
	return true
}
