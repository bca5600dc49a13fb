package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart"
)

// Authenticator checks a request's bearer token for a tenant and returns
// its grant. *smart.Server implements it. Errors are *fhir.Error:
// KindUnauthorized for a missing or invalid token, KindInternal otherwise.
type Authenticator interface {
	Authenticate(r *http.Request, tenant string) (*smart.Grant, error)
}

var _ Authenticator = (*smart.Server)(nil)

// Action is what a resolver does with the data it asks the Policy about.
type Action uint8

// Actions, as the REST interaction each corresponds to.
const (
	// ActionRead is a resource by id: a root field by id, a reference
	// followed (observation.subject), an entity of _entities.
	ActionRead Action = iota + 1
	// ActionSearch is a list: patients, a patient's observations ...
	ActionSearch
	// ActionOperation is Observation/$lastn (Patient.lastN).
	ActionOperation
)

// Authorizer makes the Policy of one request from the caller's grant.
type Authorizer interface {
	// Policy returns the policy of g's caller in tenant. An error fails
	// the whole request (it is never a permit).
	Policy(ctx context.Context, tenant string, g *smart.Grant) (Policy, error)
}

// Policy is what the caller of one request may see. Every resolver that
// returns data goes through it: Search before a search runs, Filter on
// every resource before it is returned.
type Policy interface {
	// Search decides a search (or $lastn) before it runs. When the caller
	// may not run it at all it returns a *Denied; otherwise it narrows q
	// (ANDs parameters into it) and reports whether q then selects exactly
	// the resources the caller may see (when not, Filter drops the rest).
	// Other errors fail the field.
	Search(ctx context.Context, action Action, q *fhir.Query) (exact bool, err error)

	// Filter returns the resources of rs the caller may see, in order, and
	// a *Denied for each resource withheld. Errors fail the field.
	Filter(ctx context.Context, action Action, rs []*fhir.Resource) (kept []*fhir.Resource, withheld []*Denied, err error)
}

// Denied says that data was withheld from the caller, and why. It is the
// error a resolver returns for a resource or search it may not see; the
// error presenter shows Type, Reason and the code (CONSENT_DENIED or
// FORBIDDEN), never ID.
type Denied struct {
	Type   string // the resource type
	ID     string // the resource withheld, when one is; not shown to the client
	Reason string // a stable, PHI-free code (server/authz's Reason)
	// Consent is true when a patient's Consent (or the tenant's opt-in
	// consent model) withheld it; false for scopes and launch context.
	Consent bool
}

func (d *Denied) Error() string {
	return fmt.Sprintf("access to %s denied (%s)", d.Type, d.Reason)
}

// Code is the GraphQL error code of the denial.
func (d *Denied) Code() string {
	if d.Consent {
		return CodeConsentDenied
	}
	return CodeForbidden
}

// Decider is the part of *authz.Authorizer the adapter uses.
type Decider interface {
	Decide(ctx context.Context, req authz.Request) (*authz.Decision, error)
	Check(ctx context.Context, req authz.Request, res *fhir.Resource) error
	Filter(ctx context.Context, req authz.Request, rs []*fhir.Resource) ([]*fhir.Resource, error)
}

var _ Decider = (*authz.Authorizer)(nil)

// AuthzAuthorizer is the Authorizer over server/authz: the same decision
// function, with the same inputs, as the REST API's.
type AuthzAuthorizer struct {
	Decider Decider
	// Purpose is the purpose of use sent with every decision; nil: the
	// tenant policy's default.
	Purpose []authz.Coding
}

var _ Authorizer = AuthzAuthorizer{}

// Policy implements Authorizer.
func (a AuthzAuthorizer) Policy(_ context.Context, tenant string, g *smart.Grant) (Policy, error) {
	if a.Decider == nil {
		return nil, errors.New("graph: AuthzAuthorizer without a Decider")
	}
	if g == nil {
		return nil, fhir.Errorf(fhir.KindUnauthorized, "an access token is required")
	}
	return &authzPolicy{d: a.Decider, req: authz.Request{
		Tenant:          tenant,
		ClientID:        g.ClientID,
		FHIRUser:        g.FHIRUser,
		Scopes:          g.Scopes,
		LaunchPatient:   g.Patient,
		LaunchEncounter: g.Encounter,
		Purpose:         a.Purpose,
	}}, nil
}

// authzPolicy is one request's Policy over authz.
type authzPolicy struct {
	d   Decider
	req authz.Request // the principal part; Action, Type, TargetPatient set per call
}

var _ Policy = (*authzPolicy)(nil)

func authzAction(a Action) authz.Action {
	switch a {
	case ActionSearch:
		return authz.ActionSearch
	case ActionOperation:
		return authz.ActionOperation
	}
	return authz.ActionRead
}

func (p *authzPolicy) Search(ctx context.Context, action Action, q *fhir.Query) (bool, error) {
	req := p.req
	req.Action, req.Type, req.TargetPatient = authzAction(action), q.Type, authz.QueryPatient(q)
	d, err := p.d.Decide(ctx, req)
	if err != nil {
		return false, err
	}
	if !d.Permitted() {
		return false, denied(q.Type, "", string(d.Reason))
	}
	return d.Narrow(q), nil
}

func (p *authzPolicy) Filter(ctx context.Context, action Action, rs []*fhir.Resource) ([]*fhir.Resource, []*Denied, error) {
	if len(rs) == 0 {
		return rs, nil, nil
	}
	req := p.req
	req.Action = authzAction(action)
	kept, err := p.d.Filter(ctx, req, rs)
	if err != nil {
		return nil, nil, err
	}
	if len(kept) == len(rs) {
		return kept, nil, nil
	}
	// kept is rs in order with some left out: find them and ask why.
	var withheld []*Denied
	k := 0
	for _, r := range rs {
		if k < len(kept) && kept[k] == r {
			k++
			continue
		}
		reason := string(authz.ReasonScopeRestriction)
		if err := p.d.Check(ctx, req, r); err != nil {
			if !fhir.IsKind(err, fhir.KindForbidden) {
				return nil, nil, err
			}
			reason = reasonOf(err)
		}
		withheld = append(withheld, denied(r.Type, r.ID, reason))
	}
	return kept, withheld, nil
}

func denied(typ, id, reason string) *Denied {
	switch authz.Reason(reason) {
	case authz.ReasonConsentDeny, authz.ReasonConsentRequired:
		return &Denied{Type: typ, ID: id, Reason: reason, Consent: true}
	}
	return &Denied{Type: typ, ID: id, Reason: reason}
}

// knownReasons are the reasons reasonOf recognizes in authz's errors.
var knownReasons = []authz.Reason{
	authz.ReasonNoScope, authz.ReasonNoLaunchPatient, authz.ReasonNoUser, authz.ReasonPatientOutOfScope,
	authz.ReasonScopeRestriction, authz.ReasonConsentDeny, authz.ReasonConsentRequired, authz.ReasonUnreadableResource,
}

// reasonOf reads the Reason out of the KindForbidden error of authz's
// Check, whose message ends "(reason)". authz exports no typed denial yet;
// an unrecognized message counts as a scope restriction.
func reasonOf(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		for _, r := range knownReasons {
			if strings.HasSuffix(fe.Msg, "("+string(r)+")") {
				return string(r)
			}
		}
	}
	return string(authz.ReasonScopeRestriction)
}

// Open is the Authenticator and Authorizer of a server whose authorization
// is off (development only, as server/app's AuthOff): every request is
// served, as an anonymous caller who may see everything. Never use it where
// real patient data is served.
type Open struct{}

var (
	_ Authenticator = Open{}
	_ Authorizer    = Open{}
)

// Authenticate implements Authenticator: everyone is anonymous.
func (Open) Authenticate(_ *http.Request, tenant string) (*smart.Grant, error) {
	return &smart.Grant{Tenant: tenant, Subject: "anonymous"}, nil
}

// Policy implements Authorizer: everything is permitted.
func (Open) Policy(context.Context, string, *smart.Grant) (Policy, error) { return openPolicy{}, nil }

type openPolicy struct{}

func (openPolicy) Search(context.Context, Action, *fhir.Query) (bool, error) { return true, nil }

func (openPolicy) Filter(_ context.Context, _ Action, rs []*fhir.Resource) ([]*fhir.Resource, []*Denied, error) {
	return rs, nil, nil
}
