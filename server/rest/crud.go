package rest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// prepared is a resource that passed validation, with its index entries.
type prepared struct {
	typ   string
	id    string // the id in the body, "" when absent
	body  []byte // canonical JSON
	index []fhir.IndexEntry
}

// prepare validates body as a resource of urlType ("" accepts any supported
// type) and extracts its index entries.
func (a *API) prepare(body []byte, urlType string) (*prepared, error) {
	typ, id, canon, err := a.validator.Validate(body)
	if err != nil {
		return nil, clientError(err, "validating resource")
	}
	if urlType != "" && typ != urlType {
		return nil, fhir.Errorf(fhir.KindInvalid, "resourceType %s does not match the type %s in the URL", safeName(typ), urlType).At("resourceType")
	}
	if !a.reg.Supports(typ) {
		return nil, fhir.Errorf(fhir.KindNotSupported, "resource type %s is not supported", safeName(typ)).At("resourceType")
	}
	p := &prepared{typ: typ, id: id, body: canon}
	if err := p.extract(a.reg); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *prepared) extract(reg *search.Registry) error {
	idx, err := reg.Extract(p.typ, p.body)
	if err != nil {
		return clientError(err, "extracting search index")
	}
	p.index = idx
	return nil
}

// clientError keeps a *fhir.Error as it is and makes anything else an
// internal error (so its text never reaches the client).
func clientError(err error, doing string) error {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return err
	}
	return fhir.Errorf(fhir.KindInternal, "%s", doing).Wrap(err)
}

// canonicalQuery is a condition in a normal form: keys sorted, values sorted,
// empty values dropped. It names the lock of a conditional operation.
func canonicalQuery(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vals := append([]string(nil), v[k]...)
		sort.Strings(vals)
		for _, val := range vals {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(val))
		}
	}
	return b.String()
}

// conditionValues parses the query of a conditional operation
// (If-None-Exist, or the URL of a conditional update).
func conditionValues(raw, what string) (url.Values, error) {
	v, err := url.ParseQuery(strings.TrimPrefix(raw, "?"))
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s is not a valid query string", what)
	}
	for k, vals := range v {
		var keep []string
		for _, s := range vals {
			if s != "" {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 || k == "" {
			delete(v, k)
			continue
		}
		v[k] = keep
	}
	for _, k := range []string{"_format", "_pretty", "_count", "_offset", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude"} {
		delete(v, k)
	}
	if len(v) == 0 {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s has no search parameters", what)
	}
	return v, nil
}

// conditionalMatches locks the normalized condition for the rest of tx and
// returns up to two current resources of typ matching it. Unknown
// parameters in a condition are an error (a condition that silently
// ignored a parameter could match the wrong resource).
//
// The condition is a search and authorized as one; it is not narrowed (a
// match hidden from the caller would turn an update into a duplicate
// create): a match the caller may not see fails the request instead.
func (a *API) conditionalMatches(ctx context.Context, tx fhir.Tx, tenant, typ string, cond url.Values, acc *access) ([]*fhir.Resource, error) {
	if err := tx.Lock(ctx, "cond:"+typ+"?"+canonicalQuery(cond)); err != nil {
		return nil, clientError(err, "locking condition")
	}
	q, _, err := a.reg.Parse(typ, cond, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, clientError(err, "parsing condition")
	}
	if _, err := acc.decide(ctx, authz.ActionSearch, typ, authz.QueryPatient(q)); err != nil {
		return nil, err
	}
	q.Count, q.Offset = 2, 0
	q.Include, q.RevInclude = nil, nil
	q.Total, q.CountOnly = false, false
	q.Sort = nil
	res, err := tx.Search(ctx, tenant, q)
	if err != nil {
		return nil, clientError(err, "searching condition")
	}
	for _, m := range res.Resources {
		if err := acc.check(ctx, authz.ActionSearch, m); err != nil {
			return nil, err
		}
	}
	return res.Resources, nil
}

// writeResult of one write inside a transaction.
type writeOutcome struct {
	res     *fhir.Resource
	created bool // a new resource (201)
	matched bool // no write: If-None-Exist found res
}

func (w writeOutcome) status() int {
	if w.created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// createIn creates p with a new id, or with If-None-Exist returns the one
// existing match (created false). Several matches: 412.
func (a *API) createIn(ctx context.Context, tx fhir.Tx, tenant string, p *prepared, ifNoneExist url.Values, acc *access) (writeOutcome, error) {
	if ifNoneExist != nil {
		m, err := a.conditionalMatches(ctx, tx, tenant, p.typ, ifNoneExist, acc)
		if err != nil {
			return writeOutcome{}, err
		}
		switch len(m) {
		case 0:
		case 1:
			return writeOutcome{res: m[0], matched: true}, nil
		default:
			return writeOutcome{}, fhir.Errorf(fhir.KindPreconditionFailed, "If-None-Exist matches more than one resource").WithCode(fhir.IssueMultipleMatches)
		}
	}
	id := fhir.NewID()
	if err := acc.authorizeWrite(ctx, tx, tenant, p, id, true); err != nil {
		return writeOutcome{}, err
	}
	res, _, err := tx.Put(ctx, &fhir.Write{Type: p.typ, ID: id, Body: p.body, Index: p.index, Fresh: true})
	if err != nil {
		return writeOutcome{}, clientError(err, "creating resource")
	}
	return writeOutcome{res: res, created: true}, nil
}

// updateIn writes p as the new version of p.typ/id (update-as-create when
// it does not exist). fresh says id was just assigned (a create in a
// transaction), so there is no current version to authorize against.
func (a *API) updateIn(ctx context.Context, tx fhir.Tx, tenant string, p *prepared, id string, ifMatch int64, fresh bool, acc *access) (writeOutcome, error) {
	if err := acc.authorizeWrite(ctx, tx, tenant, p, id, fresh); err != nil {
		return writeOutcome{}, err
	}
	res, created, err := tx.Put(ctx, &fhir.Write{Type: p.typ, ID: id, Body: p.body, Index: p.index, IfMatch: ifMatch})
	if err != nil {
		return writeOutcome{}, clientError(err, "updating resource")
	}
	return writeOutcome{res: res, created: created}, nil
}

// conditionalUpdateIn implements PUT [type]?[search]: no match creates
// (with the body's id if it has one), one match is updated, several 412.
func (a *API) conditionalUpdateIn(ctx context.Context, tx fhir.Tx, tenant string, p *prepared, cond url.Values, ifMatch int64, acc *access) (writeOutcome, error) {
	m, err := a.conditionalMatches(ctx, tx, tenant, p.typ, cond, acc)
	if err != nil {
		return writeOutcome{}, err
	}
	var id string
	switch len(m) {
	case 0:
		id = p.id
		if id == "" {
			id = fhir.NewID()
		}
	case 1:
		id = m[0].ID
		if p.id != "" && p.id != id {
			return writeOutcome{}, fhir.Errorf(fhir.KindInvalid, "resource id does not match the resource the condition found").At(p.typ + ".id")
		}
	default:
		return writeOutcome{}, fhir.Errorf(fhir.KindPreconditionFailed, "conditional update matches more than one resource").WithCode(fhir.IssueMultipleMatches)
	}
	return a.updateIn(ctx, tx, tenant, p, id, ifMatch, false, acc)
}

// checkURLID checks an id taken from the URL.
func checkURLID(id string) error {
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.KindInvalid, "invalid resource id in URL")
	}
	return nil
}

// --- handlers ---

func (a *API) create(c *echo.Context) error {
	typ := c.Param("type")
	if err := a.checkType(typ); err != nil {
		return err
	}
	body, err := a.readBody(c)
	if err != nil {
		return err
	}
	p, err := a.prepare(body, typ)
	if err != nil {
		return err
	}
	var cond url.Values
	if h := c.Request().Header.Get("If-None-Exist"); h != "" {
		if cond, err = conditionValues(h, "If-None-Exist"); err != nil {
			return err
		}
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	return a.write(c, func(ctx context.Context, tx fhir.Tx, tenant string) (writeOutcome, error) {
		return a.createIn(ctx, tx, tenant, p, cond, acc)
	})
}

// write runs one write in its own transaction and sends the result.
func (a *API) write(c *echo.Context, fn func(ctx context.Context, tx fhir.Tx, tenant string) (writeOutcome, error)) error {
	ctx, tenant := c.Request().Context(), c.Param("tenant")
	var out writeOutcome
	err := a.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		var err error
		out, err = fn(ctx, tx, tenant)
		return err
	})
	if err != nil {
		return err
	}
	if out.matched {
		// Nothing was written, but the match goes out: a search.
		ev := audit.Event{Interaction: audit.Search, Type: out.res.Type, Resource: out.res,
			Query: strings.TrimPrefix(c.Request().Header.Get("If-None-Exist"), "?")}
		if err := a.recordRequest(c, ev, nil); err != nil {
			return err
		}
	}
	return a.writeResult(c, out.res, out.status(), out.created)
}

func (a *API) update(c *echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := refuseAuditEventWrite(c, typ); err != nil {
		return err
	}
	if err := checkURLID(id); err != nil {
		return err
	}
	ifMatch, p, err := a.readUpdate(c, typ)
	if err != nil {
		return err
	}
	if p.id == "" {
		return fhir.Errorf(fhir.KindInvalid, "the resource must have an id equal to the id in the URL").At(typ + ".id")
	}
	if p.id != id {
		return fhir.Errorf(fhir.KindInvalid, "resource id does not match the id in the URL").At(typ + ".id")
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	return a.write(c, func(ctx context.Context, tx fhir.Tx, tenant string) (writeOutcome, error) {
		return a.updateIn(ctx, tx, tenant, p, id, ifMatch, false, acc)
	})
}

// readUpdate reads what an update carries: the If-Match version (0 when
// absent) and the validated resource of type typ.
func (a *API) readUpdate(c *echo.Context, typ string) (int64, *prepared, error) {
	ifMatch, err := parseETag(c.Request().Header.Get("If-Match"))
	if err != nil {
		return 0, nil, err
	}
	body, err := a.readBody(c)
	if err != nil {
		return 0, nil, err
	}
	p, err := a.prepare(body, typ)
	if err != nil {
		return 0, nil, err
	}
	return ifMatch, p, nil
}

func (a *API) conditionalUpdate(c *echo.Context) error {
	typ := c.Param("type")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := refuseAuditEventWrite(c, typ); err != nil {
		return err
	}
	cond, err := conditionValues(c.Request().URL.RawQuery, "conditional update")
	if err != nil {
		return err
	}
	ifMatch, p, err := a.readUpdate(c, typ)
	if err != nil {
		return err
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	return a.write(c, func(ctx context.Context, tx fhir.Tx, tenant string) (writeOutcome, error) {
		return a.conditionalUpdateIn(ctx, tx, tenant, p, cond, ifMatch, acc)
	})
}

func (a *API) read(c *echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := checkURLID(id); err != nil {
		return err
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	res, err := acc.readChecked(c.Request().Context(), a.store, c.Param("tenant"), typ, id, 0)
	if err := a.recordRequest(c, audit.Event{Interaction: audit.Read, Type: typ, ID: id, Resource: res}, err); err != nil {
		return err
	}
	return a.sendResource(c, res)
}

func (a *API) vread(c *echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := checkURLID(id); err != nil {
		return err
	}
	vid, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || vid < 1 {
		return fhir.Errorf(fhir.KindNotFound, "no such version")
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	res, err := acc.readChecked(c.Request().Context(), a.store, c.Param("tenant"), typ, id, vid)
	if err := a.recordRequest(c, audit.Event{Interaction: audit.VRead, Type: typ, ID: id, Version: vid, Resource: res}, err); err != nil {
		return err
	}
	return a.sendResource(c, res)
}

// sendResource answers a read: 304 when If-None-Match names the current
// version, else the resource with _summary/_elements applied.
func (a *API) sendResource(c *echo.Context, res *fhir.Resource) error {
	h := c.Response().Header()
	setVersionHeaders(h, res)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" {
		if v, err := parseETag(inm); err == nil && v == res.VersionID {
			return c.NoContent(http.StatusNotModified)
		}
	}
	body := []byte(res.Body)
	if c.Request().URL.RawQuery != "" { // most reads have none: no map to build
		qp := c.QueryParams()
		if s, e := qp.Get("_summary"), qp.Get("_elements"); s != "" || e != "" {
			var err error
			if body, err = present(body, res.Type, s, splitList(qp["_elements"])); err != nil {
				return err
			}
		}
	}
	return send(c, http.StatusOK, body)
}

func (a *API) delete(c *echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := refuseAuditEventWrite(c, typ); err != nil {
		return err
	}
	if err := checkURLID(id); err != nil {
		return err
	}
	ifMatch, err := parseETag(c.Request().Header.Get("If-Match"))
	if err != nil {
		return err
	}
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	ctx, tenant := c.Request().Context(), c.Param("tenant")
	var res *fhir.Resource
	err = a.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		var err error
		res, err = a.deleteIn(ctx, tx, tenant, typ, id, ifMatch, acc)
		return err
	})
	if err != nil {
		return err
	}
	if res != nil {
		c.Response().Header().Set("ETag", res.ETag())
	}
	if parsePrefer(c.Request().Header).Return == "OperationOutcome" {
		return send(c, http.StatusOK, informational("deleted"))
	}
	return c.NoContent(http.StatusNoContent)
}

// deleteIn deletes typ/id in tx (nil, nil when there is nothing to delete).
func (a *API) deleteIn(ctx context.Context, tx fhir.Tx, tenant, typ, id string, ifMatch int64, acc *access) (*fhir.Resource, error) {
	if err := acc.authorizeDelete(ctx, tx, tenant, typ, id); err != nil {
		return nil, err
	}
	res, err := tx.Delete(ctx, typ, id, ifMatch)
	if err != nil {
		return nil, clientError(err, "deleting resource")
	}
	return res, nil
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
