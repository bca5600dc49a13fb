package authz

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Code systems read in Consents (https://hl7.org/fhir/R4/consent.html).
const (
	sysConsentScope  = "http://terminology.hl7.org/CodeSystem/consentscope"
	sysConsentAction = "http://terminology.hl7.org/CodeSystem/consentaction"
	sysResourceTypes = "http://hl7.org/fhir/resource-types"
	sysActCode       = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// Provision types.
const (
	effPermit = "permit"
	effDeny   = "deny"
)

// The JSON of a Consent, as far as the decision reads it.
type (
	jsonCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	jsonConcept struct {
		Coding []jsonCoding `json:"coding"`
	}
	jsonRef struct {
		Reference string `json:"reference"`
	}
	jsonPeriod struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	jsonConsent struct {
		ResourceType string         `json:"resourceType"`
		Status       string         `json:"status"`
		Scope        jsonConcept    `json:"scope"`
		Patient      jsonRef        `json:"patient"`
		PolicyRule   *jsonConcept   `json:"policyRule"`
		Provision    *jsonProvision `json:"provision"`
	}
	jsonProvision struct {
		Type   string      `json:"type"`
		Period *jsonPeriod `json:"period"`
		Actor  []struct {
			Reference jsonRef `json:"reference"`
		} `json:"actor"`
		Action        []jsonConcept `json:"action"`
		SecurityLabel []jsonCoding  `json:"securityLabel"`
		Purpose       []jsonCoding  `json:"purpose"`
		Class         []jsonCoding  `json:"class"`
		Code          []jsonConcept `json:"code"`
		DataPeriod    *jsonPeriod   `json:"dataPeriod"`
		Data          []struct {
			Reference jsonRef `json:"reference"`
		} `json:"data"`
		Provision []jsonProvision `json:"provision"`
	}
)

// span is [Lo, Hi) in UTC; open ends are fhir.MinTime / fhir.MaxTime.
type span struct {
	Lo time.Time `json:"lo"`
	Hi time.Time `json:"hi"`
}

// parsePeriod reads a FHIR Period; ok is false when it has neither start
// nor end, or a date that does not parse (then the caller ignores it as a
// criterion that cannot be read — see rule.match).
func parsePeriod(p *jsonPeriod) (s span, ok, bad bool) {
	if p == nil || p.Start == "" && p.End == "" {
		return span{}, false, false
	}
	s = span{Lo: fhir.MinTime, Hi: fhir.MaxTime}
	if p.Start != "" {
		lo, _, ok := parseDate(p.Start)
		if !ok {
			return span{}, false, true
		}
		s.Lo = lo
	}
	if p.End != "" {
		_, hi, ok := parseDate(p.End)
		if !ok {
			return span{}, false, true
		}
		s.Hi = hi
	}
	return s, true, false
}

// parseDate reads a FHIR date or dateTime as the range it covers:
// "2024" covers the year, "2024-03-05T10:00:00Z" one second.
func parseDate(s string) (lo, hi time.Time, ok bool) {
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{time.RFC3339Nano, func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t.UTC(), l.step(t).UTC(), true
		}
	}
	return time.Time{}, time.Time{}, false
}

// rule is one Consent provision with its request-level criteria (period,
// actor, action, purpose) already evaluated for one request: only the data
// criteria remain, which depend on the resource. Nested provisions are
// exceptions to their parent.
type rule struct {
	Effect string `json:"e,omitempty"` // permit, deny or "" (the provision has no type)
	// Classes are the resource types the provision is limited to;
	// ClassUnknown says it also names classes in a system we cannot read.
	Classes      []string `json:"cl,omitempty"`
	ClassUnknown bool     `json:"clu,omitempty"`
	Codes        []Coding `json:"co,omitempty"`
	HasData      bool     `json:"dp,omitempty"` // DataPeriod is set
	DataPeriod   span     `json:"dps"`
	DataUnknown  bool     `json:"dpu,omitempty"` // a dataPeriod that does not parse
	Instances    []string `json:"in,omitempty"`  // "Type/id" of the data provisions
	Labels       []Coding `json:"sl,omitempty"`
	Children     []*rule  `json:"ch,omitempty"`
}

// hasDataCriteria reports whether the rule itself depends on the resource.
func (r *rule) hasDataCriteria() bool {
	return len(r.Classes) > 0 || r.ClassUnknown || len(r.Codes) > 0 || r.HasData || r.DataUnknown ||
		len(r.Instances) > 0 || len(r.Labels) > 0
}

// anyDataCriteria reports whether the rule or a descendant depends on the
// resource.
func (r *rule) anyDataCriteria() bool {
	if r.hasDataCriteria() {
		return true
	}
	for _, c := range r.Children {
		if c.anyDataCriteria() {
			return true
		}
	}
	return false
}

// tri is a three-valued match: a criterion we cannot evaluate is unknown.
type tri uint8

const (
	no tri = iota
	yes
	unknown
)

// settle turns a match into yes/no the conservative way: a criterion we
// cannot evaluate makes a deny provision apply (more is denied) and a
// permit — or untyped — provision not apply (less is permitted).
func settle(t tri, effect string) bool {
	if t == unknown {
		return effect == effDeny
	}
	return t == yes
}

// and combines criteria: no wins, then unknown.
func and(a, b tri) tri {
	if a == no || b == no {
		return no
	}
	if a == unknown || b == unknown {
		return unknown
	}
	return yes
}

// match evaluates the data criteria against a resource.
func (r *rule) match(it *facts) bool {
	m := yes
	if len(r.Classes) > 0 || r.ClassUnknown {
		c := no
		for _, t := range r.Classes {
			if t == it.typ {
				c = yes
			}
		}
		if c == no && r.ClassUnknown {
			c = unknown
		}
		m = and(m, c)
	}
	if len(r.Codes) > 0 {
		m = and(m, boolTri(codingsMeet(r.Codes, it.codes)))
	}
	if r.DataUnknown {
		m = and(m, unknown)
	}
	if r.HasData {
		switch {
		case !it.typeHasDate:
			// Data without a clinical time (a Patient, a Device) is not
			// what a dataPeriod controls.
			m = and(m, no)
		case !it.dated:
			m = and(m, unknown)
		case r.Effect == effDeny:
			// Any overlap with a denied period denies.
			m = and(m, boolTri(it.dates.Lo.Before(r.DataPeriod.Hi) && it.dates.Hi.After(r.DataPeriod.Lo)))
		default:
			// A permitted period must contain all of the data's time.
			m = and(m, boolTri(!it.dates.Lo.Before(r.DataPeriod.Lo) && !it.dates.Hi.After(r.DataPeriod.Hi)))
		}
	}
	if len(r.Instances) > 0 {
		c := no
		for _, ref := range r.Instances {
			if ref == it.typ+"/"+it.id {
				c = yes
			}
		}
		m = and(m, c)
	}
	if len(r.Labels) > 0 {
		m = and(m, boolTri(codingsMeet(r.Labels, it.labels())))
	}
	return settle(m, r.Effect)
}

func boolTri(b bool) tri {
	if b {
		return yes
	}
	return no
}

// codingsMeet reports whether a criterion coding matches one of the
// resource's: same code, and same system unless the criterion has none.
func codingsMeet(criteria, have []Coding) bool {
	for _, c := range criteria {
		for _, h := range have {
			if c.Code == h.Code && (c.System == "" || c.System == h.System) {
				return true
			}
		}
	}
	return false
}

// eval returns the rule's verdict on a resource: "" when it does not apply.
// Among nested provisions that apply, deny overrides permit, and either
// overrides the parent.
func (r *rule) eval(it *facts) string {
	if !r.match(it) {
		return ""
	}
	sawDeny, sawPermit := false, false
	for _, c := range r.Children {
		switch c.eval(it) {
		case effDeny:
			sawDeny = true
		case effPermit:
			sawPermit = true
		}
	}
	switch {
	case sawDeny:
		return effDeny
	case sawPermit:
		return effPermit
	}
	return r.Effect
}

// consentSet is the consent part of a decision for one patient: the
// resolved rule of each applicable Consent and what applies when none
// says anything.
type consentSet struct {
	Patient string  `json:"p"`
	Default string  `json:"d"` // permit or deny: the tenant's consent model
	Roots   []*rule `json:"r,omitempty"`
}

// allows combines the Consents for one resource: any deny wins, then any
// permit, then the tenant default.
func (cs *consentSet) allows(it *facts) bool {
	permit := false
	for _, r := range cs.Roots {
		switch r.eval(it) {
		case effDeny:
			return false
		case effPermit:
			permit = true
		}
	}
	return permit || cs.Default == effPermit
}

// reqContext is what request-level provision criteria are evaluated
// against.
type reqContext struct {
	now      time.Time
	actors   map[string]bool // normalized "Type/id" references standing for the requester
	purposes []Coding
	// expires is the earliest instant after now at which a provision period
	// starts or ends: the decision must not be cached beyond it.
	expires time.Time
}

// noteBoundary records a period boundary for the decision's expiry.
func (rc *reqContext) noteBoundary(t time.Time) {
	if t.After(rc.now) && (rc.expires.IsZero() || t.Before(rc.expires)) {
		rc.expires = t
	}
}

// normRef reduces a reference to "Type/id" (dropping a base URL and a
// _history part); "" when it has no such shape.
func normRef(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(strings.TrimRight(ref, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if !typePattern.MatchString(typ) || typ == "*" || !fhir.ValidID(id) {
		return ""
	}
	return typ + "/" + id
}

// applicable reports whether a Consent resource is an active
// patient-privacy consent of patient.
func (c *jsonConsent) applicable(patient string) bool {
	if c.ResourceType != "Consent" || c.Status != "active" || normRef(c.Patient.Reference) != "Patient/"+patient {
		return false
	}
	for _, cd := range c.Scope.Coding {
		if cd.Code == "patient-privacy" && (cd.System == "" || cd.System == sysConsentScope) {
			return true
		}
	}
	return false
}

// baseEffect is the effect of the base provision: its type, else what the
// policyRule says (OPTIN permits, OPTOUT denies), else "".
func (c *jsonConsent) baseEffect() string {
	if c.Provision != nil && c.Provision.Type != "" {
		return c.Provision.Type
	}
	if c.PolicyRule != nil {
		for _, cd := range c.PolicyRule.Coding {
			if cd.System == sysActCode || cd.System == "" {
				switch cd.Code {
				case "OPTIN":
					return effPermit
				case "OPTOUT":
					return effDeny
				}
			}
		}
	}
	return ""
}

// resolveConsent evaluates a Consent's request-level criteria; nil when
// it says nothing about this request.
func resolveConsent(c *jsonConsent, rc *reqContext) *rule {
	eff := c.baseEffect()
	if c.Provision == nil {
		if eff == "" {
			return nil
		}
		return &rule{Effect: eff}
	}
	p := *c.Provision
	p.Type = eff
	return resolveProvision(&p, rc)
}

// resolveProvision evaluates period, actor, action and purpose of a
// provision and of its nested ones; nil when the provision does not apply
// to the request.
func resolveProvision(p *jsonProvision, rc *reqContext) *rule {
	if p.Type != "" && p.Type != effPermit && p.Type != effDeny {
		// Not an R4 provision type: read nothing into it.
		return nil
	}
	m := yes
	if s, ok, bad := parsePeriod(p.Period); ok {
		rc.noteBoundary(s.Lo)
		rc.noteBoundary(s.Hi)
		m = and(m, boolTri(!rc.now.Before(s.Lo) && rc.now.Before(s.Hi)))
	} else if bad {
		m = and(m, unknown)
	}
	if len(p.Actor) > 0 {
		a := no
		for _, act := range p.Actor {
			if rc.actors[normRef(act.Reference.Reference)] {
				a = yes
			}
		}
		m = and(m, a)
	}
	if len(p.Action) > 0 {
		// Disclosure is the consentaction "access" (and "use").
		a := no
		for _, cc := range p.Action {
			for _, cd := range cc.Coding {
				switch {
				case cd.System != "" && cd.System != sysConsentAction:
					if a == no {
						a = unknown
					}
				case cd.Code == "access" || cd.Code == "use":
					a = yes
				}
			}
		}
		m = and(m, a)
	}
	if len(p.Purpose) > 0 {
		want := make([]Coding, len(p.Purpose))
		for i, cd := range p.Purpose {
			want[i] = Coding(cd)
		}
		switch {
		case len(rc.purposes) == 0:
			m = and(m, unknown)
		default:
			m = and(m, boolTri(codingsMeet(want, rc.purposes)))
		}
	}
	if !settle(m, p.Type) {
		return nil
	}
	r := &rule{Effect: p.Type}
	for _, cd := range p.Class {
		if cd.System == "" || cd.System == sysResourceTypes {
			r.Classes = append(r.Classes, cd.Code)
		} else {
			r.ClassUnknown = true
		}
	}
	for _, cc := range p.Code {
		for _, cd := range cc.Coding {
			if cd.Code != "" {
				r.Codes = append(r.Codes, Coding(cd))
			}
		}
	}
	if s, ok, bad := parsePeriod(p.DataPeriod); ok {
		r.HasData, r.DataPeriod = true, s
	} else if bad {
		r.DataUnknown = true
	}
	for _, d := range p.Data {
		// Every meaning (instance, related, dependents, authoredby) is
		// read as the instance itself.
		if ref := normRef(d.Reference.Reference); ref != "" {
			r.Instances = append(r.Instances, ref)
		}
	}
	for _, cd := range p.SecurityLabel {
		if cd.Code != "" {
			r.Labels = append(r.Labels, Coding(cd))
		}
	}
	for i := range p.Provision {
		if c := resolveProvision(&p.Provision[i], rc); c != nil {
			r.Children = append(r.Children, c)
		}
	}
	return r
}

// typeTraits says what a resource type has that data criteria look at.
type typeTraits struct {
	typ     string
	hasCode bool // the type has a "code" search parameter
	hasDate bool // the type has a "date" search parameter (its clinical time)
}

// specialize simplifies a rule for resources of one type: the class
// criterion is settled, and a code or dataPeriod criterion the type cannot
// meet removes the provision. nil when the rule can never apply.
func (r *rule) specialize(tt typeTraits) *rule {
	c := *r
	if len(c.Classes) > 0 || c.ClassUnknown {
		m := no
		for _, t := range c.Classes {
			if t == tt.typ {
				m = yes
			}
		}
		if m == no && c.ClassUnknown {
			m = unknown
		}
		if !settle(m, c.Effect) {
			return nil
		}
		c.Classes, c.ClassUnknown = nil, false
	}
	if len(c.Codes) > 0 && !tt.hasCode || c.HasData && !tt.hasDate {
		return nil
	}
	c.Children = nil
	for _, ch := range r.Children {
		if s := ch.specialize(tt); s != nil {
			c.Children = append(c.Children, s)
		}
	}
	return &c
}

// parseConsents reads and resolves the Consents of a patient for one
// request. Consents that are not active patient-privacy consents of the
// patient are skipped. A body that does not decode is an error: a Consent
// we cannot read might deny, so the decision fails rather than permit.
func parseConsents(resources []*fhir.Resource, patient string, rc *reqContext) ([]*rule, error) {
	var roots []*rule
	for _, res := range resources {
		if res == nil || res.Deleted {
			continue
		}
		var c jsonConsent
		if err := json.Unmarshal(res.Body, &c); err != nil {
			return nil, fmt.Errorf("decoding Consent/%s: %w", res.ID, err)
		}
		if !c.applicable(patient) {
			continue
		}
		if r := resolveConsent(&c, rc); r != nil {
			roots = append(roots, r)
		}
	}
	return roots, nil
}

// mayPermit reports whether the rule or a nested one permits.
func (r *rule) mayPermit() bool {
	if r.Effect == effPermit {
		return true
	}
	for _, c := range r.Children {
		if c.mayPermit() {
			return true
		}
	}
	return false
}

// mayDeny reports whether the rule or a nested one denies.
func (r *rule) mayDeny() bool {
	if r.Effect == effDeny {
		return true
	}
	for _, c := range r.Children {
		if c.mayDeny() {
			return true
		}
	}
	return false
}

// alwaysDenies reports whether a root rule without data criteria denies
// every resource: a nested deny with no criterion of its own, or a deny
// with no permit anywhere below.
func (r *rule) alwaysDenies() bool {
	if r.hasDataCriteria() {
		return false
	}
	for _, c := range r.Children {
		if c.Effect == effDeny && len(c.Children) == 0 && !c.hasDataCriteria() {
			return true
		}
	}
	if r.Effect != effDeny {
		return false
	}
	for _, c := range r.Children {
		if c.mayPermit() {
			return false
		}
	}
	return true
}

// constant reports whether the consents give the same verdict for every
// resource of the decision's type, and which.
func (cs *consentSet) constant() (effect string, ok bool) {
	canPermit := cs.Default == effPermit
	anyData := false
	for _, r := range cs.Roots {
		if r.alwaysDenies() {
			return effDeny, true
		}
		canPermit = canPermit || r.mayPermit()
		anyData = anyData || r.anyDataCriteria()
	}
	if !canPermit {
		return effDeny, true
	}
	if anyData {
		return "", false
	}
	if cs.allows(&facts{}) {
		return effPermit, true
	}
	return effDeny, true
}

// denyReason says why the consents deny everything: an explicit denial,
// or (opt-in) the absence of a permit.
func (cs *consentSet) denyReason() Reason {
	for _, r := range cs.Roots {
		if r.mayDeny() {
			return ReasonConsentDeny
		}
	}
	if cs.Default == effDeny {
		return ReasonConsentRequired
	}
	return ReasonConsentDeny
}
