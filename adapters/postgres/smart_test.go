package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/pulsewire/pulsewire/adapters/postgres/pgtest"
	"github.com/pulsewire/pulsewire/server/smart/registry"
	"github.com/pulsewire/pulsewire/server/smart/smarttest"
)

// TestSmartRegistry runs the SMART registry suite (clients, users, signing
// keys, tenant isolation) on PostgreSQL, each subtest in a fresh schema.
func TestSmartRegistry(t *testing.T) {
	smarttest.Run(t, func(t *testing.T) smarttest.Store {
		s, _ := openTestStore(t)
		return s
	})
}

// TestSmartState runs the registry.State suite (entries, revocations and
// their feed, expiry, purge, races, tenant isolation) on PostgreSQL.
func TestSmartState(t *testing.T) {
	smarttest.RunState(t, func(t *testing.T) smarttest.StateStore {
		s, _ := openTestStore(t)
		return s
	})
}

// TestSmartRowLevelSecurity proves the registry tables are isolated by the
// database, not only by WHERE clauses: as the application role with the
// setting naming tenant b (or nothing), tenant a's rows are invisible and
// cannot be written.
func TestSmartRowLevelSecurity(t *testing.T) {
	t.Parallel()
	s, schema := openTestStore(t)
	ctx := context.Background()
	mustTenant(t, s, "a", "b")
	now := time.Now()
	if err := s.AddClient(ctx, "a", &registry.Client{ID: "c1", Type: registry.Public, Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "a", &registry.User{Username: "u1", PasswordHash: "h", Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSigningKey(ctx, "a", &registry.SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte{1}, Created: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutState(ctx, "a", "code:c1", []byte{1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "a", "r1", time.Hour); err != nil {
		t.Fatal(err)
	}

	conn := pgtest.AdminConn(t)
	for _, stmt := range []string{"SET search_path = " + schema, "SET ROLE pulsewire_app"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	count := func(t *testing.T, table, tenant string) int64 {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if tenant != "" {
			if _, err := tx.Exec(ctx, setTenantSQL, tenant); err != nil {
				t.Fatal(err)
			}
		}
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range []string{"smart_clients", "smart_users", "smart_signing_keys", "smart_state", "smart_revocations", "smart_revocation_seq"} {
		t.Run(table, func(t *testing.T) {
			for _, c := range []struct {
				tenant string
				want   int64
			}{{"a", 1}, {"b", 0}, {"", 0}} {
				if n := count(t, table, c.tenant); n != c.want {
					t.Errorf("as tenant %q: %d rows, want %d", c.tenant, n, c.want)
				}
			}
		})
	}

	for _, insert := range []string{
		`INSERT INTO smart_clients (tenant, id, name, type, redirect_uris, scopes, secret_hash, jwks_url, created)
		VALUES ('a', 'evil', '', 'public', '[]', '["system/*.cruds"]', '', '', 0)`,
		`INSERT INTO smart_state (tenant, key, value, expires) VALUES ('a', 'jti:x', '\x01', 9000000000000000)`,
		`INSERT INTO smart_revocations (tenant, id, seq, expires) VALUES ('a', 'r2', 99, 9000000000000000)`,
	} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, setTenantSQL, "b"); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, insert)
		if code := pgCode(err); code != "42501" {
			t.Errorf("%s as b: error %v (SQLSTATE %q), want 42501 (RLS WITH CHECK)", insert, err, code)
		}
		_ = tx.Rollback(ctx)
	}
}
