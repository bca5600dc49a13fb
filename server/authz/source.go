package authz

import (
	"context"
	"fmt"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// ConsentSource loads the Consents a decision evaluates.
type ConsentSource interface {
	// ActiveConsents returns the Consent resources of the patient (its id)
	// with status active, in tenant. Returning more (other statuses, other
	// patients) is safe: the decision checks status, patient and scope
	// itself. Errors are returned as they come; the decision then fails
	// (it never permits on an error).
	ActiveConsents(ctx context.Context, tenant, patient string) ([]*fhir.Resource, error)
}

// ConsentCounter is implemented by consent sources that can tell whether a
// tenant has any active Consent at all. In an opt-out tenant without one,
// decisions do not depend on the patient, which spares reading each
// resource's patient on every read.
type ConsentCounter interface {
	AnyActiveConsents(ctx context.Context, tenant string) (bool, error)
}

// StoreConsents is the ConsentSource on the resource store: the search
// Consent?patient=Patient/{id}&status=active.
type StoreConsents struct {
	Store fhir.Reader
}

var _ ConsentSource = StoreConsents{}

// consentPage is the page size of the Consent search; a patient with more
// Consents takes several pages.
const consentPage = 200

// ActiveConsents implements ConsentSource.
func (s StoreConsents) ActiveConsents(ctx context.Context, tenant, patient string) ([]*fhir.Resource, error) {
	var out []*fhir.Resource
	for offset := 0; ; offset += consentPage {
		q := &fhir.Query{
			Type: "Consent",
			Params: []fhir.Param{
				{Name: "patient", Type: fhir.ParamReference, Values: []fhir.Value{{RefType: "Patient", RefID: patient}}},
				{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "active"}}},
			},
			Count:  consentPage,
			Offset: offset,
		}
		res, err := s.Store.Search(ctx, tenant, q)
		if err != nil {
			return nil, fmt.Errorf("searching active consents: %w", err)
		}
		out = append(out, res.Resources...)
		if !res.HasMore {
			return out, nil
		}
	}
}

// AnyActiveConsents implements ConsentCounter: Consent?status=active&_count=1.
func (s StoreConsents) AnyActiveConsents(ctx context.Context, tenant string) (bool, error) {
	res, err := s.Store.Search(ctx, tenant, &fhir.Query{
		Type:   "Consent",
		Params: []fhir.Param{{Name: "status", Type: fhir.ParamToken, Values: []fhir.Value{{Code: "active"}}}},
		Count:  1,
	})
	if err != nil {
		return true, fmt.Errorf("searching active consents: %w", err)
	}
	return len(res.Resources) > 0, nil
}

var _ ConsentCounter = StoreConsents{}

// ConsentModel is what applies to a patient who has no Consent that says
// anything about a request.
type ConsentModel string

// Consent models.
const (
	// OptOut: data is shared unless a Consent denies it (the default).
	OptOut ConsentModel = "opt-out"
	// OptIn: data is shared only where a Consent permits it.
	OptIn ConsentModel = "opt-in"
)

// Policy is a tenant's authorization policy. A change must be followed by
// Authorizer.Invalidate for the tenant.
type Policy struct {
	ConsentModel ConsentModel
	// SystemBypassesConsent lets system/ scopes (backend services acting
	// for the organization, e.g. an EHR interface) see data regardless of
	// patients' Consents. Patient and user scopes never bypass.
	SystemBypassesConsent bool
	// DefaultPurpose is the purpose of use assumed when a request names
	// none (a Consent provision limited to purposes is matched against
	// it); empty: a purpose-limited permit does not apply and a
	// purpose-limited deny does.
	DefaultPurpose []Coding
}

// PolicySource gives each tenant's policy.
type PolicySource interface {
	Policy(ctx context.Context, tenant string) (Policy, error)
}

// StaticPolicies is a PolicySource from configuration: Tenants[tenant], or
// Default for a tenant not listed.
type StaticPolicies struct {
	Default Policy
	Tenants map[string]Policy
}

var _ PolicySource = StaticPolicies{}

// Policy implements PolicySource.
func (s StaticPolicies) Policy(_ context.Context, tenant string) (Policy, error) {
	if p, ok := s.Tenants[tenant]; ok {
		return p, nil
	}
	return s.Default, nil
}
