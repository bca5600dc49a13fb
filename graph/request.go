package graph

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/pulsewire/pulsewire/graph/internal/model"
	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/search"
)

// request is the state of one subgraph request: who asks (the Policy), in
// which tenant, and the loaders that batch its reads.
type request struct {
	ctx    context.Context
	tenant string
	policy Policy
	store  Store
	reg    *search.Registry
	limits *Limits
	now    time.Time

	mu       sync.Mutex
	byID     map[string]*loader[string, *fhir.Resource] // by resource type
	byDevice *loader[string, *assocs]                   // current associations of devices
	byPat    *loader[string, *assocs]                   // current associations of patients

	returned atomic.Int64 // resources returned so far (Limits.MaxResources)
}

type requestKey struct{}

func withRequest(ctx context.Context, rq *request) context.Context {
	return context.WithValue(ctx, requestKey{}, rq)
}

// requestOf returns the request state the handler put in ctx.
func requestOf(ctx context.Context) (*request, error) {
	rq, ok := ctx.Value(requestKey{}).(*request)
	if !ok {
		return nil, fhir.Errorf(fhir.KindInternal, "graphql request without its state")
	}
	return rq, nil
}

// admit counts n resources about to be returned against MaxResources.
func (rq *request) admit(n int) error {
	if n == 0 {
		return nil
	}
	if total := rq.returned.Add(int64(n)); total > int64(rq.limits.MaxResources) {
		return limitf(CodeResultTooLarge, "the response would hold more than %d resources; ask for fewer (first, max) or fewer fields", rq.limits.MaxResources)
	}
	return nil
}

// parse turns search parameters into a query exactly as the REST API does
// (server/search), in strict mode: an unknown parameter is an error.
func (rq *request) parse(typ string, params url.Values, maxCount int) (*fhir.Query, error) {
	q, _, err := rq.reg.Parse(typ, params, search.ParseOptions{Strict: true, DefaultCount: maxCount, MaxCount: maxCount})
	if err != nil {
		return nil, fmt.Errorf("parsing %s search: %w", typ, err)
	}
	return q, nil
}

// page is one page of a search, filtered by the policy.
type page struct {
	q         *fhir.Query // as narrowed by the policy
	exact     bool        // q selects exactly what the caller may see
	kept      []*fhir.Resource
	positions []int // position of each kept resource in the unfiltered page
	scanned   int   // resources the store returned
	hasMore   bool
	withheld  []*Denied
	// heldRes are the withheld resources (in the order of withheld), for
	// routing a denial to the field it concerns; never returned.
	heldRes []*fhir.Resource
	// included are the _include targets, unfiltered (see primeReads).
	included []*fhir.Resource
}

// search runs a search of typ through the policy: decided and narrowed
// before it runs, filtered after. Withheld resources are reported as errors
// on the field of ctx.
func (rq *request) search(ctx context.Context, action Action, typ string, params url.Values, maxCount int) (*page, error) {
	q, err := rq.parse(typ, params, maxCount)
	if err != nil {
		return nil, err
	}
	p, err := rq.run(ctx, action, q)
	if err != nil {
		return nil, err
	}
	reportWithheld(ctx, p.withheld)
	if err := rq.admit(len(p.kept)); err != nil {
		return nil, err
	}
	return p, nil
}

// run decides, narrows, runs and filters q; it reports nothing.
func (rq *request) run(ctx context.Context, action Action, q *fhir.Query) (*page, error) {
	exact, err := rq.policy.Search(ctx, action, q)
	if err != nil {
		return nil, err
	}
	res, err := rq.store.Search(ctx, rq.tenant, q)
	if err != nil {
		return nil, fmt.Errorf("searching %s: %w", q.Type, err)
	}
	return rq.filter(ctx, action, q, exact, res)
}

// runMany is run for several queries, which the store runs at once (one
// round trip for those that are one query each); an error fails them all.
func (rq *request) runMany(ctx context.Context, action Action, qs []*fhir.Query) ([]*page, error) {
	if len(qs) == 1 {
		p, err := rq.run(ctx, action, qs[0])
		return []*page{p}, err
	}
	exact := make([]bool, len(qs))
	types := make([]string, len(qs))
	for i, q := range qs {
		var err error
		if exact[i], err = rq.policy.Search(ctx, action, q); err != nil {
			return nil, err
		}
		types[i] = q.Type
	}
	res, err := rq.store.SearchMany(ctx, rq.tenant, qs)
	if err != nil {
		return nil, fmt.Errorf("searching %s: %w", strings.Join(types, ", "), err)
	}
	pages := make([]*page, len(qs))
	for i, q := range qs {
		if pages[i], err = rq.filter(ctx, action, q, exact[i], res[i]); err != nil {
			return nil, err
		}
	}
	return pages, nil
}

// filter makes the page of a search's result, filtered by the policy.
func (rq *request) filter(ctx context.Context, action Action, q *fhir.Query, exact bool, res *fhir.SearchResult) (*page, error) {
	kept, withheld, err := rq.policy.Filter(ctx, action, res.Resources)
	if err != nil {
		return nil, fmt.Errorf("filtering %s: %w", q.Type, err)
	}
	p := &page{q: q, exact: exact, kept: kept, scanned: len(res.Resources), hasMore: res.HasMore, withheld: withheld, included: res.Included}
	p.positions = make([]int, 0, len(kept))
	k := 0
	var byID map[string]*fhir.Resource // the withheld, when there are
	for i, r := range res.Resources {
		if k < len(kept) && kept[k] == r {
			p.positions = append(p.positions, i)
			k++
			continue
		}
		if byID == nil {
			byID = map[string]*fhir.Resource{}
		}
		byID[r.ID] = r
	}
	for _, d := range withheld {
		p.heldRes = append(p.heldRes, byID[d.ID])
	}
	return p, nil
}

// reportWithheld adds the errors that say a list left resources out.
func reportWithheld(ctx context.Context, ds []*Denied) {
	for _, err := range withheldErrors(ds) {
		graphql.AddError(ctx, err)
	}
}

// total returns the function that counts all matches of p's query, or nil
// when the count cannot be exact for the caller (the policy filters after
// the search): a count of what the caller may not see would disclose it.
func (rq *request) total(p *page) func(context.Context) (*int, error) {
	if !p.exact {
		return func(context.Context) (*int, error) { return nil, nil }
	}
	cq := *p.q
	cq.CountOnly, cq.Total, cq.Offset, cq.Count = true, true, 0, 0
	cq.Sort, cq.Include, cq.RevInclude = nil, nil, nil
	return func(ctx context.Context) (*int, error) {
		res, err := rq.store.Search(ctx, rq.tenant, &cq)
		if err != nil {
			return nil, fmt.Errorf("counting %s: %w", cq.Type, err)
		}
		if res.Total < 0 {
			return nil, nil
		}
		n := res.Total
		return &n, nil
	}
}

// read returns one resource by id through the request's batch loader of
// its type, as a read the policy allows; *Denied or KindNotFound otherwise.
func (rq *request) read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.KindInvalid, "%s id is not a valid FHIR id", typ)
	}
	r, err := rq.byIDLoader(typ).Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := rq.admit(1); err != nil {
		return nil, err
	}
	return r, nil
}

func (rq *request) byIDLoader(typ string) *loader[string, *fhir.Resource] {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	l := rq.byID[typ]
	if l == nil {
		l = newLoader(rq.ctx, rq.limits.BatchWait, rq.limits.BatchSize, rq.fetchByID(typ))
		rq.byID[typ] = l
	}
	return l
}

// primeReads makes resources a search included (_include) available to
// read without another store call, once the policy allows them as reads;
// the others are left to read (which reports their denial).
func (rq *request) primeReads(ctx context.Context, rs []*fhir.Resource) error {
	if len(rs) == 0 {
		return nil
	}
	kept, _, err := rq.policy.Filter(ctx, ActionRead, rs)
	if err != nil {
		return fmt.Errorf("filtering included resources: %w", err)
	}
	for _, r := range kept {
		rq.byIDLoader(r.Type).prime(r.ID, r)
	}
	return nil
}

// fetchByID reads a batch of resources of typ in one store call — a Read
// for one id, which the PostgreSQL store answers in a group with the reads
// of other requests, a ReadMany for several — and filters them as reads. A
// deleted resource is not found, as in a search.
func (rq *request) fetchByID(typ string) func(context.Context, []string) ([]*fhir.Resource, []error) {
	return func(ctx context.Context, ids []string) ([]*fhir.Resource, []error) {
		out := make([]*fhir.Resource, len(ids))
		errs := make([]error, len(ids))
		fail := func(err error) ([]*fhir.Resource, []error) {
			for i := range errs {
				errs[i] = err
			}
			return out, errs
		}
		var rs []*fhir.Resource
		if len(ids) == 1 {
			r, err := rq.store.Read(ctx, rq.tenant, typ, ids[0])
			switch {
			case err == nil:
				rs = []*fhir.Resource{r}
			case fhir.IsKind(err, fhir.KindNotFound), fhir.IsKind(err, fhir.KindGone):
			default:
				return fail(fmt.Errorf("reading %s by id: %w", typ, err))
			}
		} else {
			all, err := rq.store.ReadMany(ctx, rq.tenant, typ, ids)
			if err != nil {
				return fail(fmt.Errorf("reading %s by id: %w", typ, err))
			}
			rs = all[:0]
			for _, r := range all {
				if !r.Deleted {
					rs = append(rs, r)
				}
			}
		}
		kept, withheld, err := rq.policy.Filter(ctx, ActionRead, rs)
		if err != nil {
			return fail(fmt.Errorf("filtering %s: %w", typ, err))
		}
		found := make(map[string]*fhir.Resource, len(kept))
		for _, r := range kept {
			found[r.ID] = r
		}
		deny := map[string]*Denied{}
		for _, d := range withheld {
			deny[d.ID] = d
		}
		for i, id := range ids {
			switch {
			case found[id] != nil:
				out[i] = found[id]
			case deny[id] != nil:
				errs[i] = deny[id]
			default:
				errs[i] = fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
			}
		}
		return out, errs
	}
}

// convert turns stored resources into their models.
func convert[T model.Resource](rs []*fhir.Resource) ([]T, error) {
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		t, err := convertOne[T](r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func convertOne[T model.Resource](r *fhir.Resource) (T, error) {
	var zero T
	m, err := model.New(r)
	if err != nil {
		return zero, err
	}
	t, ok := m.(T)
	if !ok {
		return zero, fhir.Errorf(fhir.KindInternal, "a %s where another type was expected", r.Type)
	}
	return t, nil
}

// Cursors: the position after an element in the unfiltered (but narrowed)
// search, so that a page that filtering shortened resumes where the search
// left off. They are opaque to clients.

func encodeCursor(pos int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(pos)))
}

func decodeCursor(s *string) (int, error) {
	if s == nil || *s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	if err == nil && len(b) > 1 && b[0] == 'o' {
		if n, err := strconv.Atoi(string(b[1:])); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fhir.Errorf(fhir.KindInvalid, "after is not a cursor of this list")
}

// pageSize checks first against the limits.
func (rq *request) pageSize(first *int, def int) (int, error) {
	if first == nil {
		return def, nil
	}
	if *first < 0 || *first > rq.limits.MaxPageSize {
		return 0, limitf(CodeBadUserInput, "first must be between 0 and %d", rq.limits.MaxPageSize)
	}
	return *first, nil
}

// paging sets _count and _offset for a connection and returns the offset.
func (rq *request) paging(params url.Values, first *int, after *string) (int, error) {
	n, err := rq.pageSize(first, rq.limits.DefaultPageSize)
	if err != nil {
		return 0, err
	}
	off, err := decodeCursor(after)
	if err != nil {
		return 0, err
	}
	params.Set("_count", strconv.Itoa(n))
	if off > 0 {
		params.Set("_offset", strconv.Itoa(off))
	}
	return off, nil
}

// pageInfo builds the page info and each kept resource's cursor.
func pageInfo(p *page, offset int) (*model.PageInfo, []string) {
	cursors := make([]string, len(p.positions))
	for i, pos := range p.positions {
		cursors[i] = encodeCursor(offset + pos + 1)
	}
	pi := &model.PageInfo{HasNextPage: p.hasMore, HasPreviousPage: offset > 0}
	if len(cursors) > 0 {
		pi.StartCursor, pi.EndCursor = &cursors[0], &cursors[len(cursors)-1]
	}
	if p.hasMore && (len(cursors) == 0 || p.positions[len(p.positions)-1] != p.scanned-1) {
		// The page ended with withheld resources: resume after them.
		end := encodeCursor(offset + p.scanned)
		pi.EndCursor = &end
	}
	return pi, cursors
}
