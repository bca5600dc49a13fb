package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
)

// TestIngest runs the ingestion suite (tables, pipeline, races) on SQLite.
func TestIngest(t *testing.T) {
	ingesttest.Run(t, func(t *testing.T) tables.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	})
}

// TestMigrationObservationIDs checks the time migration 0080 records.
func TestMigrationObservationIDs(t *testing.T) {
	ingesttest.RunLegacyIDs(t, func(t *testing.T) tables.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "pulsewire.db"))
	}, func(t *testing.T, ts tables.Store) {
		s := ts.(*Store)
		ctx := context.Background()
		for _, stmt := range []string{`DROP TABLE observation_ids`, `DELETE FROM schema_migrations WHERE name = 'migrations/0080_observation_ids.sql'`} {
			if _, err := s.w.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		if err := s.migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	})
}
