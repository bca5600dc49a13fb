package storesql

import (
	"context"

	"github.com/pulsewire/pulsewire/server/fhir"
)

// QueryFunc runs one compiled query selecting Columns and returns its rows.
// Stores pass a closure over their connection or transaction.
type QueryFunc func(ctx context.Context, sql string, args []any) ([]*fhir.Resource, error)

// CountFunc runs one compiled COUNT query.
type CountFunc func(ctx context.Context, sql string, args []any) (int, error)

// RunSearch carries out fhir.Reader.Search with the compiled queries: the
// page (dropping the extra row into HasMore), the total when asked, and the
// includes, each included resource once and none that is on the page.
func RunSearch(ctx context.Context, d Dialect, tenant string, q *fhir.Query, query QueryFunc, count CountFunc) (*fhir.SearchResult, error) {
	res := &fhir.SearchResult{Total: -1}
	if q.Total || q.CountOnly {
		s, a, err := Count(d, tenant, q)
		if err != nil {
			return nil, err
		}
		if res.Total, err = count(ctx, s, a); err != nil {
			return nil, err
		}
	}
	if q.CountOnly {
		return res, nil
	}
	s, a, err := Search(d, tenant, q)
	if err != nil {
		return nil, err
	}
	page, err := query(ctx, s, a)
	if err != nil {
		return nil, err
	}
	res.Resources, res.HasMore = pageOf(q, page)
	page = res.Resources
	if len(page) == 0 {
		return res, nil
	}
	seen := make(map[string]bool, len(page))
	for _, r := range page {
		seen[r.Ref()] = true
	}
	add := func(rs []*fhir.Resource) {
		for _, r := range rs {
			if !seen[r.Ref()] {
				seen[r.Ref()] = true
				res.Included = append(res.Included, r)
			}
		}
	}
	for _, inc := range q.Include {
		s, a, err := Include(d, tenant, inc, page)
		if err != nil {
			return nil, err
		}
		rs, err := query(ctx, s, a)
		if err != nil {
			return nil, err
		}
		add(rs)
	}
	for _, inc := range q.RevInclude {
		s, a, err := RevInclude(d, tenant, inc, page)
		if err != nil {
			return nil, err
		}
		rs, err := query(ctx, s, a)
		if err != nil {
			return nil, err
		}
		add(rs)
	}
	return res, nil
}

// pageOf splits the rows of a page query (Search asks for one more than
// q.Count) into the page and whether there are more.
func pageOf(q *fhir.Query, rows []*fhir.Resource) ([]*fhir.Resource, bool) {
	if n := max(q.Count, 0); len(rows) > n {
		return rows[:n], true
	}
	return rows, false
}

// QueryManyFunc runs several compiled queries selecting Columns at once and
// returns the rows of each, in order.
type QueryManyFunc func(ctx context.Context, sqls []string, args [][]any) ([][]*fhir.Resource, error)

// RunSearchMany carries out fhir.ManySearcher.SearchMany: the searches
// that are one query each (no total, no includes) go to queryMany
// together, the others run as RunSearch runs them.
func RunSearchMany(ctx context.Context, d Dialect, tenant string, qs []*fhir.Query, queryMany QueryManyFunc, query QueryFunc, count CountFunc) ([]*fhir.SearchResult, error) {
	out := make([]*fhir.SearchResult, len(qs))
	var (
		sqls []string
		args [][]any
		at   []int // the index in qs of each of sqls
	)
	for i, q := range qs {
		if q.Total || q.CountOnly || len(q.Include) > 0 || len(q.RevInclude) > 0 {
			res, err := RunSearch(ctx, d, tenant, q, query, count)
			if err != nil {
				return nil, err
			}
			out[i] = res
			continue
		}
		s, a, err := Search(d, tenant, q)
		if err != nil {
			return nil, err
		}
		sqls, args, at = append(sqls, s), append(args, a), append(at, i)
	}
	if len(sqls) == 0 {
		return out, nil
	}
	pages, err := queryMany(ctx, sqls, args)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		res := &fhir.SearchResult{Total: -1}
		res.Resources, res.HasMore = pageOf(qs[i], pages[j])
		out[i] = res
	}
	return out, nil
}

// RunLastN carries out fhir.Reader.LastN: the compiled query's rows with
// each resource kept once, at its first (code group) position.
func RunLastN(ctx context.Context, d Dialect, tenant string, q *fhir.Query, maxN int, query QueryFunc) ([]*fhir.Resource, error) {
	s, a, err := LastN(d, tenant, q, maxN)
	if err != nil {
		return nil, err
	}
	rs, err := query(ctx, s, a)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(rs))
	out := rs[:0]
	for _, r := range rs {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// RunHistory carries out fhir.Store.History: one page, newest first, with
// the total number of versions selected.
func RunHistory(ctx context.Context, d Dialect, tenant string, hq *fhir.HistoryQuery, query QueryFunc, count CountFunc) (*fhir.HistoryResult, error) {
	s, a, err := History(d, tenant, hq)
	if err != nil {
		return nil, err
	}
	vs, err := query(ctx, s, a)
	if err != nil {
		return nil, err
	}
	res := &fhir.HistoryResult{}
	if n := max(hq.Count, 0); len(vs) > n {
		vs, res.HasMore = vs[:n], true
	}
	res.Versions = vs
	s, a, err = HistoryCount(d, tenant, hq)
	if err != nil {
		return nil, err
	}
	if res.Total, err = count(ctx, s, a); err != nil {
		return nil, err
	}
	return res, nil
}
