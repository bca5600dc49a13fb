package rest

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/audit"
	"github.com/pulsewire/pulsewire/server/authz"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// bundle is the JSON shape of the Bundles this API writes.
type bundle struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id,omitempty"`
	Meta         *bundleMeta    `json:"meta,omitempty"`
	Type         string         `json:"type"`
	Total        *int           `json:"total,omitempty"`
	Link         []bundleLink   `json:"link,omitempty"`
	Entry        []*bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string         `json:"fullUrl,omitempty"`
	Resource rawJSON        `json:"resource,omitempty"`
	Search   *entrySearch   `json:"search,omitempty"`
	Request  *entryRequest  `json:"request,omitempty"`
	Response *entryResponse `json:"response,omitempty"`
}

// rawJSON is a json.RawMessage that omitempty can drop.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
	IfMatch     string `json:"ifMatch,omitempty"`
}

type entryResponse struct {
	Status       string  `json:"status"`
	Location     string  `json:"location,omitempty"`
	Etag         string  `json:"etag,omitempty"`
	LastModified string  `json:"lastModified,omitempty"`
	Outcome      rawJSON `json:"outcome,omitempty"`
}

// encode writes b as marshal would, but copies each entry's resource as it
// is instead of letting encoding/json validate and re-compact it: entry
// resources are stored bodies (or built by this package), compact JSON
// already, and re-compacting a page of them was a quarter of a search's CPU.
func (b *bundle) encode() ([]byte, error) { return b.encodeTo(nil) }

// encodeTo is encode appending to dst[:0] (which may be nil).
func (b *bundle) encodeTo(dst []byte) ([]byte, error) {
	head := *b
	head.Entry = nil
	out, err := marshal(&head)
	if err != nil {
		return nil, err
	}
	if len(b.Entry) == 0 {
		return append(dst[:0], out...), nil
	}
	size := len(out) + 16
	for _, e := range b.Entry {
		size += len(e.Resource) + len(e.FullURL) + 64
	}
	buf := dst[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	buf = append(buf, out[:len(out)-1]...) // without the closing brace
	buf = append(buf, `,"entry":[`...)
	for i, e := range b.Entry {
		if i > 0 {
			buf = append(buf, ',')
		}
		// The fields of bundleEntry, in order; the resource is the only one
		// copied raw.
		buf = append(buf, '{')
		sep := false
		if e.FullURL != "" {
			buf = append(buf, `"fullUrl":`...)
			if buf, err = appendJSONString(buf, e.FullURL); err != nil {
				return nil, err
			}
			sep = true
		}
		if len(e.Resource) > 0 {
			if sep {
				buf = append(buf, ',')
			}
			buf = append(append(buf, `"resource":`...), e.Resource...)
			sep = true
		}
		if e.Request == nil && e.Response == nil {
			// A search entry: only the mode follows.
			if e.Search != nil {
				if sep {
					buf = append(buf, ',')
				}
				buf = append(buf, `"search":{"mode":`...)
				if buf, err = appendJSONString(buf, e.Search.Mode); err != nil {
					return nil, err
				}
				buf = append(buf, '}')
			}
			buf = append(buf, '}')
			continue
		}
		rest := *e
		rest.FullURL, rest.Resource = "", nil
		tail, err := marshal(&rest)
		if err != nil {
			return nil, err
		}
		if inner := tail[1 : len(tail)-1]; len(inner) > 0 {
			if sep {
				buf = append(buf, ',')
			}
			buf = append(buf, inner...)
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}"...), nil
}

// appendJSONString appends s as a JSON string, as marshal writes it: plain
// printable ASCII directly, anything else through encoding/json.
func appendJSONString(buf []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			q, err := marshal(s)
			if err != nil {
				return nil, err
			}
			return append(buf, q...), nil
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), nil
}

func newBundle(typ string) *bundle {
	return &bundle{
		ResourceType: "Bundle",
		ID:           fhir.NewID(),
		Meta:         &bundleMeta{LastUpdated: time.Now().UTC().Format(fhir.TimeFormat)},
		Type:         typ,
	}
}

// searchType serves GET [type] and POST [type]/_search.
func (a *API) searchType(c *echo.Context) error {
	typ := c.Param("type")
	if err := a.checkType(typ); err != nil {
		return err
	}
	params, err := a.requestParams(c)
	if err != nil {
		return err
	}
	strict := parsePrefer(c.Request().Header).Strict
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	b, patient, err := a.searchBundle(c.Request().Context(), a.store, c.Param("tenant"), a.baseURL(c), typ, params, strict, acc)
	ev := audit.Event{Interaction: audit.Search, Type: typ, Query: searchQuery(c, params), Patient: patient}
	if err := a.recordRequest(c, ev, err); err != nil {
		return err
	}
	// send copies b into the response before it returns.
	defer putBuf(b)
	return send(c, http.StatusOK, b)
}

// requestParams returns the search parameters of a request: the URL query,
// plus the form body of a POST (application/x-www-form-urlencoded).
func (a *API) requestParams(c *echo.Context) (url.Values, error) {
	r := c.Request()
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = append(params[k], v...)
	}
	if r.Method != http.MethodPost {
		return params, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return nil, echo.ErrUnsupportedMediaType
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, a.maxBody)
	if err := r.ParseForm(); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "search form body is not valid").Wrap(err)
	}
	for k, v := range r.PostForm {
		params[k] = append(params[k], v...)
	}
	return params, nil
}

// searchBundle runs a search with rd (the store, or a transaction) and
// returns the searchset Bundle, and the patient the query names ("" when
// none; also with an error, for the audit event). Under acc, the search is
// decided for that patient, narrowed, and its matches and included
// resources filtered; the total is left out unless the narrowing is exact.
func (a *API) searchBundle(ctx context.Context, rd fhir.Reader, tenant, base, typ string, params url.Values, strict bool, acc *access) (_ []byte, patient string, _ error) {
	q, ignored, err := a.reg.Parse(typ, params, search.ParseOptions{Strict: strict})
	if err != nil {
		return nil, "", clientError(err, "parsing search")
	}
	patient = authz.QueryPatient(q)
	d, err := acc.decide(ctx, authz.ActionSearch, typ, patient)
	if err != nil {
		return nil, patient, err
	}
	exact := narrow(d, q)
	res, err := rd.Search(ctx, tenant, q)
	if err != nil {
		return nil, patient, clientError(err, "searching")
	}
	if !unrestricted(d) {
		matched := len(res.Resources)
		if res.Resources, err = acc.filter(ctx, authz.ActionSearch, res.Resources); err != nil {
			return nil, patient, err
		}
		exact = exact && len(res.Resources) == matched
	}
	// Included resources are reads of whatever they are, whatever the
	// decision on the searched type.
	if res.Included, err = acc.filter(ctx, authz.ActionRead, res.Included); err != nil {
		return nil, patient, err
	}
	b := newBundle("searchset")
	if res.Total >= 0 && exact {
		t := res.Total
		b.Total = &t
	}
	eff := effectiveParams(params, ignored)
	self := base + "/" + typ
	b.Link = append(b.Link, bundleLink{"self", pageURL(self, eff, q.Count, q.Offset)})
	if !q.CountOnly {
		if res.HasMore && q.Count > 0 {
			b.Link = append(b.Link, bundleLink{"next", pageURL(self, eff, q.Count, q.Offset+q.Count)})
		}
		if q.Offset > 0 {
			b.Link = append(b.Link, bundleLink{"previous", pageURL(self, eff, q.Count, max(0, q.Offset-q.Count))})
		}
		for _, r := range res.Resources {
			e, err := searchEntry(base, r, "match", q)
			if err != nil {
				return nil, patient, err
			}
			b.Entry = append(b.Entry, e)
		}
		for _, r := range res.Included {
			e, err := searchEntry(base, r, "include", q)
			if err != nil {
				return nil, patient, err
			}
			b.Entry = append(b.Entry, e)
		}
	}
	if len(ignored) > 0 {
		names := make([]string, len(ignored))
		for i, n := range ignored {
			names[i] = safeName(n)
		}
		oo := outcomeJSON(&operationOutcome{ResourceType: "OperationOutcome", Issue: []ooIssue{{
			Severity:    "warning",
			Code:        string(fhir.IssueNotSupported),
			Diagnostics: "search parameters ignored: " + strings.Join(names, ", "),
		}}})
		b.Entry = append(b.Entry, &bundleEntry{Resource: oo, Search: &entrySearch{Mode: "outcome"}})
	}
	out, err := b.encodeTo(getBuf())
	return out, patient, err
}

// bufPool holds response buffers of searches (a page of resources, some
// tens of KiB each), so that a search does not allocate its response anew:
// the allocation rate is what sets how often the garbage collector runs.
var bufPool sync.Pool

// maxPooledBuf bounds the buffers kept: a rare huge page is left to the GC.
const maxPooledBuf = 1 << 20

func getBuf() []byte {
	if p, ok := bufPool.Get().(*[]byte); ok {
		return *p
	}
	return nil
}

// putBuf returns a buffer from getBuf (and everything written with it) once
// nothing refers to it any more.
func putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledBuf {
		b = b[:0]
		bufPool.Put(&b)
	}
}

func searchEntry(base string, r *fhir.Resource, mode string, q *fhir.Query) (*bundleEntry, error) {
	body, err := present(r.Body, r.Type, q.Summary, q.Elements)
	if err != nil {
		return nil, err
	}
	return &bundleEntry{FullURL: base + "/" + r.Ref(), Resource: body, Search: &entrySearch{Mode: mode}}, nil
}

// effectiveParams are the parameters a page link repeats: all given ones
// except those the parser ignored (it names them by their exact key) and
// the paging ones, which pageURL sets.
func effectiveParams(params url.Values, ignored []string) url.Values {
	drop := map[string]bool{"_offset": true, "_count": true}
	for _, n := range ignored {
		drop[n] = true
	}
	eff := url.Values{}
	for k, v := range params {
		if !drop[k] {
			eff[k] = v
		}
	}
	return eff
}

// pageURL is an absolute search URL with the effective parameters and the
// page's _count and _offset, keys in a stable order.
func pageURL(self string, eff url.Values, count, offset int) string {
	v := url.Values{}
	for k, vals := range eff {
		v[k] = vals
	}
	v.Set("_count", strconv.Itoa(count))
	if offset > 0 {
		v.Set("_offset", strconv.Itoa(offset))
	}
	return self + "?" + v.Encode()
}

// --- history ---

func (a *API) systemHistory(c *echo.Context) error {
	return a.history(c, "", "")
}

func (a *API) typeHistory(c *echo.Context) error {
	typ := c.Param("type")
	if err := a.checkType(typ); err != nil {
		return err
	}
	return a.history(c, typ, "")
}

func (a *API) instanceHistory(c *echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := a.checkType(typ); err != nil {
		return err
	}
	if err := checkURLID(id); err != nil {
		return err
	}
	return a.history(c, typ, id)
}

const (
	defaultCount = 50
	maxCount     = 1000
)

func (a *API) history(c *echo.Context, typ, id string) error {
	qp := c.QueryParams()
	hq := &fhir.HistoryQuery{Type: typ, ID: id, Count: defaultCount}
	var err error
	if s := qp.Get("_count"); s != "" {
		if hq.Count, err = strconv.Atoi(s); err != nil || hq.Count < 0 {
			return fhir.Errorf(fhir.KindInvalid, "_count must be a non-negative integer").At("_count")
		}
		hq.Count = min(hq.Count, maxCount)
	}
	if s := qp.Get("_offset"); s != "" {
		if hq.Offset, err = strconv.Atoi(s); err != nil || hq.Offset < 0 {
			return fhir.Errorf(fhir.KindInvalid, "_offset must be a non-negative integer").At("_offset")
		}
	}
	if s := qp.Get("_since"); s != "" {
		if hq.Since, err = parseInstant(s); err != nil {
			return fhir.Errorf(fhir.KindInvalid, "_since must be an instant").At("_since")
		}
	}
	if s := qp.Get("_at"); s != "" {
		if hq.At, err = parseInstant(s); err != nil {
			return fhir.Errorf(fhir.KindInvalid, "_at must be a date or instant").At("_at")
		}
	}
	ctx, tenant := c.Request().Context(), c.Param("tenant")
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	act := authz.ActionHistory
	if id != "" {
		act = authz.ActionHistoryInstance
	}
	res, err := a.historyOf(ctx, tenant, hq, acc, act)
	ev := audit.Event{Interaction: audit.History, Type: typ, ID: id, Query: c.Request().URL.RawQuery}
	if typ == "Patient" && id != "" {
		ev.Patient = id
	} else if id != "" && res != nil {
		// The instance's patient, from a version with a body.
		for _, v := range res.Versions {
			if !v.Deleted {
				ev.Resource = v
				break
			}
		}
	}
	if err := a.recordRequest(c, ev, err); err != nil {
		return err
	}
	base := a.baseURL(c)
	self := base
	if typ != "" {
		self += "/" + typ
	}
	if id != "" {
		self += "/" + id
	}
	self += "/_history"
	eff := url.Values{}
	for _, k := range []string{"_since", "_at"} {
		if s := qp.Get(k); s != "" {
			eff.Set(k, s)
		}
	}
	b := newBundle("history")
	if res.Total >= 0 {
		t := res.Total
		b.Total = &t
	}
	b.Link = append(b.Link, bundleLink{"self", pageURL(self, eff, hq.Count, hq.Offset)})
	if res.HasMore && hq.Count > 0 {
		b.Link = append(b.Link, bundleLink{"next", pageURL(self, eff, hq.Count, hq.Offset+hq.Count)})
	}
	if hq.Offset > 0 {
		b.Link = append(b.Link, bundleLink{"previous", pageURL(self, eff, hq.Count, max(0, hq.Offset-hq.Count))})
	}
	for _, v := range res.Versions {
		b.Entry = append(b.Entry, historyEntry(base, v))
	}
	out, err := b.encode()
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding history").Wrap(err)
	}
	return send(c, http.StatusOK, out)
}

// historyOf decides act (history or instance history) and returns the
// versions hq asks for that the caller may see.
func (a *API) historyOf(ctx context.Context, tenant string, hq *fhir.HistoryQuery, acc *access, act authz.Action) (*fhir.HistoryResult, error) {
	d, err := acc.decide(ctx, act, hq.Type, "")
	if err != nil {
		return nil, err
	}
	res, err := a.store.History(ctx, tenant, hq)
	if err != nil {
		return nil, clientError(err, "reading history")
	}
	if hq.ID != "" && len(res.Versions) == 0 && hq.Offset == 0 {
		// Distinguish "no versions in range" from "no such resource".
		if _, err := a.store.Read(ctx, tenant, hq.Type, hq.ID); fhir.IsKind(err, fhir.KindNotFound) {
			return nil, err
		}
	}
	if !unrestricted(d) {
		// Versions the caller may not see (another patient's, a deleted
		// version under a narrowed permit) are left out; so is the total.
		if res.Versions, err = acc.filter(ctx, act, res.Versions); err != nil {
			return nil, err
		}
		res.Total = -1
	}
	return res, nil
}

func historyEntry(base string, v *fhir.Resource) *bundleEntry {
	e := &bundleEntry{
		FullURL: base + "/" + v.Ref(),
		Response: &entryResponse{
			Etag:         v.ETag(),
			LastModified: v.LastUpdated.UTC().Format(fhir.TimeFormat),
		},
	}
	switch {
	case v.Deleted:
		e.Request = &entryRequest{Method: http.MethodDelete, URL: v.Ref()}
		e.Response.Status = "204 No Content"
	case v.VersionID == 1:
		e.Resource = rawJSON(v.Body)
		e.Request = &entryRequest{Method: http.MethodPost, URL: v.Type}
		e.Response.Status = "201 Created"
	default:
		e.Resource = rawJSON(v.Body)
		e.Request = &entryRequest{Method: http.MethodPut, URL: v.Ref()}
		e.Response.Status = "200 OK"
	}
	return e
}

// parseInstant reads an instant or a partial date (its start), as _since
// and _at take.
func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fhir.Errorf(fhir.KindInvalid, "not an instant")
}

// --- Observation/$lastn ---

// lastN serves Observation/$lastn: the most recent max Observations per
// code among those matching the other parameters (patient/subject,
// category, code and any Observation search parameter).
func (a *API) lastN(c *echo.Context) error {
	params, err := a.requestParams(c)
	if err != nil {
		return err
	}
	raw := url.Values{}
	for k, v := range params {
		raw[k] = v
	}
	n := 1
	if s := params.Get("max"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			return fhir.Errorf(fhir.KindInvalid, "max must be a positive integer").At("max")
		}
	}
	params.Del("max")
	for _, k := range []string{"_count", "_offset", "_include", "_revinclude", "_total"} {
		params.Del(k)
	}
	strict := parsePrefer(c.Request().Header).Strict
	q, ignored, err := a.reg.Parse("Observation", params, search.ParseOptions{Strict: strict})
	if err != nil {
		return clientError(err, "parsing $lastn")
	}
	ctx, tenant := c.Request().Context(), c.Param("tenant")
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	// $lastn searches: decided as an operation, narrowed and filtered like
	// a search. When the narrowing is not exact, a code may show fewer
	// than max Observations (the newest ones were filtered out after the
	// store picked them).
	patient := authz.QueryPatient(q)
	rs, err := a.lastNOf(ctx, tenant, q, n, patient, acc)
	ev := audit.Event{Interaction: audit.Operation, Operation: "$lastn", Type: "Observation", Query: searchQuery(c, raw), Patient: patient}
	if err := a.recordRequest(c, ev, err); err != nil {
		return err
	}
	base := a.baseURL(c)
	b := newBundle("searchset")
	total := len(rs)
	b.Total = &total
	eff := effectiveParams(params, ignored)
	if n != 1 {
		eff.Set("max", strconv.Itoa(n))
	}
	self := base + "/Observation/$lastn"
	if enc := eff.Encode(); enc != "" {
		self += "?" + enc
	}
	b.Link = []bundleLink{{"self", self}}
	for _, r := range rs {
		e, err := searchEntry(base, r, "match", q)
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, e)
	}
	out, err := b.encode()
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding $lastn").Wrap(err)
	}
	return send(c, http.StatusOK, out)
}

// lastNOf decides $lastn for patient (the one the query names, or ""),
// narrows q and returns what the caller may see of the newest n
// Observations per code.
func (a *API) lastNOf(ctx context.Context, tenant string, q *fhir.Query, n int, patient string, acc *access) ([]*fhir.Resource, error) {
	d, err := acc.decide(ctx, authz.ActionOperation, "Observation", patient)
	if err != nil {
		return nil, err
	}
	narrow(d, q)
	rs, err := a.store.LastN(ctx, tenant, q, n)
	if err != nil {
		return nil, clientError(err, "running $lastn")
	}
	if !unrestricted(d) {
		if rs, err = acc.filter(ctx, authz.ActionOperation, rs); err != nil {
			return nil, err
		}
	}
	return rs, nil
}
