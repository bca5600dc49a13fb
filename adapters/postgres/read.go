package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// reader implements fhir.Reader (and History) over a scope. Searches are
// compiled by server/storesql and carried out by its Run* functions.
type reader struct {
	sc     scope
	tenant string
}

// scopeFor returns the reader for tenant outside a transaction. A tenant
// already known to be registered is not checked again (nor marked known
// again: a sync.Map store per search is a write to shared memory).
func (s *Store) scopeFor(tenant string) (*reader, error) {
	if !fhir.ValidTenant(tenant) {
		return nil, tenantNotFound()
	}
	_, known := s.known.Load(tenant)
	return &reader{sc: &poolScope{s: s, tenant: tenant, checked: known}, tenant: tenant}, nil
}

const (
	readSQL = "SELECT " + storesql.Columns + " FROM resources WHERE tenant = $1 AND type = $2 AND id = $3"
	// vreadSQL finds a version where it lives: the current one in
	// resources, a superseded one in resource_versions. Two primary-key
	// probes; at most one matches.
	vreadSQL = "SELECT " + storesql.Columns + " FROM resources WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $4" +
		" UNION ALL SELECT " + storesql.Columns + " FROM resource_versions WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $4 LIMIT 1"
)

// one runs a query selecting at most one row of storesql.Columns; nil when
// there is none.
func (r *reader) one(ctx context.Context, sql string, args ...any) (*fhir.Resource, error) {
	var res *fhir.Resource
	var scanErr error
	b := &pgx.Batch{}
	// The callback never fails for "no rows": a failing callback makes pgx
	// drop its cached statements.
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
		res, scanErr = storesql.ScanResource(row)
		if errors.Is(scanErr, pgx.ErrNoRows) {
			res, scanErr = nil, nil
		}
		return nil
	})
	if err := r.sc.send(ctx, b); err != nil {
		return nil, internal("reading resource", err)
	}
	if scanErr != nil {
		return nil, internal("reading resource", scanErr)
	}
	return res, nil
}

// Read returns the current version: KindNotFound, or KindGone for a delete.
func (r *reader) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	res, err := r.one(ctx, readSQL, tenant, typ, id)
	if err != nil {
		return nil, err
	}
	return liveOrErr(res, typ, id)
}

// liveOrErr turns the current row of typ/id (nil when there is none) into
// Read's answer.
func liveOrErr(res *fhir.Resource, typ, id string) (*fhir.Resource, error) {
	if res == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "resource %s/%s not found", typ, id)
	}
	if res.Deleted {
		return nil, fhir.Errorf(fhir.KindGone, "resource %s/%s is deleted", typ, id)
	}
	return res, nil
}

// readManySQL selects the current rows of several ids of one type.
const readManySQL = "SELECT " + storesql.Columns + " FROM resources WHERE tenant = $1 AND type = $2 AND id = ANY($3::text[])"

// ReadMany implements fhir.ManyReader: one query.
func (r *reader) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return r.query(ctx, readManySQL, []any{tenant, typ, ids})
}

// VRead returns one version: KindNotFound, or KindGone for a delete.
func (r *reader) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	res, err := r.one(ctx, vreadSQL, tenant, typ, id, version)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "version %d of %s/%s not found", version, typ, id)
	}
	if res.Deleted {
		return nil, fhir.Errorf(fhir.KindGone, "version %d of %s/%s is deleted", version, typ, id)
	}
	return res, nil
}

// query is a storesql.QueryFunc: one batch (one round trip) per query.
func (r *reader) query(ctx context.Context, sql string, args []any) ([]*fhir.Resource, error) {
	var out []*fhir.Resource
	b := &pgx.Batch{}
	queueSearch(b, sql, args).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			res, err := storesql.ScanResource(rows)
			if err != nil {
				return err
			}
			out = append(out, res)
		}
		return rows.Err()
	})
	if err := r.sc.send(ctx, b); err != nil {
		return nil, internal("querying resources", err)
	}
	return out, nil
}

// Pinning a statement's generic plan (see storesql.GenericPlanHint), for
// that statement only: the batch it travels in is one transaction, and
// plan_cache_mode is set back to what it was (the server's setting,
// whatever that is) before the next statement.
const (
	genericPlanOnSQL = `SELECT set_config('pulsewire.plan_cache_mode', current_setting('plan_cache_mode'), true),
		set_config('plan_cache_mode', 'force_generic_plan', true)`
	genericPlanOffSQL = "SELECT set_config('plan_cache_mode', current_setting('pulsewire.plan_cache_mode'), true)"
)

// queueSearch queues a compiled search, with its generic plan pinned when
// the compiler marks it so.
func queueSearch(b *pgx.Batch, sql string, args []any) *pgx.QueuedQuery {
	if !strings.HasPrefix(sql, storesql.GenericPlanHint) {
		return b.Queue(sql, args...)
	}
	b.Queue(genericPlanOnSQL)
	q := b.Queue(sql, args...)
	b.Queue(genericPlanOffSQL)
	return q
}

// queryMany is a storesql.QueryManyFunc: every query in one batch (one
// round trip, one implicit transaction, one set_config).
func (r *reader) queryMany(ctx context.Context, sqls []string, args [][]any) ([][]*fhir.Resource, error) {
	out := make([][]*fhir.Resource, len(sqls))
	b := &pgx.Batch{}
	for i := range sqls {
		queueSearch(b, sqls[i], args[i]).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				res, err := storesql.ScanResource(rows)
				if err != nil {
					return err
				}
				out[i] = append(out[i], res)
			}
			return rows.Err()
		})
	}
	if err := r.sc.send(ctx, b); err != nil {
		return nil, internal("querying resources", err)
	}
	return out, nil
}

// count is a storesql.CountFunc.
func (r *reader) count(ctx context.Context, sql string, args []any) (int, error) {
	var n int64
	b := &pgx.Batch{}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
	if err := r.sc.send(ctx, b); err != nil {
		return 0, internal("counting resources", err)
	}
	return int(n), nil
}

// Search runs q (see fhir.Reader). KindInvalid / KindNotSupported from the
// compiler for what it cannot run.
func (r *reader) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	return storesql.RunSearch(ctx, dialect, tenant, q, r.query, r.count)
}

// SearchMany implements fhir.ManySearcher.
func (r *reader) SearchMany(ctx context.Context, tenant string, qs []*fhir.Query) ([]*fhir.SearchResult, error) {
	return storesql.RunSearchMany(ctx, dialect, tenant, qs, r.queryMany, r.query, r.count)
}

// LastN implements Observation/$lastn (see fhir.Reader).
func (r *reader) LastN(ctx context.Context, tenant string, q *fhir.Query, max int) ([]*fhir.Resource, error) {
	return storesql.RunLastN(ctx, dialect, tenant, q, max, r.query)
}

// History lists versions newest first (see fhir.Store).
func (r *reader) History(ctx context.Context, tenant string, hq *fhir.HistoryQuery) (*fhir.HistoryResult, error) {
	return storesql.RunHistory(ctx, dialect, tenant, hq, r.query, r.count)
}

// Read implements fhir.Reader. Reads of a tenant known to be registered go
// through the read coalescer (see group.go).
func (s *Store) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	if _, known := s.known.Load(tenant); !known {
		r, err := s.scopeFor(tenant)
		if err != nil {
			return nil, err
		}
		return r.Read(ctx, tenant, typ, id)
	}
	res, err := s.groupRead(tenant, typ, id)
	if err != nil {
		return nil, internal("reading resource", err)
	}
	return liveOrErr(res, typ, id)
}

// ReadMany implements fhir.ManyReader.
func (s *Store) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.ReadMany(ctx, tenant, typ, ids)
}

// VRead implements fhir.Reader.
func (s *Store) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.VRead(ctx, tenant, typ, id, version)
}

// Search implements fhir.Reader. Each compiled query (count, page, each
// include) is one round trip in its own implicit transaction.
func (s *Store) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.Search(ctx, tenant, q)
}

// SearchMany implements fhir.ManySearcher: the searches that are one query
// each share one round trip.
func (s *Store) SearchMany(ctx context.Context, tenant string, qs []*fhir.Query) ([]*fhir.SearchResult, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.SearchMany(ctx, tenant, qs)
}

// LastN implements fhir.Reader.
func (s *Store) LastN(ctx context.Context, tenant string, q *fhir.Query, max int) ([]*fhir.Resource, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.LastN(ctx, tenant, q, max)
}

// History implements fhir.Store.
func (s *Store) History(ctx context.Context, tenant string, hq *fhir.HistoryQuery) (*fhir.HistoryResult, error) {
	r, err := s.scopeFor(tenant)
	if err != nil {
		return nil, err
	}
	return r.History(ctx, tenant, hq)
}
