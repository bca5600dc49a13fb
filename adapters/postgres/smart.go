package postgres

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/smart/registry.Store: the SMART clients,
// users and signing keys of migration 0030, under the same row-level
// security as the resources. Each call is one pipelined batch (an implicit
// transaction that first sets pulsewire.tenant).

var _ registry.Store = (*Store)(nil)

// smartScope returns the scope of one registry call. Writes check first
// that the tenant is registered: a batch's own check would run in the same
// implicit transaction as the insert, which would already be committed.
func (s *Store) smartScope(ctx context.Context, tenant string, write bool) (*poolScope, error) {
	if write {
		ok, err := s.TenantExists(ctx, tenant)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, tenantNotFound()
		}
	}
	return &poolScope{s: s, tenant: tenant, checked: write}, nil
}

// smartExec runs one statement and returns the rows it affected.
func (s *Store) smartExec(ctx context.Context, tenant, doing, sql string, args ...any) (int64, error) {
	p, err := s.smartScope(ctx, tenant, true)
	if err != nil {
		return 0, err
	}
	var n int64
	b := &pgx.Batch{}
	b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { n = ct.RowsAffected(); return nil })
	if err := p.send(ctx, b); err != nil {
		return 0, internal(doing, err)
	}
	return n, nil
}

// smartQuery runs one query and calls scan for each row; scan errors are
// collected rather than returned from pgx's callback (see ingestTables.query).
func (s *Store) smartQuery(ctx context.Context, tenant, doing string, scan func(pgx.Rows) error, sql string, args ...any) error {
	p, err := s.smartScope(ctx, tenant, false)
	if err != nil {
		return err
	}
	var scanErr error
	b := &pgx.Batch{}
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if scanErr == nil {
				scanErr = scan(rows)
			}
		}
		if scanErr == nil {
			scanErr = rows.Err()
		}
		return nil
	})
	if err := p.send(ctx, b); err != nil {
		return internal(doing, err)
	}
	if scanErr != nil {
		return internal(doing, scanErr)
	}
	return nil
}

const clientColumns = `id, name, type, redirect_uris, scopes, secret_hash, jwks, jwks_url, created`

func scanClient(rows pgx.Rows) (*registry.Client, error) {
	var c registry.Client
	var typ, redirects, scopes string
	var created int64
	if err := rows.Scan(&c.ID, &c.Name, &typ, &redirects, &scopes, &c.SecretHash, &c.JWKS, &c.JWKSURL, &created); err != nil {
		return nil, err
	}
	c.Type = registry.ClientType(typ)
	if err := json.Unmarshal([]byte(redirects), &c.RedirectURIs); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return nil, err
	}
	c.Created = storesql.FromMicros(created)
	return &c, nil
}

// jsonList encodes a string list as a JSON array ("[]" for none).
func jsonList(v []string) (string, error) {
	if v == nil {
		v = []string{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// AddClient implements registry.Store.
func (s *Store) AddClient(ctx context.Context, tenant string, c *registry.Client) error {
	redirects, err := jsonList(c.RedirectURIs)
	if err != nil {
		return internal("encoding redirect URIs", err)
	}
	scopes, err := jsonList(c.Scopes)
	if err != nil {
		return internal("encoding scopes", err)
	}
	_, err = s.smartExec(ctx, tenant, "adding client", `INSERT INTO smart_clients (tenant, `+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		tenant, c.ID, c.Name, string(c.Type), redirects, scopes, c.SecretHash, c.JWKS, c.JWKSURL, storesql.Micros(c.Created))
	if pgCode(err) == "23505" {
		return registry.Conflict("client")
	}
	return err
}

// Client implements registry.Store.
func (s *Store) Client(ctx context.Context, tenant, id string) (*registry.Client, error) {
	var found *registry.Client
	err := s.smartQuery(ctx, tenant, "reading client", func(rows pgx.Rows) error {
		c, err := scanClient(rows)
		found = c
		return err
	}, `SELECT `+clientColumns+` FROM smart_clients WHERE tenant = $1 AND id = $2`, tenant, id)
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, registry.NotFound("client")
	}
	return found, nil
}

// Clients implements registry.Store.
func (s *Store) Clients(ctx context.Context, tenant string) ([]*registry.Client, error) {
	var out []*registry.Client
	err := s.smartQuery(ctx, tenant, "listing clients", func(rows pgx.Rows) error {
		c, err := scanClient(rows)
		if err == nil {
			out = append(out, c)
		}
		return err
	}, `SELECT `+clientColumns+` FROM smart_clients WHERE tenant = $1 ORDER BY id`, tenant)
	return out, err
}

// DeleteClient implements registry.Store.
func (s *Store) DeleteClient(ctx context.Context, tenant, id string) error {
	n, err := s.smartExec(ctx, tenant, "deleting client", `DELETE FROM smart_clients WHERE tenant = $1 AND id = $2`, tenant, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return registry.NotFound("client")
	}
	return nil
}

const userColumns = `username, password_hash, fhir_user, name, created`

func scanUser(rows pgx.Rows) (*registry.User, error) {
	var u registry.User
	var created int64
	if err := rows.Scan(&u.Username, &u.PasswordHash, &u.FHIRUser, &u.Name, &created); err != nil {
		return nil, err
	}
	u.Created = storesql.FromMicros(created)
	return &u, nil
}

// AddUser implements registry.Store.
func (s *Store) AddUser(ctx context.Context, tenant string, u *registry.User) error {
	_, err := s.smartExec(ctx, tenant, "adding user", `INSERT INTO smart_users (tenant, `+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		tenant, u.Username, u.PasswordHash, u.FHIRUser, u.Name, storesql.Micros(u.Created))
	if pgCode(err) == "23505" {
		return registry.Conflict("user")
	}
	return err
}

// User implements registry.Store.
func (s *Store) User(ctx context.Context, tenant, username string) (*registry.User, error) {
	var found *registry.User
	err := s.smartQuery(ctx, tenant, "reading user", func(rows pgx.Rows) error {
		u, err := scanUser(rows)
		found = u
		return err
	}, `SELECT `+userColumns+` FROM smart_users WHERE tenant = $1 AND username = $2`, tenant, username)
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, registry.NotFound("user")
	}
	return found, nil
}

// Users implements registry.Store.
func (s *Store) Users(ctx context.Context, tenant string) ([]*registry.User, error) {
	var out []*registry.User
	err := s.smartQuery(ctx, tenant, "listing users", func(rows pgx.Rows) error {
		u, err := scanUser(rows)
		if err == nil {
			out = append(out, u)
		}
		return err
	}, `SELECT `+userColumns+` FROM smart_users WHERE tenant = $1 ORDER BY username`, tenant)
	return out, err
}

// DeleteUser implements registry.Store.
func (s *Store) DeleteUser(ctx context.Context, tenant, username string) error {
	n, err := s.smartExec(ctx, tenant, "deleting user", `DELETE FROM smart_users WHERE tenant = $1 AND username = $2`, tenant, username)
	if err != nil {
		return err
	}
	if n == 0 {
		return registry.NotFound("user")
	}
	return nil
}

// AddSigningKey implements registry.Store.
func (s *Store) AddSigningKey(ctx context.Context, tenant string, k *registry.SigningKey) error {
	_, err := s.smartExec(ctx, tenant, "adding signing key", `INSERT INTO smart_signing_keys (tenant, id, alg, private_key, created)
		VALUES ($1, $2, $3, $4, $5)`, tenant, k.ID, k.Algorithm, k.Private, storesql.Micros(k.Created))
	if pgCode(err) == "23505" {
		return registry.Conflict("signing key")
	}
	return err
}

// SigningKeys implements registry.Store.
func (s *Store) SigningKeys(ctx context.Context, tenant string) ([]*registry.SigningKey, error) {
	var out []*registry.SigningKey
	err := s.smartQuery(ctx, tenant, "listing signing keys", func(rows pgx.Rows) error {
		var k registry.SigningKey
		var created int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &created); err != nil {
			return err
		}
		k.Created = storesql.FromMicros(created)
		out = append(out, &k)
		return nil
	}, `SELECT id, alg, private_key, created FROM smart_signing_keys WHERE tenant = $1 ORDER BY created DESC, id DESC`, tenant)
	return out, err
}
