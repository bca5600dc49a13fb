// Package postgres is Pulsewire's production resource store: a fhir.Store on
// PostgreSQL through pgx v5 (pgxpool), with the table layout shared with
// adapters/sqlite and searches compiled by server/storesql
// (https://hl7.org/fhir/R4/http.html, https://hl7.org/fhir/R4/search.html).
//
// Tenants are isolated by PostgreSQL row-level security, not only by WHERE
// clauses: every table has a policy tenant = current_setting('pulsewire.tenant'),
// every pooled connection runs as the non-superuser role Config.Role (SET ROLE,
// since superusers bypass RLS), and every store operation runs in a
// transaction (an explicit one, or the implicit one of a pipelined batch)
// whose first statement sets pulsewire.tenant with is_local = true. Queries
// still also say tenant = $n so the planner uses the indexes.
//
// Only server/cmd (the wiring) imports this package.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// DefaultRole is the role the migrations create and the store runs as.
const DefaultRole = "pulsewire_app"

// Config configures Open.
type Config struct {
	// DSN is a libpq connection string or URL. Its login role must be able
	// to SET ROLE to Role (a member of it, or a superuser); Migrate also
	// needs it to own or create the tables. Runtime parameters such as
	// search_path are honoured (tests give each store its own schema).
	DSN string
	// MaxConns caps the pool; 0 keeps pgxpool's default (max(4, CPUs)).
	MaxConns int32
	// Role is the role every pooled connection switches to so that
	// row-level security applies; "" means DefaultRole. When the DSN's user
	// already is that role, no SET ROLE is sent.
	Role string
}

// Store is a fhir.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	cfg  *pgxpool.Config
	role string

	// known holds tenants seen registered. Tenants are never unregistered,
	// so a positive answer can be cached; a negative one is asked again.
	known sync.Map

	hooks []fhir.WriteHook // see AddWriteHook

	// Reads by id and blind-only transactions are grouped (see group.go).
	reads   *coalescer[*readReq]
	commits *coalescer[*commitReq]
}

var (
	_ fhir.Store        = (*Store)(nil)
	_ fhir.Hooked       = (*Store)(nil)
	_ fhir.ManyReader   = (*Store)(nil)
	_ fhir.ManyReader   = (*txn)(nil)
	_ fhir.ManySearcher = (*Store)(nil)
)

// AddWriteHook adds a hook run inside every Put and Delete (see
// fhir.WriteHook). Call it before the store is used.
func (s *Store) AddWriteHook(h fhir.WriteHook) { s.hooks = append(s.hooks, h) }

var dialect = storesql.Postgres

// SQL sent first in every transaction. is_local = true: the setting ends
// with the transaction, so a pooled connection never carries a tenant over.
const (
	setTenantSQL    = "SELECT set_config('pulsewire.tenant', $1, true)"
	tenantExistsSQL = "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)"
)

// Open creates the connection pool and checks the server answers. It does
// not migrate (see Migrate) and does not need the role to exist yet: pooled
// connections, which SET ROLE, are made on first use.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The DSN may hold a password: do not echo it.
		return nil, errors.New("postgres: cannot parse the DSN")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	role := cfg.Role
	if role == "" {
		role = DefaultRole
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return assumeRole(ctx, c, role) }

	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	_ = conn.Close(ctx)

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating pool: %w", err)
	}
	s := &Store{pool: pool, cfg: pc, role: role}
	s.reads = newCoalescer(readWorkers(), groupMax, s.runReads)
	s.commits = newCoalescer(commitWorkers, groupMax, s.runCommits)
	return s, nil
}

// assumeRole switches a new pooled connection to role and refuses a role
// that would bypass row-level security.
func assumeRole(ctx context.Context, c *pgx.Conn, role string) error {
	if c.Config().User != role {
		if _, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
			return fmt.Errorf("postgres: SET ROLE %s (have migrations run, is the login role a member?): %w", role, err)
		}
	}
	var bypass bool
	if err := c.QueryRow(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&bypass); err != nil {
		return fmt.Errorf("postgres: checking role %s: %w", role, err)
	}
	if bypass {
		return fmt.Errorf("postgres: role %s is a superuser or has BYPASSRLS; row-level security would not apply", role)
	}
	return nil
}

// Ping checks the database answers through the pool (as the application role).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return internal("pinging the database", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.reads.close()
	s.commits.close()
	s.pool.Close()
	return nil
}

// EnsureTenant registers tenant (idempotent). KindInvalid for a name that is
// not a valid tenant. It sets pulsewire.tenant to the tenant itself and
// inserts through the ordinary RLS policy (see migrations/0001_init.sql).
func (s *Store) EnsureTenant(ctx context.Context, tenant string) error {
	if !fhir.ValidTenant(tenant) {
		return fhir.Errorf(fhir.KindInvalid, "invalid tenant name")
	}
	b := &pgx.Batch{}
	b.Queue(setTenantSQL, tenant)
	b.Queue("INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
		tenant, storesql.Micros(time.Now()))
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return internal("registering tenant", err)
	}
	s.known.Store(tenant, true)
	return nil
}

// TenantExists reports whether tenant is registered.
func (s *Store) TenantExists(ctx context.Context, tenant string) (bool, error) {
	if !fhir.ValidTenant(tenant) {
		return false, nil
	}
	if _, ok := s.known.Load(tenant); ok {
		return true, nil
	}
	var exists bool
	b := &pgx.Batch{}
	b.Queue(setTenantSQL, tenant)
	b.Queue(tenantExistsSQL, tenant).QueryRow(func(row pgx.Row) error { return row.Scan(&exists) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return false, internal("looking up tenant", err)
	}
	if exists {
		s.known.Store(tenant, true)
	}
	return exists, nil
}

func tenantNotFound() *fhir.Error { return fhir.Errorf(fhir.KindNotFound, "unknown tenant") }

// internal wraps a driver error as KindInternal (the client sees only a
// generic message), or as KindUnavailable when the database is out of a
// resource for now (see transient): a 503 the client retries.
func internal(doing string, err error) error {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return err
	}
	if transient(pgCode(err)) {
		return fhir.Errorf(fhir.KindUnavailable, "the database is busy; try again shortly").Wrap(fmt.Errorf("%s: %w", doing, err))
	}
	return fhir.Errorf(fhir.KindInternal, "database error").Wrap(fmt.Errorf("%s: %w", doing, err))
}

// transient reports whether SQLSTATE code says a resource of the database
// is exhausted for now, so that the same request can succeed a moment
// later: class 53 (out of memory — which is also what a full lock table
// reports —, too many connections, a configuration limit), the server
// starting up or shutting down (57P03), a deadlock victim (40P01).
func transient(code string) bool {
	return strings.HasPrefix(code, "53") || code == "57P03" || code == "40P01"
}

// pgCode returns the SQLSTATE of err, "" when it is not a server error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// scope sends batches of statements for one tenant: the store's own
// (outside a transaction) or a Tx's.
type scope interface {
	send(ctx context.Context, b *pgx.Batch) error
}

// poolScope sends each batch on a pooled connection as one implicit
// transaction (pgx pipelines a batch with a single Sync) whose first
// statement sets the tenant, so RLS applies to the rest. The first batch also
// checks the tenant is registered unless that is already known.
type poolScope struct {
	s       *Store
	tenant  string
	checked bool
}

func (p *poolScope) send(ctx context.Context, b *pgx.Batch) error {
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+2)}
	full.Queue(setTenantSQL, p.tenant)
	exists := true
	if !p.checked {
		if _, ok := p.s.known.Load(p.tenant); !ok {
			full.Queue(tenantExistsSQL, p.tenant).QueryRow(func(row pgx.Row) error { return row.Scan(&exists) })
		}
	}
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	err := p.s.pool.SendBatch(ctx, full).Close()
	if err == nil && !p.checked {
		if !exists {
			return tenantNotFound()
		}
		p.checked = true
		p.s.known.Store(p.tenant, true)
	}
	return err
}
