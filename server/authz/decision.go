package authz

import (
	"encoding/json"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Decision is the outcome of Authorizer.Decide. It is immutable and shared
// (the cache hands the same value to many requests): callers only read it.
//
// A Deny carries a Reason. A Permit lets everything the request asks for
// through. A PermitNarrowed lets only part through: a search must AND the
// decision's parameters into its query (Narrow), and every resource that
// leaves the server — read, search match, _include/_revinclude target,
// history version, $lastn result, transaction entry — must pass Check or
// Filter. Narrow alone is never enough: it is the fast path, Check is the
// rule.
type Decision struct {
	Effect Effect
	Reason Reason

	typ        string
	grants     []grant
	consent    *consentSet // the consents of one patient; nil when none apply or all permit
	perPatient bool        // consent applies but the patient is not known yet: Check decides per resource
	params     []fhir.Param
	exact      bool
	patient    string    // the one patient every grant is confined to, if any
	expires    time.Time // a Consent period starts or ends then; zero: no such limit
}

// grant is one way the scopes permit the request. A resource is permitted
// by a grant when it lies in Patient's compartment (when set), meets Params
// (when set), and — unless Bypass — the consent allows it.
type grant struct {
	Context Context      `json:"x"`
	Patient string       `json:"p,omitempty"`
	Params  []fhir.Param `json:"q,omitempty"`
	// Granular marks a granular scope on a decision without a resource
	// type (system-level search): its parameters depend on each
	// resource's type, so Check decides per type.
	Granular bool `json:"g,omitempty"`
	Bypass   bool `json:"b,omitempty"` // consent does not apply (a system scope, by tenant policy)
}

// Permitted reports whether anything is permitted.
func (d *Decision) Permitted() bool { return d.Effect != Deny }

// Patient returns the patient id the permission is confined to (the
// launch patient of patient/ scopes), or "".
func (d *Decision) Patient() string { return d.patient }

// Err returns nil for a permit, and for a deny the *fhir.Error the client
// sees: KindForbidden with the reason code (no patient data).
func (d *Decision) Err() error {
	if d.Permitted() {
		return nil
	}
	return fhir.Errorf(fhir.KindForbidden, "access denied (%s)", d.Reason)
}

// Narrow ANDs the decision's narrowing into a search on its resource type
// and reports whether the query then selects exactly the permitted
// resources. When it does not (scopes or consents the query language cannot
// say, a user-level search across patients with consents, resources with
// several clinical times), the results are a superset: Filter must drop
// the rest, and totals and page sizes are then approximate. Results must be
// filtered either way. A query of another type is left alone (exact false).
func (d *Decision) Narrow(q *fhir.Query) (exact bool) {
	if q.Type != d.typ || !d.Permitted() {
		return false
	}
	q.Params = append(q.Params, d.params...)
	return d.exact
}

// deny returns a Deny decision.
func deny(typ string, r Reason) *Decision {
	return &Decision{Effect: Deny, Reason: r, typ: typ}
}

// allows checks one resource of the decision's type against the grants and
// the consent. The caller has made sure the consent, when one applies, is
// the consent of the resource's patient (Check does).
func (d *Decision) allows(it *facts) (bool, Reason) {
	if !d.Permitted() {
		return false, d.Reason
	}
	reason := ReasonScopeRestriction
	for _, g := range d.grants {
		if g.Patient != "" && !it.within(g.Patient) {
			continue
		}
		if len(g.Params) > 0 && !it.matchParams(g.Params) {
			continue
		}
		if !g.Bypass && d.consent != nil && !d.consent.allows(it) {
			reason = ReasonConsentDeny
			continue
		}
		return true, ReasonPermit
	}
	return false, reason
}

// finish computes the narrowing of a permit: the query parameters, whether
// they are exact, and whether anything is narrowed at all.
func (d *Decision) finish(tt typeTraits, compartment bool, mk paramMaker) {
	d.exact = true
	narrowed := d.perPatient || d.consent != nil
	if d.perPatient {
		d.exact = false
	}

	// Patient compartment.
	d.patient = d.grants[0].Patient
	for _, g := range d.grants[1:] {
		if g.Patient != d.patient {
			d.patient = ""
		}
	}
	for _, g := range d.grants {
		if g.Patient != "" {
			narrowed = true
			if d.patient == "" {
				d.exact = false // some grants confined, some not
			}
		}
	}
	if d.patient != "" && compartment {
		if p, ok := patientParam(d.typ, d.patient, mk); ok {
			d.params = append(d.params, p)
		} else {
			d.exact = false
		}
	}

	// Granular scopes.
	ps, exact, restricted := grantParams(d.grants)
	d.params = append(d.params, ps...)
	d.exact = d.exact && exact
	narrowed = narrowed || restricted

	// Consent.
	if d.consent != nil {
		bypass := false
		for _, g := range d.grants {
			bypass = bypass || g.Bypass
		}
		if bypass {
			// Some grants ignore consent: the query cannot say "consent
			// applies only under those": leave it to Check.
			d.exact = false
		} else {
			cps, cexact := d.consent.params(tt, mk)
			d.params = append(d.params, cps...)
			d.exact = d.exact && cexact
		}
	}
	if narrowed {
		d.Effect, d.Reason = PermitNarrowed, ReasonPermit
	} else {
		d.Effect, d.Reason = Permit, ReasonPermit
	}
}

// paramMaker returns a search parameter of the decision's type without
// values, as the registry's parser builds it for name[:modifier] — so that
// it carries whatever else the store needs to run it; ok false when the
// type has no such parameter.
type paramMaker func(name, modifier string) (fhir.Param, bool)

// patientParam confines a search to one patient's compartment.
func patientParam(typ, patient string, mk paramMaker) (fhir.Param, bool) {
	if typ == "Patient" {
		p, ok := mk("_id", "")
		p.Values = []fhir.Value{{Code: patient}}
		return p, ok
	}
	p, ok := mk(compartmentParam, "")
	p.Values = []fhir.Value{{RefType: "Patient", RefID: patient}}
	return p, ok
}

// grantParams turns the granular restrictions of the grants into search
// parameters. One restricted grant gives its parameters exactly; several
// that each restrict the same single parameter (the usual
// category=a and category=b) give one parameter with their values ORed.
// Anything else — a union the AND-of-ORs query cannot say — gives no
// parameters and exact false. restricted reports that a granular restriction
// applies at all.
func grantParams(grants []grant) (ps []fhir.Param, exact, restricted bool) {
	for _, g := range grants {
		if len(g.Params) == 0 && !g.Granular {
			// An unrestricted grant: granular ones are then alternatives the
			// query need not narrow to (simplify dropped the ones it subsumes).
			for _, h := range grants {
				if len(h.Params) > 0 || h.Granular {
					return nil, false, true
				}
			}
			return nil, true, false
		}
	}
	for _, g := range grants {
		if g.Granular {
			return nil, false, true
		}
	}
	if len(grants) == 1 {
		return grants[0].Params, true, true
	}
	first := grants[0].Params
	merged := fhir.Param{}
	for _, g := range grants {
		if len(g.Params) != 1 || g.Params[0].Name != first[0].Name || g.Params[0].Modifier != "" || g.Patient != grants[0].Patient {
			return nil, false, true
		}
		if merged.Name == "" {
			merged = fhir.Param{Name: first[0].Name, Type: first[0].Type}
		}
		merged.Values = append(merged.Values, g.Params[0].Values...)
	}
	return []fhir.Param{merged}, true, true
}

// simplify drops grants another one subsumes: an unrestricted grant covers
// every grant confined to the same patient (or to any, when it is not
// confined) that bypasses consent no more than it does.
func simplify(grants []grant) []grant {
	out := grants[:0:0]
	for i, g := range grants {
		subsumed := false
		for j, h := range grants {
			if i == j || len(h.Params) > 0 || h.Granular {
				continue
			}
			if (h.Patient == "" || h.Patient == g.Patient) && (h.Bypass || !g.Bypass) {
				// h covers g; of two identical grants keep the first.
				if len(g.Params) > 0 || g.Granular || h.Patient != g.Patient || h.Bypass != g.Bypass || j < i {
					subsumed = true
					break
				}
			}
		}
		if !subsumed {
			out = append(out, g)
		}
	}
	return out
}

// params turns the consent rules into search parameters for one resource
// type, and reports whether they are exact. The shapes it can say: a
// Consent that permits by default with nested denials of codes or of a
// data period (code:not=…, date=eb…,sa…), and one that denies by default
// with nested permits of codes (code=…). Other shapes add nothing (exact
// false): Check decides.
func (cs *consentSet) params(tt typeTraits, mk paramMaker) ([]fhir.Param, bool) {
	var ps []fhir.Param
	exact := true
	orSatisfied := cs.Default == effPermit
	orUnknown := false
	var orLeaves []*rule
	for _, r := range cs.Roots {
		if r.hasDataCriteria() {
			exact, orUnknown = false, true
			continue
		}
		var permits []*rule
		complexPermit := false
		for _, c := range r.Children {
			if len(c.Children) > 0 || c.Effect == "" {
				exact = false
				complexPermit = true
				continue
			}
			if c.Effect == effPermit {
				permits = append(permits, c)
				continue
			}
			dps, ok := denyParams(c, tt, mk)
			ps = append(ps, dps...)
			exact = exact && ok
		}
		switch r.Effect {
		case effPermit:
			orSatisfied = true
		case effDeny:
			orSatisfied = true // when this root lets a resource through, a permit did
			if complexPermit {
				continue
			}
			p, ok := orParam(permits, mk)
			if p != nil {
				ps = append(ps, *p)
			}
			exact = exact && ok
		default:
			orLeaves = append(orLeaves, permits...)
			orUnknown = orUnknown || complexPermit
		}
	}
	if !orSatisfied {
		if orUnknown {
			exact = false
		} else {
			p, ok := orParam(orLeaves, mk)
			if p != nil {
				ps = append(ps, *p)
			}
			exact = exact && ok
		}
	}
	return ps, exact
}

// denyParams says "not this" for a nested deny with one kind of data
// criterion; ok false when it cannot.
func denyParams(r *rule, tt typeTraits, mk paramMaker) ([]fhir.Param, bool) {
	switch {
	case len(r.Codes) > 0 && onlyCodes(r) && tt.hasCode:
		var ps []fhir.Param
		for _, c := range r.Codes {
			p, ok := mk("code", "not")
			if !ok {
				return nil, false
			}
			p.Values = []fhir.Value{{System: c.System, HasSystem: c.System != "", Code: c.Code}}
			ps = append(ps, p)
		}
		return ps, true
	case r.HasData && onlyDataPeriod(r) && tt.hasDate:
		// Entirely before or entirely after the period; a resource with no
		// clinical time has no date row and is left out, as match denies it.
		p, ok := mk("date", "")
		if !ok {
			return nil, false
		}
		if r.DataPeriod.Lo.After(fhir.MinTime) {
			p.Values = append(p.Values, fhir.Value{Prefix: fhir.PrefixEb, Lo: r.DataPeriod.Lo, Hi: r.DataPeriod.Lo})
		}
		if r.DataPeriod.Hi.Before(fhir.MaxTime) {
			p.Values = append(p.Values, fhir.Value{Prefix: fhir.PrefixSa, Lo: r.DataPeriod.Hi, Hi: r.DataPeriod.Hi})
		}
		if len(p.Values) == 0 {
			return nil, false
		}
		return []fhir.Param{p}, true
	}
	return nil, false
}

// orParam says "one of these" for nested permits that each name codes
// only; nil and ok false when they do not (nil and ok true when one of them
// has no criterion: everything is permitted).
func orParam(permits []*rule, mk paramMaker) (*fhir.Param, bool) {
	if len(permits) == 0 {
		// Nothing can be permitted: the caller found it constant already
		// (see consentSet.constant); say nothing more.
		return nil, false
	}
	p, ok := mk("code", "")
	if !ok {
		return nil, false
	}
	for _, r := range permits {
		if !r.hasDataCriteria() {
			return nil, true
		}
		if !onlyCodes(r) {
			return nil, false
		}
		for _, c := range r.Codes {
			p.Values = append(p.Values, fhir.Value{System: c.System, HasSystem: c.System != "", Code: c.Code})
		}
	}
	return &p, true
}

func onlyCodes(r *rule) bool {
	return len(r.Codes) > 0 && len(r.Classes) == 0 && !r.ClassUnknown && !r.HasData && !r.DataUnknown &&
		len(r.Instances) == 0 && len(r.Labels) == 0
}

func onlyDataPeriod(r *rule) bool {
	return r.HasData && len(r.Codes) == 0 && len(r.Classes) == 0 && !r.ClassUnknown && !r.DataUnknown &&
		len(r.Instances) == 0 && len(r.Labels) == 0
}

// decisionWire is a Decision as the L2 cache stores it.
type decisionWire struct {
	Effect     Effect       `json:"e"`
	Reason     Reason       `json:"r"`
	Type       string       `json:"t,omitempty"`
	Grants     []grant      `json:"g,omitempty"`
	Consent    *consentSet  `json:"c,omitempty"`
	PerPatient bool         `json:"pp,omitempty"`
	Params     []fhir.Param `json:"q,omitempty"`
	Exact      bool         `json:"x,omitempty"`
	Patient    string       `json:"p,omitempty"`
	Expires    time.Time    `json:"exp"`
}

func (d *Decision) marshal() ([]byte, error) {
	return json.Marshal(decisionWire{
		Effect: d.Effect, Reason: d.Reason, Type: d.typ, Grants: d.grants, Consent: d.consent,
		PerPatient: d.perPatient, Params: d.params, Exact: d.exact, Patient: d.patient, Expires: d.expires,
	})
}

func unmarshalDecision(b []byte) (*Decision, error) {
	var w decisionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &Decision{
		Effect: w.Effect, Reason: w.Reason, typ: w.Type, grants: w.Grants, consent: w.Consent,
		perPatient: w.PerPatient, params: w.Params, exact: w.Exact, patient: w.Patient, expires: w.Expires,
	}, nil
}
