// Package sqlite is Pulsewire's embedded default resource store: a
// fhir.Store on one SQLite database file (modernc.org/sqlite, pure Go), with
// the same tables as adapters/postgres and the same SQL compiler
// (server/storesql). It serves the FHIR REST interactions of
// https://hl7.org/fhir/R4/http.html for a single process.
//
// Writes are serialized: one writer connection, transactions begun with
// BEGIN IMMEDIATE. Reads outside a transaction use a separate pool and see
// the last committed state (WAL mode).
//
// Only the composition root (server/cmd) and tests import this package.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

var dialect = storesql.SQLite

// Store is a fhir.Store on one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	w *sql.DB // exactly one connection: the writer
	r *sql.DB // read pool

	mu      sync.RWMutex
	tenants map[string]bool // registered tenants seen so far (tenants are never removed)

	hooks []fhir.WriteHook // see AddWriteHook
}

var (
	_ fhir.Store        = (*Store)(nil)
	_ fhir.Hooked       = (*Store)(nil)
	_ fhir.ManyReader   = (*Store)(nil)
	_ fhir.ManyReader   = (*tx)(nil)
	_ fhir.ManySearcher = (*Store)(nil)
)

// AddWriteHook adds a hook run inside every Put and Delete (see
// fhir.WriteHook). Call it before the store is used.
func (s *Store) AddWriteHook(h fhir.WriteHook) { s.hooks = append(s.hooks, h) }

// Open opens (creating if needed) the database file at path and applies the
// embedded migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		if txlock != "" {
			q.Set("_txlock", txlock)
		}
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, tenants: map[string]bool{}}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("")+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening sqlite readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	return s, nil
}

// migrate applies, in name order, every embedded migration not yet recorded
// in schema_migrations, each in its own transaction.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("listing migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", name, err)
		}
		err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, name, storesql.Micros(storesql.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", name, err)
		}
	}
	return nil
}

// inWriteTx runs fn in a transaction on the writer connection, rolling back
// when fn returns an error or panics.
func (s *Store) inWriteTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	committed = true
	return nil
}

// internal wraps a driver error as KindInternal (the client sees only
// what), or as KindUnavailable when SQLite could not get a resource for now
// (see transient): a 503 the client retries, nothing written.
func internal(what string, err error) error {
	if transient(err) {
		return fhir.Errorf(fhir.KindUnavailable, "the database is busy; try again shortly").Wrap(fmt.Errorf("%s: %w", what, err))
	}
	return fhir.Errorf(fhir.KindInternal, "%s", what).Wrap(err)
}

// transient reports whether err is SQLite failing for want of a resource
// that may be free a moment later (primary result codes, extended codes
// included): another connection held the database past busy_timeout
// (SQLITE_BUSY, SQLITE_LOCKED), memory ran out (SQLITE_NOMEM), or the disk
// is full (SQLITE_FULL). The transaction was rolled back in each case.
func transient(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_FULL:
		return true
	}
	return false
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks the database answers on the read pool (not the writer, which
// a long transaction may hold).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return internal("pinging sqlite", err)
	}
	return nil
}

// EnsureTenant registers a tenant (idempotent). KindInvalid for a name
// fhir.ValidTenant rejects.
func (s *Store) EnsureTenant(ctx context.Context, tenant string) error {
	if !fhir.ValidTenant(tenant) {
		return fhir.Errorf(fhir.KindInvalid, "invalid tenant name")
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`,
			tenant, storesql.Micros(storesql.Now()))
		return err
	})
	if err != nil {
		return internal("registering tenant", err)
	}
	s.mu.Lock()
	s.tenants[tenant] = true
	s.mu.Unlock()
	return nil
}

// TenantExists reports whether tenant is registered.
func (s *Store) TenantExists(ctx context.Context, tenant string) (bool, error) {
	return s.tenantExists(ctx, s.r, tenant)
}

func (s *Store) tenantExists(ctx context.Context, q querier, tenant string) (bool, error) {
	s.mu.RLock()
	ok := s.tenants[tenant]
	s.mu.RUnlock()
	if ok {
		return true, nil
	}
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, tenant).Scan(&n); err != nil {
		return false, internal("looking up tenant", err)
	}
	if n == 0 {
		return false, nil
	}
	s.mu.Lock()
	s.tenants[tenant] = true
	s.mu.Unlock()
	return true, nil
}

// checkTenant returns KindNotFound "unknown tenant" for an unregistered tenant.
func (s *Store) checkTenant(ctx context.Context, q querier, tenant string) error {
	ok, err := s.tenantExists(ctx, q, tenant)
	if err != nil {
		return err
	}
	if !ok {
		return fhir.Errorf(fhir.KindNotFound, "unknown tenant")
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// reader implements fhir.Reader over a querier for one tenant check policy.
type reader struct {
	s *Store
	q querier
}

func (rd reader) query(ctx context.Context, query string, args []any) ([]*fhir.Resource, error) {
	rows, err := rd.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, internal("querying resources", err)
	}
	defer rows.Close()
	var out []*fhir.Resource
	for rows.Next() {
		r, err := storesql.ScanResource(rows)
		if err != nil {
			return nil, internal("reading resource row", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("reading resource rows", err)
	}
	return out, nil
}

func (rd reader) count(ctx context.Context, query string, args []any) (int, error) {
	var n int
	if err := rd.q.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, internal("counting", err)
	}
	return n, nil
}

func (rd reader) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	if err := rd.s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	row := rd.q.QueryRowContext(ctx, `SELECT `+storesql.Columns+` FROM resources WHERE tenant = ? AND type = ? AND id = ?`, tenant, typ, id)
	r, err := storesql.ScanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s not found", typ, id)
	}
	if err != nil {
		return nil, internal("reading resource", err)
	}
	if r.Deleted {
		return nil, fhir.Errorf(fhir.KindGone, "%s/%s is deleted", typ, id)
	}
	return r, nil
}

// readManyChunk bounds the ids of one query (SQLite's host parameters).
const readManyChunk = 500

// ReadMany returns the current rows of typ among ids, tombstones included.
func (rd reader) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	var out []*fhir.Resource
	for len(ids) > 0 {
		n := min(len(ids), readManyChunk)
		q := `SELECT ` + storesql.Columns + ` FROM resources WHERE tenant = ? AND type = ? AND id IN (?` + strings.Repeat(", ?", n-1) + `)`
		args := make([]any, 0, n+2)
		args = append(args, tenant, typ)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		rs, err := rd.query(ctx, q, args)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		ids = ids[n:]
	}
	return out, nil
}

func (rd reader) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	if err := rd.s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	// The current version lives in resources, superseded ones in
	// resource_versions: one primary-key probe of each.
	row := rd.q.QueryRowContext(ctx, `SELECT `+storesql.Columns+` FROM resources WHERE tenant = ?1 AND type = ?2 AND id = ?3 AND version = ?4
		UNION ALL SELECT `+storesql.Columns+` FROM resource_versions WHERE tenant = ?1 AND type = ?2 AND id = ?3 AND version = ?4 LIMIT 1`,
		tenant, typ, id, version)
	r, err := storesql.ScanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s version %d not found", typ, id, version)
	}
	if err != nil {
		return nil, internal("reading resource version", err)
	}
	if r.Deleted {
		return nil, fhir.Errorf(fhir.KindGone, "%s/%s version %d is deleted", typ, id, version)
	}
	return r, nil
}

func (rd reader) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	if err := rd.s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	return storesql.RunSearch(ctx, dialect, tenant, q, rd.query, rd.count)
}

func (rd reader) LastN(ctx context.Context, tenant string, q *fhir.Query, maxN int) ([]*fhir.Resource, error) {
	if err := rd.s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	return storesql.RunLastN(ctx, dialect, tenant, q, maxN, rd.query)
}

func (rd reader) History(ctx context.Context, tenant string, hq *fhir.HistoryQuery) (*fhir.HistoryResult, error) {
	if err := rd.s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	return storesql.RunHistory(ctx, dialect, tenant, hq, rd.query, rd.count)
}

func (s *Store) rd() reader { return reader{s: s, q: s.r} }

// Read returns the current version (KindNotFound, KindGone).
func (s *Store) Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error) {
	return s.rd().Read(ctx, tenant, typ, id)
}

// ReadMany implements fhir.ManyReader.
func (s *Store) ReadMany(ctx context.Context, tenant, typ string, ids []string) ([]*fhir.Resource, error) {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return nil, err
	}
	return s.rd().ReadMany(ctx, tenant, typ, ids)
}

// VRead returns one version (KindNotFound, KindGone).
func (s *Store) VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error) {
	return s.rd().VRead(ctx, tenant, typ, id, version)
}

// Search runs q (KindInvalid, KindNotSupported for what storesql cannot compile).
func (s *Store) Search(ctx context.Context, tenant string, q *fhir.Query) (*fhir.SearchResult, error) {
	return s.rd().Search(ctx, tenant, q)
}

// SearchMany implements fhir.ManySearcher. SQLite has no round trips to
// save: the searches run one after the other, through storesql as the
// PostgreSQL store runs them.
func (s *Store) SearchMany(ctx context.Context, tenant string, qs []*fhir.Query) ([]*fhir.SearchResult, error) {
	rd := s.rd()
	if err := s.checkTenant(ctx, rd.q, tenant); err != nil {
		return nil, err
	}
	queryMany := func(ctx context.Context, sqls []string, args [][]any) ([][]*fhir.Resource, error) {
		out := make([][]*fhir.Resource, len(sqls))
		for i := range sqls {
			rs, err := rd.query(ctx, sqls[i], args[i])
			if err != nil {
				return nil, err
			}
			out[i] = rs
		}
		return out, nil
	}
	return storesql.RunSearchMany(ctx, dialect, tenant, qs, queryMany, rd.query, rd.count)
}

// LastN implements Observation/$lastn.
func (s *Store) LastN(ctx context.Context, tenant string, q *fhir.Query, maxN int) ([]*fhir.Resource, error) {
	return s.rd().LastN(ctx, tenant, q, maxN)
}

// History lists versions newest first.
func (s *Store) History(ctx context.Context, tenant string, hq *fhir.HistoryQuery) (*fhir.HistoryResult, error) {
	return s.rd().History(ctx, tenant, hq)
}

// Tx runs fn in one write transaction. Transactions are serialized (one
// writer connection, BEGIN IMMEDIATE), so fn sees no concurrent writer. The
// transaction rolls back when fn returns an error or panics (the panic is
// re-raised); fn's error is returned unchanged.
func (s *Store) Tx(ctx context.Context, tenant string, fn func(fhir.Tx) error) error {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return err
	}
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return internal("beginning transaction", err)
	}
	done := false
	defer func() {
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	t := &tx{reader: reader{s: s, q: sqlTx}, tx: sqlTx, tenant: tenant}
	if err := fn(t); err != nil {
		return err
	}
	done = true
	if err := sqlTx.Commit(); err != nil {
		return internal("committing transaction", err)
	}
	return nil
}

// tx is a fhir.Tx on the writer connection.
type tx struct {
	reader
	tx     *sql.Tx
	tenant string
}

// Lock is a no-op: every write transaction already runs alone (one writer
// connection, BEGIN IMMEDIATE), so two transactions locking the same key
// never overlap.
func (t *tx) Lock(ctx context.Context, keys ...string) error { return nil }

// current returns the current version and deleted flag of typ/id, ok false
// when it never existed.
func (t *tx) current(ctx context.Context, typ, id string) (version int64, deleted, ok bool, err error) {
	var del int64
	err = t.tx.QueryRowContext(ctx, `SELECT version, deleted FROM resources WHERE tenant = ? AND type = ? AND id = ?`,
		t.tenant, typ, id).Scan(&version, &del)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, internal("reading current version", err)
	}
	return version, del != 0, true, nil
}

func (t *tx) exec(ctx context.Context, stmts []storesql.Stmt) error {
	for _, st := range stmts {
		if _, err := t.tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return internal("writing index", err)
		}
	}
	return nil
}

// writeVersion stores r as the current row of its resource. When the
// resource exists (exists), its current row is first copied to
// resource_versions, which holds only superseded versions; a create writes
// one row.
func (t *tx) writeVersion(ctx context.Context, r *fhir.Resource, exists bool) error {
	lu := storesql.Micros(r.LastUpdated)
	del := 0
	var body []byte
	if r.Deleted {
		del = 1
	} else {
		body = r.Body
	}
	if exists {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
			SELECT tenant, type, id, version, last_updated, deleted, body FROM resources WHERE tenant = ? AND type = ? AND id = ?`,
			t.tenant, r.Type, r.ID); err != nil {
			return internal("superseding resource version", err)
		}
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO resources (tenant, type, id, version, last_updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
		deleted = excluded.deleted, body = excluded.body`,
		t.tenant, r.Type, r.ID, r.VersionID, lu, del, body); err != nil {
		return internal("writing resource", err)
	}
	return t.exec(ctx, storesql.DeleteIndex(dialect, t.tenant, r.Type, r.ID))
}

// Put writes a new current version (KindInvalid for a bad type or id,
// KindPreconditionFailed on an If-Match mismatch).
func (t *tx) Put(ctx context.Context, w *fhir.Write) (*fhir.Resource, bool, error) {
	if w.Type == "" || strings.ContainsAny(w.Type, "/?") {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "invalid resource type")
	}
	if !fhir.ValidID(w.ID) {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "invalid resource id").At(w.Type + ".id")
	}
	version, deleted, ok, err := t.current(ctx, w.Type, w.ID)
	if err != nil {
		return nil, false, err
	}
	live := ok && !deleted
	if w.IfMatch > 0 && (!live || version != w.IfMatch) {
		return nil, false, fhir.Errorf(fhir.KindPreconditionFailed, "version %d of %s/%s is not current", w.IfMatch, w.Type, w.ID)
	}
	r := &fhir.Resource{Type: w.Type, ID: w.ID, VersionID: version + 1, LastUpdated: storesql.Now()}
	if r.Body, err = fhir.StampMeta(w.Body, w.ID, r.VersionID, r.LastUpdated); err != nil {
		return nil, false, fhir.Errorf(fhir.KindInvalid, "resource body is not a JSON object").Wrap(err)
	}
	if err := t.writeVersion(ctx, r, ok); err != nil {
		return nil, false, err
	}
	ins, err := storesql.InsertIndex(dialect, t.tenant, w.Type, w.ID, w.Index)
	if err != nil {
		return nil, false, err
	}
	if err := t.exec(ctx, ins); err != nil {
		return nil, false, err
	}
	if err := fhir.RunHooks(ctx, t.s.hooks, t, fhir.Change{Tenant: t.tenant, Resource: r, Created: !live, Index: w.Index}); err != nil {
		return nil, false, err
	}
	return r, !live, nil
}

// Delete writes a tombstone and removes index rows. A missing or already
// deleted resource is not an error: (nil, nil), nothing written.
func (t *tx) Delete(ctx context.Context, typ, id string, ifMatch int64) (*fhir.Resource, error) {
	version, deleted, ok, err := t.current(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if !ok || deleted {
		return nil, nil
	}
	if ifMatch > 0 && version != ifMatch {
		return nil, fhir.Errorf(fhir.KindPreconditionFailed, "version %d of %s/%s is not current", ifMatch, typ, id)
	}
	r := &fhir.Resource{Type: typ, ID: id, VersionID: version + 1, LastUpdated: storesql.Now(), Deleted: true}
	if err := t.writeVersion(ctx, r, true); err != nil {
		return nil, err
	}
	if err := fhir.RunHooks(ctx, t.s.hooks, t, fhir.Change{Tenant: t.tenant, Resource: r}); err != nil {
		return nil, err
	}
	return r, nil
}
