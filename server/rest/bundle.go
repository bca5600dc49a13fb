package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// Batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

type inBundle struct {
	ResourceType string    `json:"resourceType"`
	Type         string    `json:"type"`
	Entry        []inEntry `json:"entry"`
}

type inEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfNoneExist string `json:"ifNoneExist"`
		IfMatch     string `json:"ifMatch"`
	} `json:"request"`
}

// op is one entry of a batch or transaction, parsed and (for writes)
// validated before any store access.
type op struct {
	i       int
	method  string
	fullURL string
	typ, id string
	vid     int64      // GET Type/id/_history/vid
	query   url.Values // GET search; PUT conditional update
	search  bool       // GET Type?query
	cond    url.Values // POST If-None-Exist
	ifMatch int64
	p       *prepared
}

// entryResult is what one entry produced.
type entryResult struct {
	status  int
	res     *fhir.Resource // written or read resource
	body    []byte         // a searchset Bundle for GET searches
	created bool
	read    bool   // a GET: the resource is returned even with return=minimal
	outcome []byte // batch: the OperationOutcome of a failed entry
	matched bool   // a POST whose ifNoneExist found res: nothing written
	patient string // a GET search: the patient its query names
}

// entryError marks the entry an error came from.
type entryError struct {
	i   int
	err error
}

func (e *entryError) Error() string { return fmt.Sprintf("entry %d: %v", e.i, e.err) }
func (e *entryError) Unwrap() error { return e.err }

func entryPath(i int, rest string) string {
	return "Bundle.entry[" + strconv.Itoa(i) + "]" + rest
}

// bundle serves POST [base] with a batch or transaction Bundle.
func (a *API) bundle(c *echo.Context) error {
	raw, err := a.readBody(c)
	if err != nil {
		return err
	}
	var in inBundle
	if err := json.Unmarshal(raw, &in); err != nil {
		return fhir.Errorf(fhir.KindInvalid, "request body is not a valid JSON Bundle").WithCode(fhir.IssueStructure)
	}
	if in.ResourceType != "Bundle" {
		return fhir.Errorf(fhir.KindInvalid, "the base URL accepts only a Bundle").At("resourceType")
	}
	if in.Type != "batch" && in.Type != "transaction" {
		return fhir.Errorf(fhir.KindInvalid, "Bundle.type must be batch or transaction").At("Bundle.type")
	}
	c.Set(ctxBundleType, in.Type)
	base := a.baseURL(c)
	ops := make([]*op, len(in.Entry))
	opErrs := make([]error, len(in.Entry))
	for i := range in.Entry {
		ops[i], opErrs[i] = a.parseEntry(i, &in.Entry[i], base)
		if opErrs[i] != nil && in.Type == "transaction" {
			return entryFailure(i, opErrs[i])
		}
	}
	pref := parsePrefer(c.Request().Header)
	acc, err := a.accessOf(c)
	if err != nil {
		return err
	}
	var results []*entryResult
	if in.Type == "transaction" {
		results, err = a.transaction(c.Request().Context(), c.Param("tenant"), base, ops, acc)
		if err != nil {
			return err
		}
		// What the committed transaction disclosed: its reads, searches
		// and matched conditional creates.
		for _, o := range ops {
			if err := a.recordEntry(c.Request().Context(), c.Param("tenant"), requestIDOf(c), o, results[o.i], nil); err != nil {
				return err
			}
		}
	} else if results, err = a.batch(c, base, ops, opErrs, acc); err != nil {
		return err
	}
	out := newBundle(in.Type + "-response")
	out.Entry = make([]*bundleEntry, len(results))
	for i, r := range results {
		out.Entry[i] = responseEntry(base, r, pref)
	}
	b, err := out.encode()
	if err != nil {
		return fhir.Errorf(fhir.KindInternal, "encoding Bundle response").Wrap(err)
	}
	return send(c, http.StatusOK, b)
}

// entryFailure is the error a transaction fails with: the entry's own
// error, its message naming the entry.
func entryFailure(i int, err error) error {
	fe, status := asFHIRError(err)
	if status >= 500 {
		return &entryError{i: i, err: err}
	}
	c := *fe
	c.Msg = entryPath(i, "") + ": " + fe.Msg
	return &c
}

// parseEntry checks an entry's request and validates its resource.
func (a *API) parseEntry(i int, e *inEntry, base string) (*op, error) {
	if e.Request == nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry has no request").At(entryPath(i, ".request"))
	}
	o := &op{i: i, method: strings.ToUpper(e.Request.Method), fullURL: e.FullURL}
	u := e.Request.URL
	if u == "" {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry request has no url").At(entryPath(i, ".request.url"))
	}
	u = strings.TrimPrefix(strings.TrimPrefix(u, base), "/")
	path, rawQuery, hasQuery := strings.Cut(u, "?")
	segs := strings.Split(path, "/")
	o.typ = segs[0]
	if err := a.checkType(o.typ); err != nil {
		return nil, fhir.Errorf(fhir.KindNotSupported, "entry request url names an unsupported resource type").At(entryPath(i, ".request.url"))
	}
	bad := func() error {
		return fhir.Errorf(fhir.KindNotSupported, "entry request %s on this url is not supported", safeName(o.method)).At(entryPath(i, ".request.url"))
	}
	if len(segs) >= 2 {
		o.id = segs[1]
		if !fhir.ValidID(o.id) {
			return nil, fhir.Errorf(fhir.KindInvalid, "invalid id in entry request url").At(entryPath(i, ".request.url"))
		}
	}
	var err error
	if o.ifMatch, err = parseETag(e.Request.IfMatch); err != nil {
		return nil, fhir.Errorf(fhir.KindInvalid, "invalid ifMatch").At(entryPath(i, ".request.ifMatch"))
	}
	switch o.method {
	case http.MethodGet:
		switch {
		case len(segs) == 1:
			o.search = true
			if o.query, err = url.ParseQuery(rawQuery); err != nil {
				return nil, fhir.Errorf(fhir.KindInvalid, "invalid query in entry request url").At(entryPath(i, ".request.url"))
			}
		case len(segs) == 2 && !hasQuery:
		case len(segs) == 4 && segs[2] == "_history":
			if o.vid, err = strconv.ParseInt(segs[3], 10, 64); err != nil || o.vid < 1 {
				return nil, fhir.Errorf(fhir.KindInvalid, "invalid version in entry request url").At(entryPath(i, ".request.url"))
			}
		default:
			return nil, bad()
		}
		return o, nil
	case http.MethodDelete:
		if len(segs) != 2 || hasQuery {
			return nil, bad()
		}
		return o, nil
	case http.MethodPost:
		if len(segs) != 1 || hasQuery {
			return nil, bad()
		}
		if e.Request.IfNoneExist != "" {
			if o.cond, err = conditionValues(e.Request.IfNoneExist, "ifNoneExist"); err != nil {
				return nil, fhir.Errorf(fhir.KindInvalid, "invalid ifNoneExist").At(entryPath(i, ".request.ifNoneExist"))
			}
		}
	case http.MethodPut:
		switch {
		case len(segs) == 2 && !hasQuery:
		case len(segs) == 1 && hasQuery:
			if o.query, err = conditionValues(rawQuery, "conditional update url"); err != nil {
				return nil, fhir.Errorf(fhir.KindInvalid, "invalid conditional update url").At(entryPath(i, ".request.url"))
			}
		default:
			return nil, bad()
		}
	default:
		return nil, fhir.Errorf(fhir.KindNotSupported, "entry request method must be GET, POST, PUT or DELETE").At(entryPath(i, ".request.method"))
	}
	// POST and PUT carry a resource.
	if len(bytes.TrimSpace(e.Resource)) == 0 || bytes.Equal(bytes.TrimSpace(e.Resource), []byte("null")) {
		return nil, fhir.Errorf(fhir.KindInvalid, "entry has no resource").At(entryPath(i, ".resource"))
	}
	if o.p, err = a.prepare(e.Resource, o.typ); err != nil {
		return nil, err
	}
	if o.method == http.MethodPut && o.id != "" && o.p.id != o.id {
		return nil, fhir.Errorf(fhir.KindInvalid, "resource id does not match the id in the entry request url").At(entryPath(i, ".resource.id"))
	}
	return o, nil
}

// transaction runs all ops in one store transaction, in the order the spec
// gives (DELETE, POST, PUT, GET), with urn:uuid references rewritten to the
// ids assigned to the entries they name. Any failure fails it all: an entry
// acc denies too (403, nothing written).
func (a *API) transaction(ctx context.Context, tenant, base string, ops []*op, acc *access) ([]*entryResult, error) {
	var results []*entryResult
	err := a.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		results = make([]*entryResult, len(ops)) // fresh on a retry
		ids := map[string]string{}               // fullUrl (urn:uuid:...) -> Type/id
		target := make([]string, len(ops))       // the id each POST/PUT writes ("" for POST matched by ifNoneExist)
		written := map[string]int{}

		for _, o := range ops {
			if o.method != http.MethodDelete {
				continue
			}
			res, err := a.deleteIn(ctx, tx, tenant, o.typ, o.id, o.ifMatch, acc)
			if err != nil {
				return &entryError{o.i, err}
			}
			r := &entryResult{status: http.StatusNoContent}
			if res != nil {
				r.res = res
			}
			results[o.i] = r
		}
		// Assign ids: unconditional entries first, so that conditions may
		// name them.
		for _, o := range ops {
			switch {
			case o.method == http.MethodPost && o.cond == nil:
				target[o.i] = fhir.NewID()
			case o.method == http.MethodPut && o.query == nil:
				target[o.i] = o.id
			default:
				continue
			}
			mapFullURL(ids, o, target[o.i])
		}
		for _, o := range ops {
			switch {
			case o.method == http.MethodPost && o.cond != nil:
				m, err := a.conditionalMatches(ctx, tx, tenant, o.typ, rewriteQuery(o.cond, ids), acc)
				if err != nil {
					return &entryError{o.i, err}
				}
				switch len(m) {
				case 0:
					target[o.i] = fhir.NewID()
					mapFullURL(ids, o, target[o.i])
				case 1:
					results[o.i] = &entryResult{status: http.StatusOK, res: m[0], matched: true}
					mapFullURL(ids, o, m[0].ID)
				default:
					return &entryError{o.i, fhir.Errorf(fhir.KindPreconditionFailed, "ifNoneExist matches more than one resource").WithCode(fhir.IssueMultipleMatches)}
				}
			case o.method == http.MethodPut && o.query != nil:
				m, err := a.conditionalMatches(ctx, tx, tenant, o.typ, rewriteQuery(o.query, ids), acc)
				if err != nil {
					return &entryError{o.i, err}
				}
				switch len(m) {
				case 0:
					target[o.i] = o.p.id
					if target[o.i] == "" {
						target[o.i] = fhir.NewID()
					}
				case 1:
					if o.p.id != "" && o.p.id != m[0].ID {
						return &entryError{o.i, fhir.Errorf(fhir.KindInvalid, "resource id does not match the resource the condition found").At(entryPath(o.i, ".resource.id"))}
					}
					target[o.i] = m[0].ID
				default:
					return &entryError{o.i, fhir.Errorf(fhir.KindPreconditionFailed, "conditional update matches more than one resource").WithCode(fhir.IssueMultipleMatches)}
				}
				mapFullURL(ids, o, target[o.i])
			}
		}
		// Write POSTs then PUTs.
		for _, method := range []string{http.MethodPost, http.MethodPut} {
			for _, o := range ops {
				if o.method != method || target[o.i] == "" {
					continue
				}
				ref := o.typ + "/" + target[o.i]
				if j, dup := written[ref]; dup {
					return &entryError{o.i, fhir.Errorf(fhir.KindInvalid, "entries %d and %d write the same resource", j, o.i).WithCode(fhir.IssueDuplicate)}
				}
				written[ref] = o.i
				p, err := a.rewritePrepared(o.p, ids)
				if err != nil {
					return &entryError{o.i, err}
				}
				ifMatch := int64(0)
				if method == http.MethodPut {
					ifMatch = o.ifMatch
				}
				// A POST writes a new id: authorized as a create. A PUT
				// is authorized against what it replaces, if anything.
				out, err := a.updateIn(ctx, tx, tenant, p, target[o.i], ifMatch, method == http.MethodPost, acc)
				if err != nil {
					return &entryError{o.i, err}
				}
				st := out.status()
				if method == http.MethodPost {
					st = http.StatusCreated
				}
				results[o.i] = &entryResult{status: st, res: out.res, created: out.created || method == http.MethodPost}
			}
		}
		for _, o := range ops {
			if o.method != http.MethodGet {
				continue
			}
			r, err := a.getEntry(ctx, tx, tenant, base, o, acc)
			if err != nil {
				return &entryError{o.i, err}
			}
			results[o.i] = r
		}
		return nil
	})
	if err != nil {
		var ee *entryError
		if errors.As(err, &ee) {
			return nil, entryFailure(ee.i, ee.err)
		}
		return nil, err
	}
	return results, nil
}

func mapFullURL(ids map[string]string, o *op, id string) {
	if strings.HasPrefix(o.fullURL, "urn:uuid:") || strings.HasPrefix(o.fullURL, "urn:oid:") {
		ids[o.fullURL] = o.typ + "/" + id
	}
}

// rewriteQuery replaces urn:uuid values in a condition with the ids
// assigned in this transaction.
func rewriteQuery(v url.Values, ids map[string]string) url.Values {
	out := url.Values{}
	for k, vals := range v {
		for _, s := range vals {
			if r, ok := ids[s]; ok {
				s = r
			}
			out[k] = append(out[k], s)
		}
	}
	return out
}

// rewritePrepared returns p with every "reference" naming a mapped
// urn:uuid replaced by Type/id, and its index re-extracted.
func (a *API) rewritePrepared(p *prepared, ids map[string]string) (*prepared, error) {
	if len(ids) == 0 || !bytes.Contains(p.body, []byte(`"urn:`)) {
		return p, nil
	}
	body, changed, err := rewriteRefs(p.body, ids)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindInternal, "rewriting references").Wrap(err)
	}
	if !changed {
		return p, nil
	}
	np := &prepared{typ: p.typ, id: p.id, body: body}
	if err := np.extract(a.reg); err != nil {
		return nil, err
	}
	return np, nil
}

// rewriteRefs walks a JSON value and replaces the string value of every
// member named "reference" found in ids, keeping member order.
func rewriteRefs(raw json.RawMessage, ids map[string]string) (json.RawMessage, bool, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return raw, false, nil
	}
	switch t[0] {
	case '{':
		ms, err := fhir.Members(t)
		if err != nil {
			return nil, false, err
		}
		changed := false
		for i, m := range ms {
			if m.Key == "reference" {
				var s string
				if json.Unmarshal(m.Value, &s) == nil {
					if r, ok := ids[s]; ok {
						ms[i].Value, _ = marshal(r)
						changed = true
					}
				}
				continue
			}
			nr, c, err := rewriteRefs(m.Value, ids)
			if err != nil {
				return nil, false, err
			}
			if c {
				ms[i].Value, changed = nr, true
			}
		}
		if !changed {
			return raw, false, nil
		}
		return fhir.EncodeMembers(ms), true, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(t, &items); err != nil {
			return nil, false, err
		}
		changed := false
		for i, it := range items {
			nr, c, err := rewriteRefs(it, ids)
			if err != nil {
				return nil, false, err
			}
			if c {
				items[i], changed = nr, true
			}
		}
		if !changed {
			return raw, false, nil
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(it)
		}
		b.WriteByte(']')
		return b.Bytes(), true, nil
	}
	return raw, false, nil
}

// getEntry runs a GET entry with rd: read, vread or search. With an error
// it returns a result naming only what the audit event of the entry needs
// (the patient of the search, the denied resource): never send it.
func (a *API) getEntry(ctx context.Context, rd fhir.Reader, tenant, base string, o *op, acc *access) (*entryResult, error) {
	if o.search {
		b, patient, err := a.searchBundle(ctx, rd, tenant, base, o.typ, o.query, false, acc)
		if err != nil {
			return &entryResult{patient: patient}, err
		}
		return &entryResult{status: http.StatusOK, body: b, read: true, patient: patient}, nil
	}
	res, err := acc.readChecked(ctx, rd, tenant, o.typ, o.id, o.vid)
	if err != nil {
		return &entryResult{res: res}, err // res for the audit event only
	}
	return &entryResult{status: http.StatusOK, res: res, read: true}, nil
}

// batch runs each op on its own; a failed entry gets its status and
// OperationOutcome in the response and does not affect the others. Each
// entry's read or denial is recorded (recordEntry); the error is a failure
// to record, which fails the whole batch.
func (a *API) batch(c *echo.Context, base string, ops []*op, opErrs []error, acc *access) ([]*entryResult, error) {
	ctx, tenant := c.Request().Context(), c.Param("tenant")
	results := make([]*entryResult, len(ops))
	for i, o := range ops {
		err := opErrs[i]
		var r *entryResult
		if err == nil {
			r, err = a.batchEntry(ctx, tenant, base, o, acc)
			if rerr := a.recordEntry(ctx, tenant, requestIDOf(c), o, r, err); rerr != nil {
				return nil, rerr
			}
		}
		if err != nil {
			fe, status := asFHIRError(err)
			id := requestIDOf(c)
			if status >= 500 {
				a.log.Error("fhir batch entry failed", "tenant", tenant, "method", c.Request().Method,
					"route", c.Path(), "entry", i, "status", status, "correlation_id", id, "error", err.Error())
			}
			r = &entryResult{status: status, outcome: outcomeJSON(outcomeFor(fe, id))}
		}
		results[i] = r
	}
	return results, nil
}

func (a *API) batchEntry(ctx context.Context, tenant, base string, o *op, acc *access) (*entryResult, error) {
	if o.method == http.MethodGet {
		return a.getEntry(ctx, a.store, tenant, base, o, acc)
	}
	var r *entryResult
	err := a.store.Tx(ctx, tenant, func(tx fhir.Tx) error {
		switch o.method {
		case http.MethodDelete:
			res, err := a.deleteIn(ctx, tx, tenant, o.typ, o.id, o.ifMatch, acc)
			if err != nil {
				return err
			}
			r = &entryResult{status: http.StatusNoContent, res: res}
			return nil
		case http.MethodPost:
			out, err := a.createIn(ctx, tx, tenant, o.p, o.cond, acc)
			if err != nil {
				return err
			}
			r = &entryResult{status: out.status(), res: out.res, created: out.created, matched: out.matched}
			return nil
		default: // PUT
			var out writeOutcome
			var err error
			if o.query != nil {
				out, err = a.conditionalUpdateIn(ctx, tx, tenant, o.p, o.query, o.ifMatch, acc)
			} else {
				out, err = a.updateIn(ctx, tx, tenant, o.p, o.id, o.ifMatch, false, acc)
			}
			if err != nil {
				return err
			}
			r = &entryResult{status: out.status(), res: out.res, created: out.created}
			return nil
		}
	})
	return r, err
}

// responseEntry is the Bundle entry reporting one result.
func responseEntry(base string, r *entryResult, pref prefer) *bundleEntry {
	e := &bundleEntry{Response: &entryResponse{Status: strconv.Itoa(r.status) + " " + http.StatusText(r.status)}}
	if r.outcome != nil {
		e.Response.Outcome = r.outcome
		return e
	}
	if r.body != nil {
		e.Resource = r.body
		return e
	}
	if r.res == nil {
		return e
	}
	e.Response.Etag = r.res.ETag()
	e.Response.LastModified = r.res.LastUpdated.UTC().Format(fhir.TimeFormat)
	if r.res.Deleted || r.status == http.StatusNoContent {
		return e
	}
	e.FullURL = base + "/" + r.res.Ref()
	if r.created {
		e.Response.Location = r.res.Ref() + "/_history/" + strconv.FormatInt(r.res.VersionID, 10)
	}
	if pref.Return != "minimal" || r.read {
		e.Resource = rawJSON(r.res.Body)
	}
	return e
}
