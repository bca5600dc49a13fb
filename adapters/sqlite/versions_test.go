package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pulsewire/pulsewire/server/fhir"
	"github.com/pulsewire/pulsewire/server/storesql/storesqltest"
)

// raw returns a storesqltest.Raw reading s's database directly.
func raw(s *Store) storesqltest.Raw {
	return func(t *testing.T, query string) []string {
		t.Helper()
		rows, err := s.r.QueryContext(context.Background(), query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			out = append(out, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return out
	}
}

func TestVersions(t *testing.T) {
	storesqltest.RunVersions(t, func(t *testing.T) (fhir.Store, storesqltest.Raw) {
		s := openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
		return s, raw(s)
	})
}

// TestMigrationHistorySuperseded: data written in the layout before
// migration 0050 (every version in resource_versions, the current one in
// resources too) has, once migrated, the same history, vreads and audit
// chain, and resource_versions keeps only superseded versions.
func TestMigrationHistorySuperseded(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	ctx := context.Background()
	before, names := storesqltest.WriteForMigration(t, s)

	// Back to the layout before 0050: its indexes and the copy of every
	// current version; then 0050 is due again.
	for _, stmt := range []string{
		"DROP INDEX resources_tenant_lu",
		`INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, body)
			SELECT tenant, type, id, version, last_updated, deleted, body FROM resources`,
		"DELETE FROM schema_migrations WHERE name = 'migrations/0050_history_superseded.sql'",
	} {
		if _, err := s.w.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rd := raw(s)
	old := rd(t, `SELECT type || '/' || id || '/' || version || CASE WHEN deleted = 1 THEN ' deleted' ELSE '' END
		FROM resource_versions WHERE tenant = '`+storesqltest.VersionsTenant+`'
		ORDER BY last_updated DESC, type, id, version DESC`)
	if diff := cmp.Diff(names, old); diff != "" {
		t.Fatalf("the old layout's history differs from the history written (-written +old):\n%s", diff)
	}

	if err := s.migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	storesqltest.CheckMigrated(t, s, rd, before)
}
