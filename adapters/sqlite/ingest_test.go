package sqlite

import (
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
