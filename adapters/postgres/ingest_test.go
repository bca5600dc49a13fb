package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/pulsewire/pulsewire/server/ingest/ingesttest"
	"github.com/pulsewire/pulsewire/server/ingest/tables"
)

// TestIngest runs the ingestion suite (tables, pipeline, races across
// pooled connections) on PostgreSQL, each subtest in a fresh schema.
func TestIngest(t *testing.T) {
	ingesttest.Run(t, func(t *testing.T) tables.Store {
		s, _ := openTestStore(t)
		return s
	})
}

// TestMigrationObservationIDs checks the time migration 0080 records.
func TestMigrationObservationIDs(t *testing.T) {
	t.Parallel()
	schemas := map[tables.Store]string{}
	var mu sync.Mutex
	ingesttest.RunLegacyIDs(t, func(t *testing.T) tables.Store {
		s, schema := openTestStore(t)
		mu.Lock()
		schemas[s] = schema
		mu.Unlock()
		return s
	}, func(t *testing.T, ts tables.Store) {
		s := ts.(*Store)
		mu.Lock()
		schema := schemas[s]
		mu.Unlock()
		ctx := context.Background()
		admin := adminIn(t, schema)
		for _, stmt := range []string{`DROP TABLE observation_ids`, `DELETE FROM schema_migrations WHERE version = 80`} {
			if _, err := admin.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	})
}
