package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/smart/registry.Store: the SMART clients,
// users and signing keys of migration 0030, and registry.State (migration
// 0031), under the same row-level security as the resources. Each call is one pipelined batch (an implicit
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

// The authorization server's short-lived state (registry.State, migration
// 0031): entries, and revocations with a per-tenant sequence number. Expiry
// is in microseconds of this host's clock and is checked on every read.

var _ registry.State = (*Store)(nil)

// stateNow is the store's clock for state rows, in microseconds.
func stateNow() int64 { return storesql.Micros(storesql.Now()) }

// PutState implements registry.State. An expired entry is replaced in the
// same statement (ON CONFLICT ... WHERE expired), so of concurrent Puts one
// stores.
func (s *Store) PutState(ctx context.Context, tenant, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	if value == nil {
		value = []byte{} // NOT NULL
	}
	now := stateNow()
	n, err := s.smartExec(ctx, tenant, "storing authorization state", `INSERT INTO smart_state AS e (tenant, key, value, expires)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant, key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires WHERE e.expires <= $5`,
		tenant, key, value, now+ttl.Microseconds(), now)
	return n == 1, err
}

// GetState implements registry.State.
func (s *Store) GetState(ctx context.Context, tenant, key string) ([]byte, bool, error) {
	var v []byte
	found := false
	err := s.smartQuery(ctx, tenant, "reading authorization state", func(rows pgx.Rows) error {
		found = true
		return rows.Scan(&v)
	}, `SELECT value FROM smart_state WHERE tenant = $1 AND key = $2 AND expires > $3`, tenant, key, stateNow())
	if err != nil || !found {
		return nil, false, err
	}
	return v, true, nil
}

// TakeState implements registry.State: one DELETE ... RETURNING, so of
// concurrent Takes one gets the row (the others wait for its commit and
// then find none).
func (s *Store) TakeState(ctx context.Context, tenant, key string) ([]byte, bool, error) {
	var v []byte
	var expires int64
	found := false
	err := s.smartQuery(ctx, tenant, "taking authorization state", func(rows pgx.Rows) error {
		found = true
		return rows.Scan(&v, &expires)
	}, `DELETE FROM smart_state WHERE tenant = $1 AND key = $2 RETURNING value, expires`, tenant, key)
	if err != nil || !found || expires <= stateNow() {
		return nil, false, err
	}
	return v, true, nil
}

// DeleteState implements registry.State.
func (s *Store) DeleteState(ctx context.Context, tenant, key string) error {
	_, err := s.smartExec(ctx, tenant, "deleting authorization state", `DELETE FROM smart_state WHERE tenant = $1 AND key = $2`, tenant, key)
	return err
}

// Revoke implements registry.State. The tenant's counter row is
// incremented in the same transaction as the revocation is written, and
// its row lock is held until that commits: the next Revoke of the tenant
// waits, so sequence numbers commit in order and a reader that sees
// number n sees every lower one (a plain sequence would let n+1 commit
// before n, and a reader past n+1 would never see n).
func (s *Store) Revoke(ctx context.Context, tenant, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	_, err := s.smartExec(ctx, tenant, "revoking a token", `WITH n AS (
			INSERT INTO smart_revocation_seq AS q (tenant, seq) VALUES ($1, 1)
			ON CONFLICT (tenant) DO UPDATE SET seq = q.seq + 1
			RETURNING seq)
		INSERT INTO smart_revocations AS r (tenant, id, seq, expires)
		SELECT $1, $2, n.seq, $3 FROM n
		ON CONFLICT (tenant, id) DO UPDATE SET seq = EXCLUDED.seq, expires = GREATEST(r.expires, EXCLUDED.expires)`,
		tenant, id, stateNow()+ttl.Microseconds())
	return err
}

// Revocations implements registry.State (an index scan of
// smart_revocations_seq).
func (s *Store) Revocations(ctx context.Context, tenant string, after int64, limit int) ([]registry.Revocation, error) {
	var out []registry.Revocation
	err := s.smartQuery(ctx, tenant, "reading revocations", func(rows pgx.Rows) error {
		var r registry.Revocation
		var expires int64
		if err := rows.Scan(&r.ID, &r.Seq, &expires); err != nil {
			return err
		}
		r.Expires = storesql.FromMicros(expires)
		out = append(out, r)
		return nil
	}, `SELECT id, seq, expires FROM smart_revocations WHERE tenant = $1 AND seq > $2 AND expires > $3 ORDER BY seq LIMIT $4`,
		tenant, after, stateNow(), limit)
	return out, err
}

// PurgeState implements registry.State: per table, the rows found by the
// expiry index, deleted by ctid (a TID scan), in one batch. The expiry is
// checked again on the row deleted: an entry replaced meanwhile is live.
func (s *Store) PurgeState(ctx context.Context, tenant string, limit int) (int, error) {
	p, err := s.smartScope(ctx, tenant, false)
	if err != nil {
		return 0, err
	}
	now := stateNow()
	var n int64
	count := func(ct pgconn.CommandTag) error { n += ct.RowsAffected(); return nil }
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM smart_state WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM smart_state WHERE tenant = $1 AND expires <= $2 ORDER BY expires LIMIT $3))
		AND tenant = $1 AND expires <= $2`, tenant, now, limit).Exec(count)
	b.Queue(`DELETE FROM smart_revocations WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM smart_revocations WHERE tenant = $1 AND expires <= $2 ORDER BY expires LIMIT $3))
		AND tenant = $1 AND expires <= $2`, tenant, now, limit).Exec(count)
	if err := p.send(ctx, b); err != nil {
		return 0, internal("purging authorization state", err)
	}
	return int(n), nil
}
