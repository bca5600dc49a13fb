package fhir

// Derived describes a search parameter that is exactly other parameters of
// the same resource type, possibly restricted to fewer reference targets,
// so that its values need no index entries of their own: a store searches
// the index entries of From (restricted to Targets, for a reference) and
// search.Registry does not extract it. Observation is the hot case: every
// reading saves three index rows (subject twice, code twice).
type Derived struct {
	From    []string // the parameters whose entries hold this one's values
	Targets []string // for a reference: the only target types that count; nil for all of From's
}

var derived = map[string]map[string]Derived{
	"Observation": {
		// Observation.subject.where(resolve() is Patient)
		"patient": {From: []string{"subject"}, Targets: []string{"Patient"}},
		// Observation.code | Observation.component.code
		"combo-code": {From: []string{"code", "component-code"}},
	},
	// Encounter.subject.where(resolve() is Patient)
	"Encounter": {"patient": {From: []string{"subject"}, Targets: []string{"Patient"}}},
	// DeviceUseStatement.subject: the same expression as subject
	"DeviceUseStatement": {"patient": {From: []string{"subject"}}},
	// AuditEvent.agent.who.where(resolve() is Patient) |
	// AuditEvent.entity.what.where(resolve() is Patient): every audited
	// write and read records an AuditEvent, so a row less each counts.
	"AuditEvent": {"patient": {From: []string{"agent", "entity"}, Targets: []string{"Patient"}}},
}

// DerivedParam returns how parameter code of typ is derived from others;
// ok false when it is indexed itself.
func DerivedParam(typ, code string) (d Derived, ok bool) {
	d, ok = derived[typ][code]
	return d, ok
}

// IndexParams returns the parameters whose index entries a store searches
// for parameter code of typ: From when it is derived, else code itself.
func IndexParams(typ, code string) []string {
	if d, ok := derived[typ][code]; ok {
		return d.From
	}
	return []string{code}
}

// EachDerived calls fn for every derived parameter (for registries that
// check them against their definitions).
func EachDerived(fn func(typ, code string, d Derived)) {
	for typ, m := range derived {
		for code, d := range m {
			fn(typ, code, d)
		}
	}
}
