package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/smart/registry.Store: the SMART clients,
// users and signing keys of migration 0030, and registry.State (migration
// 0031). Writes go through the writer connection, reads through the read
// pool.

var _ registry.Store = (*Store)(nil)

// isUniqueViolation reports whether err is a SQLite UNIQUE or PRIMARY KEY
// constraint failure.
func isUniqueViolation(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "UNIQUE constraint failed") ||
		strings.Contains(err.Error(), "constraint failed: PRIMARY KEY"))
}

// smartWrite runs one statement for a registered tenant and returns the
// rows it affected. A unique violation becomes conflict.
func (s *Store) smartWrite(ctx context.Context, tenant, doing string, conflict error, query string, args ...any) (int64, error) {
	var n int64
	var dup bool
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.checkTenant(ctx, tx, tenant); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, query, args...)
		if isUniqueViolation(err) {
			dup = true
			return err
		}
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	var fe *fhir.Error
	switch {
	case dup:
		return 0, conflict
	case errors.As(err, &fe):
		return 0, err
	case err != nil:
		return 0, internal(doing, err)
	}
	return n, nil
}

// smartRead runs one query for a registered tenant and calls scan for
// each row.
func (s *Store) smartRead(ctx context.Context, tenant, doing string, scan func(*sql.Rows) error, query string, args ...any) error {
	if err := s.checkTenant(ctx, s.r, tenant); err != nil {
		return err // already a *fhir.Error
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return internal(doing, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return internal(doing, err)
		}
	}
	if err := rows.Err(); err != nil {
		return internal(doing, err)
	}
	return nil
}

const clientColumns = `id, name, type, redirect_uris, scopes, secret_hash, jwks, jwks_url, created`

func scanClient(rows *sql.Rows) (*registry.Client, error) {
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
	_, err = s.smartWrite(ctx, tenant, "adding client", registry.Conflict("client"),
		`INSERT INTO smart_clients (tenant, `+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tenant, c.ID, c.Name, string(c.Type), redirects, scopes, c.SecretHash, c.JWKS, c.JWKSURL, storesql.Micros(c.Created))
	return err
}

// Client implements registry.Store.
func (s *Store) Client(ctx context.Context, tenant, id string) (*registry.Client, error) {
	var found *registry.Client
	err := s.smartRead(ctx, tenant, "reading client", func(rows *sql.Rows) error {
		c, err := scanClient(rows)
		found = c
		return err
	}, `SELECT `+clientColumns+` FROM smart_clients WHERE tenant = ? AND id = ?`, tenant, id)
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
	err := s.smartRead(ctx, tenant, "listing clients", func(rows *sql.Rows) error {
		c, err := scanClient(rows)
		if err == nil {
			out = append(out, c)
		}
		return err
	}, `SELECT `+clientColumns+` FROM smart_clients WHERE tenant = ? ORDER BY id`, tenant)
	return out, err
}

// DeleteClient implements registry.Store.
func (s *Store) DeleteClient(ctx context.Context, tenant, id string) error {
	n, err := s.smartWrite(ctx, tenant, "deleting client", nil, `DELETE FROM smart_clients WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return registry.NotFound("client")
	}
	return nil
}

const userColumns = `username, password_hash, fhir_user, name, created`

func scanUser(rows *sql.Rows) (*registry.User, error) {
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
	_, err := s.smartWrite(ctx, tenant, "adding user", registry.Conflict("user"),
		`INSERT INTO smart_users (tenant, `+userColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		tenant, u.Username, u.PasswordHash, u.FHIRUser, u.Name, storesql.Micros(u.Created))
	return err
}

// User implements registry.Store.
func (s *Store) User(ctx context.Context, tenant, username string) (*registry.User, error) {
	var found *registry.User
	err := s.smartRead(ctx, tenant, "reading user", func(rows *sql.Rows) error {
		u, err := scanUser(rows)
		found = u
		return err
	}, `SELECT `+userColumns+` FROM smart_users WHERE tenant = ? AND username = ?`, tenant, username)
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
	err := s.smartRead(ctx, tenant, "listing users", func(rows *sql.Rows) error {
		u, err := scanUser(rows)
		if err == nil {
			out = append(out, u)
		}
		return err
	}, `SELECT `+userColumns+` FROM smart_users WHERE tenant = ? ORDER BY username`, tenant)
	return out, err
}

// DeleteUser implements registry.Store.
func (s *Store) DeleteUser(ctx context.Context, tenant, username string) error {
	n, err := s.smartWrite(ctx, tenant, "deleting user", nil, `DELETE FROM smart_users WHERE tenant = ? AND username = ?`, tenant, username)
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
	_, err := s.smartWrite(ctx, tenant, "adding signing key", registry.Conflict("signing key"),
		`INSERT INTO smart_signing_keys (tenant, id, alg, private_key, created) VALUES (?, ?, ?, ?, ?)`,
		tenant, k.ID, k.Algorithm, k.Private, storesql.Micros(k.Created))
	return err
}

// SigningKeys implements registry.Store.
func (s *Store) SigningKeys(ctx context.Context, tenant string) ([]*registry.SigningKey, error) {
	var out []*registry.SigningKey
	err := s.smartRead(ctx, tenant, "listing signing keys", func(rows *sql.Rows) error {
		var k registry.SigningKey
		var created int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &created); err != nil {
			return err
		}
		k.Created = storesql.FromMicros(created)
		out = append(out, &k)
		return nil
	}, `SELECT id, alg, private_key, created FROM smart_signing_keys WHERE tenant = ? ORDER BY created DESC, id DESC`, tenant)
	return out, err
}

// The authorization server's short-lived state (registry.State, migration
// 0031). Writes are transactions on the writer connection (serialized,
// also across processes sharing the file: BEGIN IMMEDIATE), so a Take is
// atomic and revocation numbers commit in order. Expiry is in microseconds
// of this host's clock and is checked on every read.

var _ registry.State = (*Store)(nil)

// stateNow is the store's clock for state rows, in microseconds.
func stateNow() int64 { return storesql.Micros(storesql.Now()) }

// PutState implements registry.State.
func (s *Store) PutState(ctx context.Context, tenant, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, nil
	}
	if value == nil {
		value = []byte{} // NOT NULL
	}
	now := stateNow()
	n, err := s.smartWrite(ctx, tenant, "storing authorization state", nil,
		`INSERT INTO smart_state (tenant, key, value, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value, expires = excluded.expires WHERE smart_state.expires <= ?`,
		tenant, key, value, now+ttl.Microseconds(), now)
	return n == 1, err
}

// GetState implements registry.State.
func (s *Store) GetState(ctx context.Context, tenant, key string) ([]byte, bool, error) {
	var v []byte
	found := false
	err := s.smartRead(ctx, tenant, "reading authorization state", func(rows *sql.Rows) error {
		found = true
		return rows.Scan(&v)
	}, `SELECT value FROM smart_state WHERE tenant = ? AND key = ? AND expires > ?`, tenant, key, stateNow())
	if err != nil || !found {
		return nil, false, err
	}
	return v, true, nil
}

// TakeState implements registry.State.
func (s *Store) TakeState(ctx context.Context, tenant, key string) ([]byte, bool, error) {
	var v []byte
	var expires int64
	found := false
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM smart_state WHERE tenant = ? AND key = ? RETURNING value, expires`, tenant, key).
			Scan(&v, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return nil, false, internal("taking authorization state", err)
	}
	if !found || expires <= stateNow() {
		return nil, false, nil
	}
	return v, true, nil
}

// DeleteState implements registry.State.
func (s *Store) DeleteState(ctx context.Context, tenant, key string) error {
	_, err := s.smartWrite(ctx, tenant, "deleting authorization state", nil, `DELETE FROM smart_state WHERE tenant = ? AND key = ?`, tenant, key)
	return err
}

// Revoke implements registry.State: the tenant's counter and the
// revocation in one write transaction.
func (s *Store) Revoke(ctx context.Context, tenant, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if err := s.checkTenant(ctx, tx, tenant); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO smart_revocation_seq (tenant, seq) VALUES (?, 1)
			ON CONFLICT (tenant) DO UPDATE SET seq = seq + 1 RETURNING seq`, tenant).Scan(&seq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO smart_revocations (tenant, id, seq, expires) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, id) DO UPDATE SET seq = excluded.seq, expires = max(expires, excluded.expires)`,
			tenant, id, seq, stateNow()+ttl.Microseconds())
		return err
	})
	var fe *fhir.Error
	if err != nil && !errors.As(err, &fe) {
		return internal("revoking a token", err)
	}
	return err
}

// Revocations implements registry.State.
func (s *Store) Revocations(ctx context.Context, tenant string, after int64, limit int) ([]registry.Revocation, error) {
	var out []registry.Revocation
	err := s.smartRead(ctx, tenant, "reading revocations", func(rows *sql.Rows) error {
		var r registry.Revocation
		var expires int64
		if err := rows.Scan(&r.ID, &r.Seq, &expires); err != nil {
			return err
		}
		r.Expires = storesql.FromMicros(expires)
		out = append(out, r)
		return nil
	}, `SELECT id, seq, expires FROM smart_revocations WHERE tenant = ? AND seq > ? AND expires > ? ORDER BY seq LIMIT ?`,
		tenant, after, stateNow(), limit)
	return out, err
}

// PurgeState implements registry.State: per table, the rows found by the
// expiry index, in one write transaction.
func (s *Store) PurgeState(ctx context.Context, tenant string, limit int) (int, error) {
	now := stateNow()
	var n int64
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"smart_state", "smart_revocations"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE rowid IN (
				SELECT rowid FROM `+table+` WHERE tenant = ? AND expires <= ? ORDER BY expires LIMIT ?)`, tenant, now, limit)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, internal("purging authorization state", err)
	}
	return int(n), nil
}
