package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/storesql"
)

// This file implements server/smart/registry.Store: the SMART clients,
// users and signing keys of migration 0030. Writes go through the writer
// connection, reads through the read pool.

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
