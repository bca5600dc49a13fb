package rest

import (
	"context"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart"
)

// Authorization (SMART App Launch 2.2 scopes × tenant policy × FHIR
// Consent). With Config.Authorizer set, every path that returns or changes
// data asks it — server/authz's one decision function — and applies what
// it says; no handler decides on its own:
//
//   - read, vread: Decide (read) before the store is touched, then Check
//     the resource;
//   - search, $lastn: Decide (search / operation) with the patient the
//     query names, AND the decision's narrowing into the query, Filter the
//     matches, Filter _include/_revinclude results as reads; the total is
//     left out when the narrowing is not exact;
//   - history: Decide (instance history, or type/system history), Filter
//     the versions;
//   - create: Check the new body; update: Check the current version and the
//     new body (update-as-create is a create); delete: Check the current
//     version; the search of a conditional create or update is a search,
//     and a match the caller may not see fails the request;
//   - batch and transaction entries: each by the rule of its interaction,
//     so a denied entry fails a transaction (403) and only itself in a
//     batch.
//
// A denial is a 403 OperationOutcome (issue code forbidden) whose details
// carry the stable reason code of authz (reasonSystem); no patient data.

// Authorizer is the policy decision point (*authz.Authorizer implements
// it). Decide returns the decision for a request before any data is read;
// Check decides one resource and returns a KindForbidden *fhir.Error when
// it may not be returned or written; Filter returns the resources of a
// list that may be returned. Other errors fail the request; no error is
// ever a permit.
type Authorizer interface {
	Decide(ctx context.Context, req authz.Request) (*authz.Decision, error)
	Check(ctx context.Context, req authz.Request, res *fhir.Resource) error
	Filter(ctx context.Context, req authz.Request, rs []*fhir.Resource) ([]*fhir.Resource, error)
}

// access is the authorization of one request: the caller as its token
// says, and the Authorizer. A nil *access (authorization off) permits
// everything; its methods are safe to call.
type access struct {
	az  Authorizer
	req authz.Request // the principal part; Action, Type and TargetPatient per call
}

// accessOf returns the request's access, nil when authorization is off.
// The grant comes from Config.Auth (smart.Server.Middleware); a route
// without it fails closed.
func (a *API) accessOf(c *echo.Context) (*access, error) {
	if a.az == nil {
		return nil, nil
	}
	g, ok := smart.GrantFrom(c.Request().Context())
	if !ok {
		return nil, fhir.Errorf(fhir.KindInternal, "no access token grant on an authorized route (Config.Auth missing)")
	}
	return &access{az: a.az, req: authz.Request{
		Tenant:          c.Param("tenant"),
		ClientID:        g.ClientID,
		FHIRUser:        g.FHIRUser,
		Scopes:          g.Scopes,
		LaunchPatient:   g.Patient,
		LaunchEncounter: g.Encounter,
	}}, nil
}

// decide asks for act on typ ("" for system level), confined to target
// when the request names one patient. A deny is returned as the error.
// A nil decision (authorization off) narrows nothing.
func (x *access) decide(ctx context.Context, act authz.Action, typ, target string) (*authz.Decision, error) {
	if x == nil {
		return nil, nil
	}
	r := x.req
	r.Action, r.Type, r.TargetPatient = act, typ, target
	d, err := x.az.Decide(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// check decides one resource for act.
func (x *access) check(ctx context.Context, act authz.Action, res *fhir.Resource) error {
	if x == nil {
		return nil
	}
	r := x.req
	r.Action = act
	return x.az.Check(ctx, r, res)
}

// filter keeps the resources of rs that act may return.
func (x *access) filter(ctx context.Context, act authz.Action, rs []*fhir.Resource) ([]*fhir.Resource, error) {
	if x == nil || len(rs) == 0 {
		return rs, nil
	}
	r := x.req
	r.Action = act
	return x.az.Filter(ctx, r, rs)
}

// narrow ANDs d's narrowing into q and reports whether q then selects
// exactly what may be returned (so that its total is true). A nil
// decision (authorization off) and a plain permit are exact.
func narrow(d *authz.Decision, q *fhir.Query) bool {
	if d == nil || d.Effect == authz.Permit {
		return true
	}
	return d.Narrow(q)
}

// unrestricted reports whether d lets everything through (nil: off).
func unrestricted(d *authz.Decision) bool { return d == nil || d.Effect == authz.Permit }

// authorizeWrite checks writing p as typ/id: a create (fresh, or no
// current version: update-as-create) needs create on the new body; an
// update needs update on the current version and on the new body, so that
// nothing is moved into or out of what the caller may write. rd reads the
// current version inside the write's transaction. A plain permit on the
// type covers every resource of it, so Check is skipped then.
func (x *access) authorizeWrite(ctx context.Context, rd fhir.Reader, tenant string, p *prepared, id string, fresh bool) error {
	if x == nil {
		return nil
	}
	act := authz.ActionCreate
	var cur *fhir.Resource
	if !fresh {
		var err error
		switch cur, err = rd.Read(ctx, tenant, p.typ, id); {
		case err == nil:
			act = authz.ActionUpdate
		case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
		default:
			return clientError(err, "reading the current version")
		}
	}
	d, err := x.decide(ctx, act, p.typ, "")
	if err != nil || d.Effect == authz.Permit {
		return err
	}
	if cur != nil {
		if err := x.check(ctx, act, cur); err != nil {
			return err
		}
	}
	return x.check(ctx, act, &fhir.Resource{Type: p.typ, ID: id, Body: p.body})
}

// authorizeDelete checks deleting typ/id: delete on the type, and on the
// current version when there is one.
func (x *access) authorizeDelete(ctx context.Context, rd fhir.Reader, tenant, typ, id string) error {
	if x == nil {
		return nil
	}
	d, err := x.decide(ctx, authz.ActionDelete, typ, "")
	if err != nil || d.Effect == authz.Permit {
		return err
	}
	cur, err := rd.Read(ctx, tenant, typ, id)
	switch {
	case err == nil:
		return x.check(ctx, authz.ActionDelete, cur)
	case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
		return nil
	default:
		return clientError(err, "reading the current version")
	}
}

// readChecked reads (vid 0) or vreads typ/id through rd, deciding read on
// the type before the store is touched and, unless that is a plain permit,
// on the resource after. When the resource is denied it is returned with
// the error, for the audit event to name its patient; never send it.
func (x *access) readChecked(ctx context.Context, rd fhir.Reader, tenant, typ, id string, vid int64) (*fhir.Resource, error) {
	d, err := x.decide(ctx, authz.ActionRead, typ, "")
	if err != nil {
		return nil, err
	}
	var res *fhir.Resource
	if vid > 0 {
		if res, err = rd.VRead(ctx, tenant, typ, id, vid); err != nil {
			return nil, clientError(err, "reading version")
		}
	} else if res, err = rd.Read(ctx, tenant, typ, id); err != nil {
		return nil, clientError(err, "reading resource")
	}
	if !unrestricted(d) {
		if err := x.check(ctx, authz.ActionRead, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// reasonSystem is the code system of the reason codes in the details of a
// denial's OperationOutcome issue (authz.Reason values).
const reasonSystem = "urn:pulsewire:authz-reason"

// denialReasons are the authz reasons a denial can carry.
var denialReasons = []authz.Reason{
	authz.ReasonNoScope, authz.ReasonNoLaunchPatient, authz.ReasonNoUser, authz.ReasonPatientOutOfScope,
	authz.ReasonScopeRestriction, authz.ReasonConsentDeny, authz.ReasonConsentRequired, authz.ReasonUnreadableResource,
}

// denialReason returns the authz reason of a KindForbidden error, or "".
// authz states it only in the message ("access denied (reason)"), so it
// is read from there, and only a known reason is accepted.
func denialReason(fe *fhir.Error) authz.Reason {
	if fe.Kind != fhir.KindForbidden {
		return ""
	}
	for _, r := range denialReasons {
		if strings.HasSuffix(fe.Msg, "access denied ("+string(r)+")") {
			return r
		}
	}
	return ""
}
