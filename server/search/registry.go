package search

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ParamDef is one search parameter of one resource type as the R4 registry
// defines it.
type ParamDef struct {
	Code        string
	Type        fhir.ParamType
	Description string
	// Expression is the FHIRPath expression of the R4 definition (restricted
	// to this resource type), for the CapabilityStatement. Extraction does
	// not evaluate it.
	Expression string
	// Targets are the resource types a reference parameter may point to;
	// empty means any type.
	Targets []string
	// Definition is the canonical URL of the R4 SearchParameter
	// (CapabilityStatement.rest.resource.searchParam.definition). It is an
	// addition to the API agreed in the brief.
	Definition string
	// StoredAs names the parameters whose index entries answer this one
	// when it is derived from them and not indexed itself (see
	// fhir.DerivedParam); empty for an indexed parameter.
	StoredAs []string
}

// Registry holds the search parameters of the supported resource types. It
// is immutable after NewRegistry and safe for concurrent use.
type Registry struct {
	types  []string
	params map[string]map[string]*param // type -> code -> param
	sorted map[string][]*param          // type -> params sorted by code
}

// param is a ParamDef with the paths extraction follows.
type param struct {
	def   ParamDef
	paths []path
}

// NewRegistry returns the registry of the built-in R4 parameters of
// Patient, Device, DeviceMetric, Observation, Encounter, Location,
// Organization, Practitioner, Consent and AuditEvent, plus _id and
// _lastUpdated on each.
func NewRegistry() *Registry {
	r := &Registry{
		params: map[string]map[string]*param{},
		sorted: map[string][]*param{},
	}
	for _, d := range r4Params {
		m := r.params[d.typ]
		if m == nil {
			m = map[string]*param{}
			r.params[d.typ] = m
			r.types = append(r.types, d.typ)
			for _, c := range commonParams(d.typ) {
				m[c.def.Code] = c
			}
		}
		if _, dup := m[d.code]; dup {
			panic(fmt.Sprintf("search: duplicate parameter %s.%s", d.typ, d.code))
		}
		p := &param{def: ParamDef{
			Code:        d.code,
			Type:        d.ptype,
			Description: d.desc,
			Expression:  d.expr,
			Targets:     d.targets,
			Definition:  definitionURL(d.typ, d.code, d.shared),
		}}
		for _, s := range d.paths {
			p.paths = append(p.paths, mustPath(s))
		}
		m[d.code] = p
	}
	fhir.EachDerived(func(typ, code string, d fhir.Derived) {
		p := r.params[typ][code]
		for _, f := range d.From {
			src := r.params[typ][f]
			if p == nil || src == nil || src.def.Type != p.def.Type {
				panic(fmt.Sprintf("search: derived parameter %s.%s cannot be stored as %s", typ, code, f))
			}
			// A derived reference parameter is its source restricted to
			// its own targets, which must be among the source's.
			for _, t := range p.def.Targets {
				if !src.hasTarget(t) {
					panic(fmt.Sprintf("search: derived parameter %s.%s targets %s, which %s does not", typ, code, t, f))
				}
			}
		}
		if d.Targets != nil && !slices.Equal(d.Targets, p.def.Targets) {
			panic(fmt.Sprintf("search: derived parameter %s.%s has targets %v, not %v", typ, code, d.Targets, p.def.Targets))
		}
		p.def.StoredAs = d.From
	})
	sort.Strings(r.types)
	for typ, m := range r.params {
		list := make([]*param, 0, len(m))
		for _, p := range m {
			list = append(list, p)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].def.Code < list[j].def.Code })
		r.sorted[typ] = list
	}
	return r
}

// commonParams are the parameters every resource type has. They are
// answered from the resource table (id, last_updated), so they have no
// extraction paths.
func commonParams(typ string) []*param {
	return []*param{
		{def: ParamDef{Code: "_id", Type: fhir.ParamToken, Description: "Logical id of this artifact",
			Expression: "Resource.id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id"}},
		{def: ParamDef{Code: "_lastUpdated", Type: fhir.ParamDate, Description: "When the resource version last changed",
			Expression: "Resource.meta.lastUpdated", Definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"}},
	}
}

func definitionURL(typ, code, shared string) string {
	if shared != "" {
		return "http://hl7.org/fhir/SearchParameter/" + shared
	}
	return "http://hl7.org/fhir/SearchParameter/" + typ + "-" + code
}

// Types returns the supported resource types, sorted.
func (r *Registry) Types() []string { return append([]string(nil), r.types...) }

// Supports reports whether typ is a supported resource type.
func (r *Registry) Supports(typ string) bool {
	_, ok := r.params[typ]
	return ok
}

// Params returns the parameters of typ sorted by code, including _id and
// _lastUpdated; nil for an unsupported type.
func (r *Registry) Params(typ string) []ParamDef {
	list := r.sorted[typ]
	if list == nil {
		return nil
	}
	out := make([]ParamDef, len(list))
	for i, p := range list {
		out[i] = p.def
		out[i].Targets = append([]string(nil), p.def.Targets...)
		out[i].StoredAs = slices.Clone(p.def.StoredAs)
	}
	return out
}

// Lookup returns the parameter code of typ.
func (r *Registry) Lookup(typ, code string) (ParamDef, bool) {
	p := r.lookup(typ, code)
	if p == nil {
		return ParamDef{}, false
	}
	d := p.def
	d.Targets = append([]string(nil), p.def.Targets...)
	d.StoredAs = slices.Clone(p.def.StoredAs)
	return d, true
}

func (r *Registry) lookup(typ, code string) *param {
	m := r.params[typ]
	if m == nil {
		return nil
	}
	return m[code]
}

// hasTarget reports whether a reference parameter may point to typ.
func (p *param) hasTarget(typ string) bool {
	if len(p.def.Targets) == 0 {
		return true
	}
	for _, t := range p.def.Targets {
		if t == typ {
			return true
		}
	}
	return false
}

// pathSyntax documents the extraction path mini-language used in r4Params:
//
//	seg(.seg)*:Type                 elements from the resource root, leaf datatype
//	seg(.seg)*[x]:T1|T2             choice element: seg+T1, seg+T2 ...
//	seg(.seg)*:Reference(Patient)   only references to that resource type
//
// Arrays are flattened at every step.
const pathSyntax = "a.b:Type | a.b[x]:T1|T2 | a.b:Reference(Type)"

// path is a compiled extraction path.
type path struct {
	segs     []string // all but the leaf element are object members
	choice   []string // leaf is a choice: segs[last]+choice[i], datatype choice[i]
	dtype    string   // leaf datatype when not a choice
	restrict string   // for Reference: only this target type
}

func mustPath(s string) path {
	p, err := compilePath(s)
	if err != nil {
		panic(fmt.Sprintf("search: bad extraction path %q (want %s): %v", s, pathSyntax, err))
	}
	return p
}

func compilePath(s string) (path, error) {
	elems, dt, ok := strings.Cut(s, ":")
	if !ok || elems == "" || dt == "" {
		return path{}, fmt.Errorf("missing datatype")
	}
	var p path
	p.segs = strings.Split(elems, ".")
	for _, seg := range p.segs {
		if seg == "" {
			return path{}, fmt.Errorf("empty element")
		}
	}
	last := p.segs[len(p.segs)-1]
	if base, isChoice := strings.CutSuffix(last, "[x]"); isChoice {
		p.segs[len(p.segs)-1] = base
		p.choice = strings.Split(dt, "|")
		for _, t := range p.choice {
			if !knownDatatype(t) {
				return path{}, fmt.Errorf("unknown datatype %s", t)
			}
		}
		return p, nil
	}
	if rest, ok := strings.CutPrefix(dt, "Reference("); ok {
		target, ok := strings.CutSuffix(rest, ")")
		if !ok || target == "" {
			return path{}, fmt.Errorf("bad reference restriction")
		}
		p.dtype, p.restrict = "Reference", target
		return p, nil
	}
	if !knownDatatype(dt) {
		return path{}, fmt.Errorf("unknown datatype %s", dt)
	}
	p.dtype = dt
	return p, nil
}

func knownDatatype(t string) bool {
	switch t {
	case "CodeableConcept", "Coding", "Identifier", "code", "boolean", "string", "ContactPoint",
		"HumanName", "Address", "date", "dateTime", "instant", "Period", "Timing",
		"Quantity", "decimal", "integer", "Reference":
		return true
	}
	return false
}
