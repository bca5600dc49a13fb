package postgres

import (
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
