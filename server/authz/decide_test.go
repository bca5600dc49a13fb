package authz

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

func pToken(name string, modifier string, codes ...Coding) fhir.Param {
	p := fhir.Param{Name: name, Type: fhir.ParamToken, Modifier: modifier}
	for _, c := range codes {
		p.Values = append(p.Values, fhir.Value{System: c.System, HasSystem: c.System != "", Code: c.Code})
	}
	return p
}

const vitalScope = "patient/Observation.rs?category=" + obsCat + "|vital-signs"

// Provisions used in the table.
const (
	optOut          = `{"type":"deny"}`
	optIn           = `{"type":"permit"}`
	denyHIV         = `{"type":"permit","provision":[{"type":"deny","code":[{"coding":[{"system":"http://loinc.org","code":"75622-1"}]}]}]}`
	deny2019        = `{"type":"permit","provision":[{"type":"deny","dataPeriod":{"start":"2019-01-01","end":"2019-12-31"}}]}`
	permitOrgOnly   = `{"type":"deny","provision":[{"type":"permit","actor":[{"role":{"coding":[{"code":"PRCP"}]},"reference":{"reference":"Organization/o1"}}]}]}`
	denyResearch    = `{"type":"permit","provision":[{"type":"deny","purpose":[{"system":"` + purposeSys + `","code":"HRESCH"}]}]}`
	permitVitalCode = `{"type":"deny","provision":[{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},{"coding":[{"system":"http://loinc.org","code":"8310-5"}]}]}]}`
	// Nested three deep: nothing is shared, except Observations, except HIV tests.
	nested = `{"type":"deny","provision":[{"type":"permit","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
		"provision":[{"type":"deny","code":[{"coding":[{"system":"http://loinc.org","code":"75622-1"}]}]}]}]}`
	denyObservations = `{"type":"permit","provision":[{"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]}]}`
	expiredDeny      = `{"type":"deny","period":{"start":"2020-01-01","end":"2021-01-01"}}`
	futureDeny       = `{"type":"deny","period":{"start":"2025-07-01"}}`
	denyLabel        = `{"type":"permit","provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}]}`
	denyInstance     = `{"type":"permit","provision":[{"type":"deny","data":[{"meaning":"instance","reference":{"reference":"Observation/glucose"}}]}]}`
)

func TestDecide(t *testing.T) {
	patientScope := Request{Tenant: tenant, ClientID: "app", Scopes: []string{"launch/patient", "patient/Observation.rs", "patient/Patient.r"},
		LaunchPatient: "p1", Action: ActionSearch, Type: "Observation"}
	userScope := Request{Tenant: tenant, ClientID: "app", FHIRUser: "Practitioner/dr1", Scopes: []string{"openid", "fhirUser", "user/*.cruds"},
		Action: ActionSearch, Type: "Observation"}
	systemScope := Request{Tenant: tenant, ClientID: "backend", Scopes: []string{"system/Observation.rs", "system/Patient.rs"},
		Action: ActionSearch, Type: "Observation"}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	targetP1 := func(r *Request) { r.TargetPatient = "p1" }

	type resCheck struct {
		res  *fhir.Resource
		want Reason // ReasonPermit or why not
	}
	tests := []struct {
		name       string
		req        Request
		consents   []*fhir.Resource
		policy     Policy
		wantEffect Effect
		wantReason Reason
		wantQuery  string // the narrowing, as a query string the registry parses
		wantExact  bool
		checks     []resCheck
	}{
		// --- scopes ---
		{
			name: "patient scope confines search to the launch patient",
			req:  patientScope, wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsP2, ReasonPatientOutOfScope}, {obsDevice, ReasonScopeRestriction}},
		},
		{
			name:       "patient scope reads its own Patient only",
			req:        with(patientScope, func(r *Request) { r.Type, r.Action = "Patient", ActionRead }),
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "_id=p1", wantExact: true,
			checks: []resCheck{{patientRes("p1"), ReasonPermit}, {patientRes("p2"), ReasonPatientOutOfScope}},
		},
		{
			name:       "patient scope on another patient is denied",
			req:        with(patientScope, func(r *Request) { r.TargetPatient = "p2" }),
			wantEffect: Deny, wantReason: ReasonPatientOutOfScope,
		},
		{
			name:       "patient scope without a launch patient is denied",
			req:        with(patientScope, func(r *Request) { r.LaunchPatient = "" }),
			wantEffect: Deny, wantReason: ReasonNoLaunchPatient,
		},
		{
			name:       "read permission does not allow search",
			req:        with(patientScope, func(r *Request) { r.Type = "Patient" }),
			wantEffect: Deny, wantReason: ReasonNoScope,
		},
		{
			name:       "no scope for the type",
			req:        with(patientScope, func(r *Request) { r.Type = "Encounter"; r.Action = ActionRead }),
			wantEffect: Deny, wantReason: ReasonNoScope,
		},
		{
			name:       "v1 read scope allows search, not create",
			req:        with(patientScope, func(r *Request) { r.Scopes = []string{"patient/Observation.read"}; r.Action = ActionCreate }),
			wantEffect: Deny, wantReason: ReasonNoScope,
		},
		{
			name: "v1 write scope allows create in the patient's compartment",
			req:  with(patientScope, func(r *Request) { r.Scopes = []string{"patient/*.write"}; r.Action = ActionCreate }),
			// Consent does not govern writes: the opt-out below changes nothing.
			consents:   []*fhir.Resource{consent("c1", "p1", optOut)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsP2, ReasonPatientOutOfScope}},
		},
		{
			name: "user scope with a known patient and no consent is a plain permit",
			req:  with(userScope, targetP1), wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsP2, ReasonPermit}},
		},
		{
			name: "user scope across patients leaves consent to the per-resource check",
			req:  userScope, consents: []*fhir.Resource{consent("c2", "p2", optOut)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantExact: false,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsP2, ReasonConsentDeny}, {obsDevice, ReasonPermit}},
		},
		{
			name:       "user scope without a signed-in user is denied",
			req:        with(userScope, func(r *Request) { r.FHIRUser = "" }),
			wantEffect: Deny, wantReason: ReasonNoUser,
		},
		{
			name: "system scope bypasses consent when the tenant says so",
			req:  systemScope, policy: Policy{SystemBypassesConsent: true},
			consents:   []*fhir.Resource{consent("c1", "p1", optOut)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsP2, ReasonPermit}},
		},
		{
			name: "system scope honours consent by default",
			req:  systemScope, consents: []*fhir.Resource{consent("c1", "p1", optOut)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantExact: false,
			checks: []resCheck{{obsVital, ReasonConsentDeny}, {obsP2, ReasonPermit}},
		},
		{
			name:       "granular category narrows to vital signs",
			req:        with(patientScope, func(r *Request) { r.Scopes = []string{vitalScope} }),
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&category=" + obsCat + "|vital-signs", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonScopeRestriction}, {obsP2, ReasonPatientOutOfScope}},
		},
		{
			name: "two granular categories are ORed",
			req: with(patientScope, func(r *Request) {
				r.Scopes = []string{vitalScope, "patient/Observation.rs?category=" + obsCat + "|laboratory"}
			}),
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&category=" + obsCat + "|vital-signs," + obsCat + "|laboratory", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonPermit}},
		},
		{
			name: "granular scopes on different parameters are a union the query cannot say",
			req: with(patientScope, func(r *Request) {
				r.Scopes = []string{vitalScope, "patient/Observation.rs?code=http://loinc.org|2345-7"}
			}),
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: false,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonPermit}, {obsHIV, ReasonScopeRestriction}},
		},
		{
			name: "an unrestricted scope makes a granular one moot",
			req: with(patientScope, func(r *Request) {
				r.Scopes = []string{vitalScope, "patient/Observation.rs"}
			}),
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
			checks: []resCheck{{obsGlucose, ReasonPermit}},
		},
		{
			name: "a granular parameter the type lacks grants nothing",
			req: with(patientScope, func(r *Request) {
				r.Scopes = []string{"patient/Observation.rs?gender=female"}
			}),
			wantEffect: Deny, wantReason: ReasonNoScope,
		},
		// --- consent ---
		{
			name: "opt-out consent denies", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", optOut)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "policyRule OPTOUT without provision denies", req: with(patientScope, targetP1),
			consents: []*fhir.Resource{consent("c1", "p1", "",
				`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]}`)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "opt-in tenant without consent denies", req: with(patientScope, targetP1),
			policy: Policy{ConsentModel: OptIn}, wantEffect: Deny, wantReason: ReasonConsentRequired,
		},
		{
			name: "opt-in tenant with a permitting consent permits", req: with(patientScope, targetP1),
			policy: Policy{ConsentModel: OptIn}, consents: []*fhir.Resource{consent("c1", "p1", optIn)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
		},
		{
			name: "inactive, non-privacy and other patients' consents are ignored", req: with(patientScope, targetP1),
			consents: []*fhir.Resource{
				inactive(consent("c1", "p1", optOut)),
				treatment(consent("c2", "p1", optOut)),
				consent("c3", "p2", optOut),
			},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
		},
		{
			name: "nested deny of a code", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", denyHIV)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&code:not=http://loinc.org|75622-1", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsHIV, ReasonConsentDeny}},
		},
		{
			name: "nested deny of a data period", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", deny2019)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&date=eb2019-01-01,sa2019-12-31",
			wantExact: true,
			// Undated data cannot be shown to be outside the period.
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonConsentDeny}, {obsUndated, ReasonConsentDeny}},
		},
		{
			name: "a data period does not reach the Patient resource", req: with(patientScope, func(r *Request) {
				r.Type, r.Action, r.TargetPatient = "Patient", ActionRead, "p1"
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", deny2019)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "_id=p1", wantExact: true,
			checks: []resCheck{{patientRes("p1"), ReasonPermit}},
		},
		{
			name: "nested permit for an actor: the named organization", req: with(userScope, func(r *Request) {
				r.TargetPatient, r.Actors = "p1", []string{"Organization/o1"}
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", permitOrgOnly)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
		},
		{
			name: "nested permit for an actor: anyone else", req: with(userScope, func(r *Request) {
				r.TargetPatient, r.Actors = "p1", []string{"Organization/o2"}
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", permitOrgOnly)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "actor matched by the fhirUser, absolute reference", req: with(userScope, func(r *Request) {
				r.TargetPatient, r.FHIRUser = "p1", "https://ehr.example/fhir/Organization/o1"
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", permitOrgOnly)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
		},
		{
			name: "purpose: research is denied", req: with(userScope, func(r *Request) {
				r.TargetPatient, r.Purpose = "p1", []Coding{{purposeSys, "HRESCH"}}
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", denyResearch)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "purpose: treatment is not", req: with(userScope, func(r *Request) {
				r.TargetPatient, r.Purpose = "p1", []Coding{{purposeSys, "TREAT"}}
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", denyResearch)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
		},
		{
			name: "purpose: the tenant default stands in", req: with(userScope, targetP1),
			policy:     Policy{DefaultPurpose: []Coding{{purposeSys, "TREAT"}}},
			consents:   []*fhir.Resource{consent("c1", "p1", denyResearch)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
		},
		{
			name: "purpose: unknown, so the deny applies", req: with(userScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", denyResearch)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "opt-out with nested permits of codes", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", permitVitalCode)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&code=http://loinc.org|8867-4,http://loinc.org|8310-5", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsUndated, ReasonPermit}, {obsGlucose, ReasonConsentDeny}},
		},
		{
			name: "nested three deep on Observation", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", nested)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: false,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonPermit}, {obsHIV, ReasonConsentDeny}},
		},
		{
			name: "nested three deep on Patient: the base deny", req: with(patientScope, func(r *Request) {
				r.Type, r.Action, r.TargetPatient = "Patient", ActionRead, "p1"
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", nested)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "a class deny removes the type", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", denyObservations)},
			wantEffect: Deny, wantReason: ReasonConsentDeny,
		},
		{
			name: "a class deny leaves other types", req: with(patientScope, func(r *Request) {
				r.Type, r.Action, r.TargetPatient = "Patient", ActionRead, "p1"
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", denyObservations)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "_id=p1", wantExact: true,
		},
		{
			name: "a provision whose period is over does not apply", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", expiredDeny)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
		},
		{
			name: "a provision whose period has not begun does not apply yet", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", futureDeny)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: true,
		},
		{
			name: "a security label deny is checked per resource", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", denyLabel)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: false,
			checks: []resCheck{{obsVital, ReasonPermit}, {restricted(obsGlucose), ReasonConsentDeny}},
		},
		{
			name: "a data instance deny is checked per resource", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", denyInstance)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit, wantQuery: "patient=Patient/p1", wantExact: false,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsGlucose, ReasonConsentDeny}},
		},
		{
			name: "two consents: any deny wins", req: with(patientScope, targetP1),
			consents:   []*fhir.Resource{consent("c1", "p1", optIn), consent("c2", "p1", denyHIV)},
			wantEffect: PermitNarrowed, wantReason: ReasonPermit,
			wantQuery: "patient=Patient/p1&code:not=http://loinc.org|75622-1", wantExact: true,
			checks: []resCheck{{obsVital, ReasonPermit}, {obsHIV, ReasonConsentDeny}},
		},
		{
			name: "non-compartment types are not narrowed by patient or consent",
			req: with(patientScope, func(r *Request) {
				r.Scopes, r.Type = []string{"patient/Organization.rs"}, "Organization"
			}),
			consents:   []*fhir.Resource{consent("c1", "p1", optOut)},
			wantEffect: Permit, wantReason: ReasonPermit, wantExact: true,
			checks: []resCheck{{organization("o1"), ReasonPermit}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthz(t, newMemConsents(tc.consents...), tc.policy, nil)
			ctx := context.Background()
			d, err := a.Decide(ctx, tc.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Effect != tc.wantEffect || d.Reason != tc.wantReason {
				t.Fatalf("Decide = %v (%s), want %v (%s)", d.Effect, d.Reason, tc.wantEffect, tc.wantReason)
			}
			if (d.Err() == nil) != d.Permitted() {
				t.Errorf("Err() = %v with Permitted() = %v", d.Err(), d.Permitted())
			}
			if d.Permitted() {
				q := &fhir.Query{Type: tc.req.Type}
				exact := d.Narrow(q)
				if diff := cmp.Diff(wantParams(t, tc.req.Type, tc.wantQuery), normDates(q.Params), sortParams); diff != "" {
					t.Errorf("Narrow params (-want +got):\n%s", diff)
				}
				if exact != tc.wantExact {
					t.Errorf("Narrow exact = %v, want %v", exact, tc.wantExact)
				}
			}
			for _, c := range tc.checks {
				if got := checkReason(t, a, tc.req, c.res); got != c.want {
					t.Errorf("Check(%s) = %s, want %s", c.res.Ref(), got, c.want)
				}
			}
		})
	}
}

// wantParams parses a query string with the registry the Authorizer uses.
func wantParams(t *testing.T, typ, query string) []fhir.Param {
	t.Helper()
	if query == "" {
		return nil
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := search.NewRegistry().Parse(typ, v, search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatalf("parsing want %q: %v", query, err)
	}
	return normDates(q.Params)
}

// normDates keeps of a date value only the bound its prefix compares (eb
// its start, sa its end), which is all a store reads of it.
func normDates(ps []fhir.Param) []fhir.Param {
	if len(ps) == 0 {
		return nil
	}
	out := make([]fhir.Param, len(ps))
	for i, p := range ps {
		out[i] = p
		if p.Type != fhir.ParamDate {
			continue
		}
		out[i].Values = append([]fhir.Value(nil), p.Values...)
		for j, v := range out[i].Values {
			switch v.Prefix {
			case fhir.PrefixEb:
				out[i].Values[j].Hi = v.Lo
			case fhir.PrefixSa:
				out[i].Values[j].Lo = v.Hi
			}
		}
	}
	return out
}

var sortParams = cmpopts.SortSlices(func(a, b fhir.Param) bool { return a.Name+":"+a.Modifier < b.Name+":"+b.Modifier })

// checkReason runs Check and returns ReasonPermit or the reason of the
// denial.
func checkReason(t *testing.T, a *Authorizer, req Request, res *fhir.Resource) Reason {
	t.Helper()
	err := a.Check(context.Background(), req, res)
	if err == nil {
		return ReasonPermit
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.KindForbidden {
		t.Fatalf("Check(%s): %v", res.Ref(), err)
	}
	return Reason(strings.TrimSuffix(strings.TrimPrefix(fe.Msg, "access denied ("), ")"))
}

func inactive(r *fhir.Resource) *fhir.Resource {
	r.Body = []byte(strings.Replace(string(r.Body), `"status":"active"`, `"status":"inactive"`, 1))
	return r
}

func treatment(r *fhir.Resource) *fhir.Resource {
	r.Body = []byte(strings.Replace(string(r.Body), `"code":"patient-privacy"`, `"code":"treatment"`, 1))
	return r
}

// restricted returns a copy of r labelled confidentiality R.
func restricted(r *fhir.Resource) *fhir.Resource {
	c := *r
	c.Body = []byte(strings.Replace(string(r.Body), `"status":"final"`,
		`"status":"final","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}`, 1))
	return &c
}
