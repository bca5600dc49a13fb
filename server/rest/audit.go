package rest

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart"
)

// Audit (issue 5, point 4; server/audit). With Config.Auditor set:
//
//   - every request of a data route carries its principal in the context
//     (audit.WithPrincipal): the SMART grant's client, user and token, or
//     "anonymous" with authorization off, "unknown" before the token is
//     checked; always the client's address. Writes are recorded by the
//     store's audit write hook, in the write's own transaction, as that
//     principal's;
//   - read, vread, search, history and $lastn record one event each, and so
//     does every GET entry of a batch or transaction and every conditional
//     create answered with an existing resource: when Config.AuditReads is
//     set, whatever their outcome; else only when denied;
//   - every denial (403 forbidden: authz, or the audit hook refusing an
//     AuditEvent write; 405 on an AuditEvent update or delete) and every
//     401 is recorded once, by the middleware audited when no handler
//     recorded the request, per entry in a batch.
//
// Events are recorded before the response is written. When recording fails
// (the audit queue stays full until the request ends, or the auditor is
// closed), the request fails with 500: nothing is disclosed unaudited.

// Auditor records the AuditEvents of reads, searches and denials
// (*audit.Auditor implements it). Record queues ev and returns; its error
// (a KindInternal *fhir.Error) means the event was not queued.
type Auditor interface {
	Record(ctx context.Context, ev audit.Event) error
}

// ctxAudited marks a request whose event a handler has recorded.
const ctxAudited = "pulsewire.audited"

// ctxBundleType is the type of the Bundle a request posted, once parsed.
const ctxBundleType = "pulsewire.bundleType"

// Principals of requests without a SMART grant.
const (
	moduleAnonymous = "anonymous" // authorization is off
	moduleUnknown   = "unknown"   // the access token is missing or invalid
)

// errAppendOnly refuses an update or delete of an AuditEvent through the
// API (405, with Allow). The audit write hook refuses them too; this answers
// before any authorization or store access, with the right status.
var errAppendOnly = fhir.Errorf(fhir.KindNotSupported, "AuditEvent resources are append-only: they cannot be updated or deleted")

// refuseAuditEventWrite answers 405 for an update or delete of typ when it
// is AuditEvent.
func refuseAuditEventWrite(c *echo.Context, typ string) error {
	if typ != "AuditEvent" {
		return nil
	}
	c.Response().Header().Set("Allow", "GET, HEAD, POST")
	return errAppendOnly
}

// audited is the audit middleware of the data routes, before the token
// check: it puts the anonymous (or, with authorization on, the unknown)
// principal in the context, which principal replaces once the token is
// checked, and records the denial or 401 a request ended with when its
// handler recorded nothing.
func (a *API) audited(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		p := audit.Principal{Module: moduleAnonymous, Address: c.RealIP()}
		if a.auth != nil {
			p.Module = moduleUnknown
		}
		r := c.Request()
		c.SetRequest(r.WithContext(audit.WithPrincipal(r.Context(), p)))
		err := next(c)
		if err == nil || c.Get(ctxAudited) != nil || !denied(err) {
			return err
		}
		ev := routeEvent(c, a.reg.Supports)
		return a.recordRequest(c, ev, err)
	}
}

// principal puts the SMART grant's principal in the context (after the
// token check): the client, the signed-in user and the token id. A backend
// service's subject is its client id: it is left out, so that the event
// names no user.
func (a *API) principal(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ctx := c.Request().Context()
		if g, ok := smart.GrantFrom(ctx); ok {
			// audited's principal, replaced in place: it has the address.
			cur, _ := audit.PrincipalFrom(ctx)
			p := audit.Principal{ClientID: g.ClientID, FHIRUser: g.FHIRUser, Subject: g.Subject, TokenID: g.TokenID, Address: cur.Address}
			if p.FHIRUser == "" && p.Subject == p.ClientID {
				p.Subject = ""
			}
			if !audit.Identify(ctx, p) {
				p.Address = c.RealIP()
				c.SetRequest(c.Request().WithContext(audit.WithPrincipal(ctx, p)))
			}
		}
		return next(c)
	}
}

// denied reports whether err is a denial to record whatever the read
// policy: a 401, a 403 forbidden (not too-costly), an AuditEvent write
// refused.
func denied(err error) bool {
	fe, status := asFHIRError(err)
	return status == http.StatusUnauthorized || fe.Kind == fhir.KindForbidden || fe == errAppendOnly
}

// recordRequest records ev, the request's interaction, which ended with err
// (nil: success), when the policy says so (see shouldRecord), marks the
// request recorded and returns what the handler returns: err, or the
// failure to record.
func (a *API) recordRequest(c *echo.Context, ev audit.Event, err error) error {
	if !a.shouldRecord(err) {
		return err
	}
	ev.Tenant, ev.RequestID = c.Param("tenant"), requestIDOf(c)
	if rerr := a.record(c.Request().Context(), &ev, err); rerr != nil {
		return rerr
	}
	c.Set(ctxAudited, true)
	return err
}

// shouldRecord says whether an access that ended with err is recorded:
// denials always, anything else when reads are audited.
func (a *API) shouldRecord(err error) bool {
	return a.aud != nil && (a.audReads || err != nil && denied(err))
}

// record sets ev's outcome from err and records it; the principal is the
// one in ctx. Its error is the 500 to fail the request with.
func (a *API) record(ctx context.Context, ev *audit.Event, err error) error {
	if err != nil {
		fe, _ := asFHIRError(err)
		// ev.Resource may be a denied resource: the event names its
		// patient; nothing of it goes to the client.
		ev.Outcome, ev.Reason = audit.OutcomeOf(fe), reasonOf(err, fe)
	}
	if rerr := a.aud.Record(ctx, *ev); rerr != nil {
		return fhir.Errorf(fhir.KindInternal, "recording the audit event").Wrap(rerr)
	}
	return nil
}

// reasonOf is an event's outcomeDesc: the authz reason code of a denial,
// the message of a 401 or of another refusal (server texts, no patient
// data), else the issue code.
func reasonOf(err error, fe *fhir.Error) string {
	if r := denialReason(fe); r != "" {
		return string(r)
	}
	switch {
	case fe == errAppendOnly, fe.Kind == fhir.KindUnauthorized, fe.Kind == fhir.KindForbidden:
		return fe.Msg
	}
	return string(fe.Issue())
}

// apiPrefix is the part of every data route's pattern before the FHIR path.
const apiPrefix = "/t/:tenant/fhir"

// routeEvent is the event of a request as its route and method say, for a
// request no handler recorded (a 401 before the handler ran, a denied
// write): the interaction, the type when the server serves it, the id and
// version when valid, the query of searches, history and operations.
func routeEvent(c *echo.Context, supports func(string) bool) audit.Event {
	r := c.Request()
	ev := audit.Event{}
	if typ := c.Param("type"); typ != "" && supports(typ) {
		ev.Type = typ
	}
	if id := c.Param("id"); fhir.ValidID(id) {
		ev.ID = id
	}
	query := false
	switch route := strings.TrimPrefix(c.Path(), apiPrefix); route {
	case "", "/":
		ev.Interaction = audit.Transaction
		if t, _ := c.Get(ctxBundleType).(string); t == "batch" {
			ev.Interaction = audit.Batch
		}
	case "/_history", "/:type/_history", "/:type/:id/_history":
		ev.Interaction, query = audit.History, true
	case "/Observation/$lastn":
		ev.Interaction, ev.Type, ev.Operation, query = audit.Operation, "Observation", "$lastn", true
	case "/:type/_search":
		ev.Interaction, query = audit.Search, true
	case "/:type":
		switch r.Method {
		case http.MethodPost:
			ev.Interaction = audit.Create
		case http.MethodPut:
			ev.Interaction, query = audit.Update, true
		default:
			ev.Interaction, query = audit.Search, true
		}
	case "/:type/:id/_history/:vid":
		ev.Interaction = audit.VRead
		if v, err := strconv.ParseInt(c.Param("vid"), 10, 64); err == nil && v > 0 {
			ev.Version = v
		}
	default: // /:type/:id
		switch r.Method {
		case http.MethodPut:
			ev.Interaction = audit.Update
		case http.MethodDelete:
			ev.Interaction = audit.Delete
		default:
			ev.Interaction = audit.Read
		}
	}
	if query {
		ev.Query = r.URL.RawQuery
	}
	return ev
}

// searchQuery is the query a search or operation ran: the URL's, or for a
// POST the URL's and the form body's parameters together.
func searchQuery(c *echo.Context, params url.Values) string {
	if c.Request().Method == http.MethodPost {
		return params.Encode()
	}
	return c.Request().URL.RawQuery
}

// recordEntry records what a GET entry (read, vread, search) or a
// conditional create answered with an existing resource disclosed, or an
// entry's denial, in a batch or transaction. err is the entry's error
// (nil: success; writes that succeeded are the hook's to record).
func (a *API) recordEntry(ctx context.Context, tenant, requestID string, o *op, r *entryResult, err error) error {
	if o == nil || !a.shouldRecord(err) {
		return nil
	}
	ev := audit.Event{Tenant: tenant, RequestID: requestID, Type: o.typ, ID: o.id}
	switch {
	case o.method == http.MethodGet && o.search:
		ev.Interaction, ev.Query = audit.Search, o.query.Encode()
		if r != nil {
			ev.Patient = r.patient
		}
	case o.method == http.MethodGet:
		ev.Interaction, ev.Version = audit.Read, o.vid
		if o.vid > 0 {
			ev.Interaction = audit.VRead
		}
		if r != nil {
			ev.Resource = r.res
		}
	case err == nil && r != nil && r.matched:
		ev.Interaction, ev.Query, ev.ID, ev.Resource = audit.Search, o.cond.Encode(), "", r.res
	case err == nil || !denied(err):
		// A write: the hook recorded it, or it failed; as for a single
		// write, only its denial is recorded here.
		return nil
	case o.method == http.MethodPost:
		ev.Interaction = audit.Create
	case o.method == http.MethodDelete:
		ev.Interaction = audit.Delete
	default:
		ev.Interaction = audit.Update
	}
	return a.record(ctx, &ev, err)
}
