package postgres

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql/storesqltest"
)

// rawIn returns a storesqltest.Raw running as the owner in schema.
func rawIn(t *testing.T, schema string) storesqltest.Raw {
	conn := adminIn(t, schema)
	return func(t *testing.T, query string) []string {
		t.Helper()
		rows, err := conn.Query(context.Background(), query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return out
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	storesqltest.RunVersions(t, func(t *testing.T) (fhir.Store, storesqltest.Raw) {
		s, schema := openTestStore(t)
		return s, rawIn(t, schema)
	})
}

// oldHistorySQL is the system history of storesqltest.VersionsTenant as
// the layout before migration 0050 read it: every version, the current
// one included, in resource_versions.
const oldHistorySQL = `SELECT type || '/' || id || '/' || version || CASE WHEN deleted = 1 THEN ' deleted' ELSE '' END
	FROM resource_versions WHERE tenant = '` + storesqltest.VersionsTenant + `'
	ORDER BY last_updated DESC, type, id, version DESC`

// TestMigrationHistorySuperseded: data written in the layout before
// migration 0050 (every version in resource_versions, the current one in
// resources too) has, once migrated, the same history, vreads and audit
// chain, and resource_versions keeps only superseded versions.
func TestMigrationHistorySuperseded(t *testing.T) {
	t.Parallel()
	s, schema := openTestStore(t)
	ctx := context.Background()
	before, names := storesqltest.WriteForMigration(t, s)

	// Back to the layout before 0050: its index, its trigger and the copy
	// of every current version; then 0050 is due again.
	admin := adminIn(t, schema)
	for _, stmt := range []string{
		"DROP INDEX resources_tenant_lu",
		"DROP TRIGGER audit_immutable ON resource_versions",
		`INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
			SELECT tenant, type, id, version, last_updated, deleted, body FROM resources`,
		`CREATE TRIGGER audit_immutable BEFORE UPDATE OR DELETE ON resource_versions
			FOR EACH ROW WHEN (OLD.type = 'AuditEvent') EXECUTE FUNCTION pulsewire_audit_immutable()`,
		"DELETE FROM schema_migrations WHERE version = 50",
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw := rawIn(t, schema)
	if diff := cmp.Diff(names, raw(t, oldHistorySQL)); diff != "" {
		t.Fatalf("the old layout's history differs from the history written (-written +old):\n%s", diff)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	storesqltest.CheckMigrated(t, s, raw, before)
}
